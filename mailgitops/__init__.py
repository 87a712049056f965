"""mailgitops: declarative GitOps for a CRM's email providers and mailboxes."""

from __future__ import annotations

__version__ = "0.1.0"

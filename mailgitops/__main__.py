from __future__ import annotations

from mailgitops.cli import main

raise SystemExit(main())

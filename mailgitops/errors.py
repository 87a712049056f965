"""One error hierarchy. Every expected failure is a MailgitopsError; the top-level handler in
cli.py turns it into a message on stderr and exit code 1. Anything else is a bug."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class MailgitopsError(Exception):
    """An expected failure: shown to the user as `error: MESSAGE`, exit 1."""


class UsageError(MailgitopsError):
    """The command line is wrong."""


class NotConfigRoot(UsageError):
    """The directory given as the config root has none of the config's folders and files."""


class ConfigError(MailgitopsError):
    """The config cannot be used. `diagnostics` are its findings and `refusals` the plan rules
    it already breaks (a provider removed while mailboxes use it); cli.py reports both before
    the message."""

    def __init__(
        self, message: str, refusals: Sequence[Any] = (), diagnostics: Sequence[Any] = ()
    ) -> None:
        super().__init__(message)
        self.refusals = tuple(refusals)
        self.diagnostics = tuple(diagnostics)


class StateError(MailgitopsError):
    """The live state cannot be read or written."""


class LockError(StateError):
    """The state lock is held by someone else."""


class StalePlanError(MailgitopsError):
    """A saved plan no longer matches the live state it was made against."""


class PlanRefused(MailgitopsError):
    """The plan would break a rule (the deletion rule, access, safety thresholds)."""


class SecretError(MailgitopsError):
    """A secret reference cannot be resolved where its value is needed."""


class PlanStateMismatch(MailgitopsError):
    """A saved plan is applied against another state than the one it was made for."""

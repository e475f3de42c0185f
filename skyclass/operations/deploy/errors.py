"""Errors of the deploy commands; the CLI prints their message on one line."""

from __future__ import annotations

from skyclass.runtime.errors import SkyclassError


class DeployError(SkyclassError):
    """A deploy step cannot go on; the message says what to do about it."""

    code = "DeployFailed"

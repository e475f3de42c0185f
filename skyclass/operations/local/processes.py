"""Child processes of the local stack: each in its own process group, its output in a
log file, and gone when the process that started it dies.

``skyclass up`` starts the emulator, the API and the Lambda host this way, and the
instance runner starts each worker this way: a Ctrl-C in the terminal reaches only the
supervisor, which then stops its children in order.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def spawn(argv: list[str], env: Mapping[str, str], cwd: Path, log_path: Path, *,
          append: bool = False) -> subprocess.Popen:
    """Start ``argv`` in a new session (its own process group), stdout and stderr into
    ``log_path``, tied to this process's life (``die_with_parent``)."""
    with log_path.open("ab" if append else "wb") as log_file:
        return subprocess.Popen(
            argv,
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent(),
        )


def die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` that has Linux send the child SIGTERM when the process that
    started it dies, so children do not outlive a supervisor killed with SIGKILL (an
    orderly stop never relies on it). The kernel ties this to the starting *thread*:
    start children from the main thread. Elsewhere than Linux: None (no such guard)."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent = os.getpid()

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return preexec


def signal_group(pid: int, signum: int) -> None:
    """Signal the process group led by ``pid``; one that is already gone is fine."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signum)

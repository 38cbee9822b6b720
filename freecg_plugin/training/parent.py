"""A training run started by another process (``freecg compare``'s local runs) ends with it.

The parent names itself in :data:`PARENT_ENV`; the child asks Linux to send it SIGTERM when that
parent dies (``prctl(PR_SET_PDEATHSIG)``). Without it, a comparison stopped with ``kill`` left its
current run training on its own, and the next ``freecg compare`` started the same run a second
time in the same folder. (Ctrl-C reaches both already: they share the terminal's process group.)
The run's checkpoints are written atomically, so the next ``freecg compare`` resumes it.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

__all__ = ["PARENT_ENV", "follow_parent"]

PARENT_ENV = "FREECG_PARENT_PID"
_PR_SET_PDEATHSIG = 1


def follow_parent() -> None:
    """End this process (SIGTERM) when the process named in :data:`PARENT_ENV` ends; exit at
    once if it has ended already. Nothing without the variable, or off Linux."""
    parent = os.environ.get(PARENT_ENV)
    if not parent or not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != int(parent):  # the parent died before the request took effect
        sys.exit(f"freecg train: the process that started this run ({parent}) has ended")

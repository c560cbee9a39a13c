"""The oldest Python the remote agent supports (3.8), for the tests that run the agent on it."""

from __future__ import annotations

import glob
import os
import shutil


def oldest_python() -> str:
    """A Python 3.8: ``MDTUI_PYTHON38``, pyenv's, or ``python3.8`` on PATH.  Never skipped:
    without one, the tests that need it fail and say how to provide it."""
    found = [os.environ.get("MDTUI_PYTHON38", "")]
    found += sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.8*/bin/python3.8")))
    found += [shutil.which("python3.8") or ""]
    for path in found:
        if path and os.access(path, os.X_OK):
            return path
    raise AssertionError(
        "no Python 3.8 to run the remote agent on: set MDTUI_PYTHON38, or install one (pyenv install 3.8)"
    )

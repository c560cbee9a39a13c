"""Where a crash's traceback goes: a file, named on exit, as well as the screen.

Textual prints the traceback of an unhandled exception once the terminal is restored; when
the terminal is gone (or the screen scrolls away) that copy is lost, so it is also written
to ``$XDG_STATE_HOME/mdtui/`` (``~/.local/state/mdtui/``).
"""

from __future__ import annotations

import logging
import os
import time
import traceback
from pathlib import Path

from . import __version__


def directory() -> Path:
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "mdtui"


def save(error: BaseException) -> Path | None:
    """Write the traceback of ``error``; its path, or None when it could not be written."""
    path = directory() / f"crash-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.txt"
    text = f"mdtui {__version__} crashed\n\n" + "".join(traceback.format_exception(error))
    logging.getLogger(__name__).error("%s", text)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    except OSError:
        return None
    return path

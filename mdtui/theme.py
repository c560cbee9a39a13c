"""The TUI's theme: Textual's themes by name (``--theme``, the palette's "Change theme"),
the one chosen last remembered in ``$XDG_STATE_HOME/mdtui/theme``.

What is remembered is only ever a name: a file that names no theme (edited, or of another
Textual) is ignored, never an error.  The screens use the theme's variables only
(``mdtui/app.tcss``, the widgets' CSS), so every theme, light ones included, is readable.
"""

from __future__ import annotations

from pathlib import Path

from textual.theme import BUILTIN_THEMES

from . import atomic, crash

DEFAULT = "textual-dark"


def remembered_path() -> Path:
    return crash.directory() / "theme"


def remembered() -> str | None:
    """The theme chosen last, if it still names one."""
    try:
        name = remembered_path().read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None
    return name if name in BUILTIN_THEMES else None


def remember(name: str) -> None:
    """Keep ``name`` for the next start; a state directory that cannot be written is no
    reason to fail a theme change."""
    path = remembered_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic.replace(str(path), name.encode() + b"\n")
    except OSError:
        pass


def choose(asked: str | None) -> str:
    """``--theme`` if given, else the one remembered, else the default."""
    return asked or remembered() or DEFAULT

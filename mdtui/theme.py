"""The TUI's theme: Textual's themes by name (``--theme``, the configuration's ``theme``,
the palette's "Change theme"), the one chosen last in the palette remembered in
``$XDG_STATE_HOME/mdtui/theme`` (mdtui/config.py ``effective`` decides which wins).

What is remembered is only ever a name: a file that names no theme (edited, or of another
Textual) is ignored, never an error.  The screens use the theme's variables only
(``mdtui/app.tcss``, the widgets' CSS), so every theme, light ones included, is readable.
Where nothing chose one, a terminal of 16 colours gets ``ansi-dark``: a theme of the
terminal's own colours, which its user has made readable; the other themes' colours would be
rounded to the nearest of 16, and orange on blue becomes red on cyan.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from . import atomic, crash

DEFAULT = "textual-dark"
#: where nothing chose a theme and the terminal has 16 colours (or 8)
DEFAULT_16 = "ansi-dark"


def remembered_path() -> Path:
    return crash.directory() / "theme"


def remembered() -> str | None:
    """The theme chosen last, if it still names one."""
    from .cli import THEMES  # Textual's names, without importing Textual (a test keeps them equal)

    try:
        name = remembered_path().read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None
    return name if name in THEMES else None


def remember(name: str) -> None:
    """Keep ``name`` for the next start; a state directory that cannot be written is no
    reason to fail a theme change."""
    path = remembered_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic.replace(str(path), name.encode() + b"\n")
    except OSError:
        pass


def default(environ: Mapping[str, str] = os.environ) -> tuple[str, str]:
    """The theme when nothing chose one, and why: the terminal's colours as Textual will
    find them (TEXTUAL_COLOR_SYSTEM, else rich's reading of TERM and COLORTERM)."""
    system = environ.get("TEXTUAL_COLOR_SYSTEM", "auto")
    if system == "auto":
        from rich.console import Console

        system = Console(force_terminal=True, _environ=dict(environ)).color_system or "standard"
    if system in ("standard", "windows"):
        return DEFAULT_16, f"default (a terminal of 16 colours: TERM={environ.get('TERM', '')})"
    return DEFAULT, "default"

"""Loaded modules and what pins them, in ``lsmod``'s columns (without its size column)."""

from __future__ import annotations

from rich.text import Text

from ..model import SystemSnapshot
from .inplace import InPlace


def render_modules(snap: SystemSnapshot) -> Text:
    """One line per module: name, refcnt ("built-in" for code that cannot be unloaded), and the
    modules using it.  Lines are cropped, never wrapped: the columns stay aligned."""
    width = max((len(m.name) for m in snap.modules), default=6)
    out = Text(end="")
    out.append(f"{'Module':<{width}}  {'refcnt':>8}  Used by", style="bold")
    for m in snap.modules:
        refcnt = "built-in" if m.refcnt is None else str(m.refcnt)
        out.append(f"\n{m.name:<{width}}  {'':>{8 - len(refcnt)}}")  # styled spans carry no padding
        out.append(refcnt, style="dim" if m.refcnt is None else "bold" if m.refcnt else "")
        out.append(f"  {','.join(m.used_by)}")
    return out


class ModuleList(InPlace):
    DEFAULT_CSS = "ModuleList { text-wrap: nowrap; text-overflow: ellipsis; }"

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self._shown: object = None

    def show(self, snap: SystemSnapshot) -> None:
        if snap.modules != self._shown:
            self._shown = snap.modules
            self.set_renderable(render_modules(snap))

"""Loaded modules and what pins them, in ``lsmod``'s columns (without its size column)."""

from __future__ import annotations

from ..model import SystemSnapshot
from .lines import Lines, Pieces


def module_rows(snap: SystemSnapshot) -> tuple[Pieces, ...]:
    """One line per module: name, refcnt ("built-in" for code that cannot be unloaded), and the
    modules using it.  Lines are cropped, never wrapped: the columns stay aligned."""
    width = max((len(m.name) for m in snap.modules), default=6)
    rows: list[Pieces] = [((f"{'Module':<{width}}  {'refcnt':>8}  Used by", "bold"),)]
    host = ""
    for m in snap.modules:
        if m.host != host:  # several machines: each heads its modules
            host = m.host
            rows.append(((host, "bold underline"),))
        refcnt = "built-in" if m.refcnt is None else str(m.refcnt)
        rows.append(
            (
                (f"{m.name:<{width}}  {'':>{8 - len(refcnt)}}", ""),  # styled pieces carry no padding
                (refcnt, "dim" if m.refcnt is None else "bold" if m.refcnt else ""),
                (f"  {','.join(m.used_by)}", ""),
            )
        )
    return tuple(rows)


class ModuleList(Lines):
    ELLIPSIS = True

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self._names: tuple[str, ...] = ()

    def show(self, snap: SystemSnapshot) -> None:
        names = tuple(f"{m.host}/{m.name}" for m in snap.modules)
        self.set_rows(module_rows(snap), shrink=names != self._names)  # loaded or unloaded: fit again
        self._names = names

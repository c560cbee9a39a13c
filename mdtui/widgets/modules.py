"""Loaded modules and what pins them: ``lsmod``'s columns."""

from __future__ import annotations

from rich.text import Text

from ..model import SystemSnapshot
from .tables import CompactTable


class ModuleTable(CompactTable[Text]):
    def on_mount(self) -> None:
        super().on_mount()
        self.cursor_type = "none"
        self.add_columns("module", "refcnt", "used by")

    def show(self, snap: SystemSnapshot) -> None:
        if snap.modules == getattr(self, "_shown", None):
            return
        self._shown = snap.modules
        self.clear()
        for m in snap.modules:
            refcnt = "built-in" if m.refcnt is None else str(m.refcnt)
            self.add_row(Text(m.name), Text(refcnt), Text(",".join(m.used_by)))

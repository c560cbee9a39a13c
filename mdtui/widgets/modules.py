"""Loaded modules and what pins them: ``lsmod``'s columns."""

from __future__ import annotations

from textual.widgets import DataTable

from ..model import SystemSnapshot


class ModuleTable(DataTable[str]):
    def on_mount(self) -> None:
        self.cursor_type = "none"
        self.add_columns("module", "refcnt", "used by")

    def show(self, snap: SystemSnapshot) -> None:
        self.clear()
        for m in snap.modules:
            self.add_row(m.name, "built-in" if m.refcnt is None else str(m.refcnt), ",".join(m.used_by))

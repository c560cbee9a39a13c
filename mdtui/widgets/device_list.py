"""One row per media device: node, model, driver, refcount, holders, state."""

from __future__ import annotations

from rich.text import Text
from textual.message import Message
from textual.widgets import DataTable

from ..model import MediaDeviceView, SystemSnapshot
from .tables import CompactTable

STATE_STYLE = {
    "ANOMALY": "bold red",
    "held, not registered": "yellow",
    "deferred release": "yellow",
    "shared": "bold green",
}


class DeviceList(CompactTable[Text]):
    class Selected(Message):
        def __init__(self, key: str | None) -> None:
            super().__init__()
            self.key = key

    COLUMNS = ("mark", "node", "model", "driver", "ref", "holders", "state")

    def on_mount(self) -> None:
        super().on_mount()
        self.cursor_type = "row"
        self.zebra_stripes = True
        self._keys: list[str] = []
        self._shown: dict[str, tuple[Text, ...]] = {}
        for key in self.COLUMNS:
            self.add_column("" if key == "mark" else key, key=key, width=1 if key == "mark" else None)

    @property
    def selected_key(self) -> str | None:
        if not self.row_count:
            return None
        return str(self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value)

    def show(self, snap: SystemSnapshot) -> None:
        """Update changed cells in place; rebuild only when devices come or go."""
        rows = {dev.key: self._cells(dev) for dev in snap.media_devices}
        if list(rows) == self._keys:
            for key, cells in rows.items():
                old = self._shown.get(key, ())
                for column, value, before in zip(self.COLUMNS, cells, old, strict=True):
                    if value != before:  # widen a column only when a cell outgrows it
                        wider = len(str(value)) > self.columns[column].content_width  # type: ignore[index]
                        self.update_cell(key, column, value, update_width=wider)
            self._shown = rows
            return
        keep = self.selected_key
        self.clear()
        for key, cells in rows.items():
            self.add_row(*cells, key=key)
        self._keys, self._shown = list(rows), rows
        if keep in self._keys:
            self.move_cursor(row=self._keys.index(keep))
        self.post_message(self.Selected(self.selected_key))

    @staticmethod
    def _cells(dev: MediaDeviceView) -> tuple[Text, ...]:
        """Every cell a Text: plain strings would be parsed as markup on every render."""
        mark = Text("⇄", style="bold cyan") if dev.shared else Text(" ")
        node = Text(dev.name, style="" if dev.registered else "italic yellow")
        if dev.unread is not None:  # the ioctls failed: say so, invent nothing (the detail says why)
            unknown = "?" if dev.refcount is None else str(dev.refcount)
            state = Text(f"unknown: {dev.unread.state}", style="yellow")
            model, driver = Text(dev.info.model or "?"), Text(dev.info.driver or "?")
            return mark, node, model, driver, Text(unknown), Text("?"), state
        ref = Text("-" if dev.refcount is None else str(dev.refcount))
        holders = Text(", ".join(sorted({h.driver for h in dev.holders})) or "none")
        state = Text(dev.state, style=STATE_STYLE.get(dev.state, ""))
        return mark, node, Text(dev.info.model), Text(dev.info.driver), ref, holders, state

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        self.post_message(self.Selected(str(event.row_key.value) if event.row_key else None))

"""One row per media device: node, model, driver, refcount, holders, state."""

from __future__ import annotations

from rich.text import Text
from textual.message import Message
from textual.widgets import DataTable

from ..model import MediaDeviceView, SystemSnapshot

STATE_STYLE = {"ANOMALY": "bold red", "held, not registered": "yellow", "shared": "bold green"}


class DeviceList(DataTable[Text | str]):
    class Selected(Message):
        def __init__(self, key: str | None) -> None:
            super().__init__()
            self.key = key

    def on_mount(self) -> None:
        self.cursor_type = "row"
        self.zebra_stripes = True
        self.add_column("", key="mark", width=1)
        self.add_column("node", key="node")
        self.add_column("driver", key="driver")
        self.add_column("ref", key="ref")
        self.add_column("holders", key="holders")
        self.add_column("state", key="state")
        self.add_column("model", key="model")

    @property
    def selected_key(self) -> str | None:
        if not self.row_count:
            return None
        return str(self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value)

    def show(self, snap: SystemSnapshot) -> None:
        keep = self.selected_key
        self.clear()
        for dev in snap.media_devices:
            self.add_row(*self._cells(dev), key=dev.key)
        keys = [d.key for d in snap.media_devices]
        if keep in keys:
            self.move_cursor(row=keys.index(keep))
        self.post_message(self.Selected(self.selected_key))

    @staticmethod
    def _cells(dev: MediaDeviceView) -> tuple[Text | str, ...]:
        mark = Text("⇄", style="bold cyan") if dev.shared else Text(" ")
        node = Text(dev.name, style="" if dev.registered else "italic yellow")
        ref = "-" if dev.refcount is None else str(dev.refcount)
        holders = "+".join(sorted({h.driver for h in dev.holders})) or "none"
        state = Text(dev.state, style=STATE_STYLE.get(dev.state, ""))
        return mark, node, dev.info.driver, ref, holders, state, dev.info.model

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        self.post_message(self.Selected(str(event.row_key.value) if event.row_key else None))

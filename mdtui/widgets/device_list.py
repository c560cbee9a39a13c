"""One row per media device: node, model, driver, refcount, holders, state; a row cursor.
With machines read remotely or several at once, each machine heads its devices with a row
of its own (its name, and whether it is connected; why not, and when it is tried again);
the cursor steps over those rows."""

from __future__ import annotations

from collections.abc import Hashable
from typing import NamedTuple

from rich.cells import cell_len
from rich.style import Style
from textual import events
from textual.binding import Binding
from textual.message import Message
from textual.reactive import reactive

from ..model import HostView, MediaDeviceView, SystemSnapshot
from .lines import Lines, Pieces
from .lines import pieces_width as cell_width

STATE_STYLE = {
    "ANOMALY": "bold red",
    "held, not registered": "yellow",
    "deferred release": "yellow",
    "shared": "bold green",
}
HOST_STYLE = {"connected": "bold", "connecting": "bold yellow", "disconnected": "bold red"}

COLUMNS = ("", "node", "model", "driver", "ref", "holders", "state")
MODEL = COLUMNS.index("model")
#: the narrowest the model column gets when the list is wider than the widget: it gives way
#: first (a long name, "UVC Camera (046d:0825)", ends in "…"), so the state stays in view
MIN_MODEL = 12


class DeviceList(Lines, can_focus=True):
    """A row per device (a row is its cells, so an unchanged device is never redrawn); the
    cursor row is the selected device."""

    class Selected(Message):
        def __init__(self, key: str | None) -> None:
            super().__init__()
            self.key = key

    BINDINGS = [
        Binding("up", "cursor(-1)", "Up", show=False),
        Binding("down", "cursor(1)", "Down", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("home", "cursor(-1_000_000)", "First", show=False),
        Binding("end", "cursor(1_000_000)", "Last", show=False),
        Binding("left", "scroll_left", "Scroll left", show=False),
        Binding("right", "scroll_right", "Scroll right", show=False),
    ]
    COMPONENT_CLASSES = {"device-list--header", "device-list--cursor", "device-list--stripe"}
    DEFAULT_CSS = """
    DeviceList {
        height: auto;
        overflow: auto auto;
        background: $surface;
        & > .device-list--header { text-style: bold; background: $panel; color: $foreground; }
        & > .device-list--stripe { background: $surface-lighten-1 50%; }
        &:dark > .device-list--stripe { background: $surface-darken-1 40%; }
        & > .device-list--cursor {
            background: $block-cursor-blurred-background;
            color: $block-cursor-blurred-foreground;
            text-style: $block-cursor-blurred-text-style;
        }
        &:focus {
            background-tint: $foreground 5%;
            & > .device-list--cursor {
                background: $block-cursor-background;
                color: $block-cursor-foreground;
                text-style: $block-cursor-text-style;
            }
        }
    }
    """

    cursor: reactive[int] = reactive(0, always_update=False, repaint=False)

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self._keys: list[str | None] = []  # per row: its device's key, None for a machine's row
        self._cells: list[tuple[Pieces, ...] | HostLine] = []  # per row: its cells, or a machine's line
        self._column_widths: tuple[int, ...] = ()
        #: per device key: the view last shown, its cells and their widths
        self._known: dict[str, tuple[MediaDeviceView, tuple[Pieces, ...], tuple[int, ...]]] = {}
        #: the bus_info of the selected device while it is gone (unplugged, unbound): the
        #: selection goes back to it when it returns, whatever /dev/mediaN it gets then
        self._gone: str | None = None

    @property
    def selected_key(self) -> str | None:
        return self._keys[self.cursor] if self.cursor < len(self._keys) else None

    def cells(self, key: str) -> tuple[str, ...]:
        """The text of a device's cells, as shown."""
        return tuple("".join(text for text, _ in cell) for cell in self._cells[self._keys.index(key)])  # type: ignore[union-attr]

    def show(self, snap: SystemSnapshot) -> None:
        """Redraw the rows that changed; say which device is selected when devices come or go."""
        keep = self.selected_key
        groups = _groups(snap)
        keys = [d.key if isinstance(d, MediaDeviceView) else None for d in groups]
        fit = keys != self._keys or not self._column_widths  # devices came or went: fit the columns again
        known = self._known
        if fit and keep is not None and keep not in keys and keep in known:
            self._gone = known[keep][0].info.bus_info or None
        self._known = {}
        rows = []
        new_cells = []  # the widths of cells not shown before
        for dev in snap.media_devices:  # a device equal to the one shown keeps its cells
            seen = known.get(dev.key)
            if seen is None or seen[0] != dev:
                cells = self._row_cells(dev)  # most changes (an owner's refcnt) are not in a cell
                if seen is None or cells != seen[1]:
                    seen = (dev, cells, tuple(cell_width(cell) for cell in cells))
                    new_cells.append(seen[2])
                else:
                    seen = (dev, seen[1], seen[2])
            self._known[dev.key] = seen
            rows.append(seen)
        cells_of = {key: cells for key, (_, cells, _) in zip(keys_of(snap), rows, strict=True)}
        self._cells = [cells_of[d.key] if isinstance(d, MediaDeviceView) else _host_line(d) for d in groups]
        widths = self._column_widths
        if fit:
            widths = tuple(max([cell_len(t), *(w[n] for _, _, w in rows)]) for n, t in enumerate(COLUMNS))
        elif new_cells:  # else a column only widens: a cell that comes and goes does not move the others
            widths = tuple(max([widths[n], *(w[n] for w in new_cells)]) for n in range(len(COLUMNS)))
        self._column_widths = widths
        self._keys = keys
        self._lay_out(shrink=fit)
        if fit:
            back = [
                n
                for n, dev in enumerate(groups)
                if self._gone and isinstance(dev, MediaDeviceView) and dev.info.bus_info == self._gone
            ]
            if back:  # the selected device is back (a replug: another node number, same bus_info)
                self.cursor, self._gone = back[0], None
            else:
                self.cursor = keys.index(keep) if keep in keys else self._device_row(self.cursor, 1)
            self.post_message(self.Selected(self.selected_key))

    def _lay_out(self, shrink: bool) -> None:
        """The rows at the column widths, the model column narrowed to fit the widget."""
        widths = self._column_widths
        over = sum(widths) + 2 * len(widths) - self.scrollable_content_region.width
        if self.scrollable_content_region.width and over > 0 and widths[MODEL] > MIN_MODEL:
            model = max(MIN_MODEL, widths[MODEL] - over)
            widths = (*widths[:MODEL], model, *widths[MODEL + 1 :])
        header = tuple(((title, ""),) for title in COLUMNS)
        self.set_rows(
            [(cells, widths) if key is not None else cells for key, cells in zip(self._keys, self._cells, strict=True)],
            header=[(header, widths)],
            width=sum(widths) + 2 * len(widths),
            shrink=shrink,
        )

    def render_row(self, row: Hashable) -> Pieces:
        if isinstance(row, HostLine):
            return row.pieces
        cells, widths = row  # type: ignore[misc]
        pieces: list[tuple[str, str]] = []
        for cell, width in zip(cells, widths, strict=True):
            if cell_width(cell) > width:
                cell = _clip(cell, width)
            pieces += [(" ", ""), *cell, (" " * (width - cell_width(cell) + 1), "")]
        return tuple(pieces)

    def row_style(self, index: int) -> Style | None:
        if index == self.cursor:
            return self.get_component_rich_style("device-list--cursor")
        return self.get_component_rich_style("device-list--stripe") if index % 2 else None

    def row_style_wins(self, index: int) -> bool:
        return index == self.cursor

    def header_style(self) -> Style:
        return self.get_component_rich_style("device-list--header")

    @staticmethod
    def _row_cells(dev: MediaDeviceView) -> tuple[Pieces, ...]:
        mark = (("⇄", "bold cyan"),) if dev.shared else ((" ", ""),)
        node = ((dev.name, "" if dev.registered else "italic yellow"),)
        if dev.unread is not None:  # the ioctls failed: say so, invent nothing (the detail says why)
            unknown = "?" if dev.refcount is None else str(dev.refcount)
            state = ((f"unknown: {dev.unread.state}", "yellow"),)
            model, driver = ((dev.info.model or "?", ""),), ((dev.info.driver or "?", ""),)
            return mark, node, model, driver, ((unknown, ""),), (("?", ""),), state
        ref = (("-" if dev.refcount is None else str(dev.refcount), ""),)
        holders = ((", ".join(sorted({h.driver for h in dev.holders})) or "none", ""),)
        state = ((dev.state, STATE_STYLE.get(dev.state, "")),)
        return mark, node, ((dev.info.model, ""),), ((dev.info.driver, ""),), ref, holders, state

    # -- the cursor --------------------------------------------------------------------------

    def watch_cursor(self, old: int, new: int) -> None:
        self.redraw_row(old)
        self.redraw_row(new)
        self._show_cursor()

    def on_resize(self) -> None:
        if self._column_widths:
            self._lay_out(shrink=True)  # the model column gives way, or takes its width back
        self._show_cursor()  # a shorter list must still show the selected row

    def _show_cursor(self) -> None:
        visible = max(1, self.scrollable_content_region.height - 1)  # the header stays
        if self.cursor < self.scroll_y:
            self.scroll_to(y=self.cursor, animate=False, immediate=True)
        elif self.cursor >= self.scroll_y + visible:
            self.scroll_to(y=self.cursor - visible + 1, animate=False, immediate=True)

    def _device_row(self, row: int, step: int) -> int:
        """The first device's row from ``row`` on, going ``step``; else the other way; else 0."""
        row = max(0, min(row, len(self._keys) - 1))
        for direction in (step, -step):
            n = row
            while 0 <= n < len(self._keys):
                if self._keys[n] is not None:
                    return n
                n += direction
        return 0

    def _move(self, row: int) -> None:
        step = 1 if row > self.cursor else -1
        row = self._device_row(row, step)
        if self._keys and row != self.cursor and self._keys[row] is not None:
            self._gone = None  # the user chose another device
            self.cursor = row
            self.post_message(self.Selected(self.selected_key))

    def action_cursor(self, delta: int) -> None:
        self._move(self.cursor + delta)

    def action_page(self, direction: int) -> None:
        self._move(self.cursor + direction * max(1, self.scrollable_content_region.height - 1))

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is not None and offset.y >= 1:
            row = int(self.scroll_y) + offset.y - 1
            if row < len(self._keys) and self._keys[row] is not None:
                self._move(row)


def keys_of(snap: SystemSnapshot) -> list[str]:
    return [dev.key for dev in snap.media_devices]


def _groups(snap: SystemSnapshot) -> list[MediaDeviceView | HostView]:
    """The rows in order: with machines named, each machine, then its devices."""
    if not snap.hosts:
        return list(snap.media_devices)
    alone = len(snap.hosts) == 1  # one remote machine: its devices do not carry its name
    out: list[MediaDeviceView | HostView] = []
    for host in snap.hosts:
        out.append(host)
        out += [d for d in snap.media_devices if d.host == host.name or (alone and not d.host)]
    return out


class HostLine(NamedTuple):
    """A machine's row: `` board-a  connected`` (then why not, and when it is tried again)."""

    pieces: Pieces


def _host_line(host: HostView) -> HostLine:
    line: list[tuple[str, str]] = [(f" {host.name}  ", "bold"), (host.state, HOST_STYLE.get(host.state, ""))]
    if host.detail:
        line.append((f": {host.detail}", "dim"))
    return HostLine(tuple(line))


def _clip(cell: Pieces, width: int) -> Pieces:
    """``cell`` cut to ``width`` cells, its last one "…"."""
    out: list[tuple[str, str]] = []
    room = width - 1
    for text, style in cell:
        while text and cell_len(text) > room:
            text = text[:-1]
        out.append((text, style))
        room -= cell_len(text)
        if room <= 0:
            break
    return (*out, ("…", cell[-1][1] if cell else ""))

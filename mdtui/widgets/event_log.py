"""The event log: uevents, module events, kernel log lines, refused actions and the allocator
changes derived from them, coloured by kind and filterable (``/``)."""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable, Sequence
from typing import NamedTuple

from allocator import Event

from ..changes import Change
from ..watch import STYLES, event_text
from .lines import Lines, Pieces, pieces_width

KEEP = 5000  # entries kept for filtering
SHOWN = 300  # lines the log keeps on show (each keeps its rendered strip)


class Entry(NamedTuple):
    time: float
    kind: str
    level: str
    device: str
    text: str

    def matches(self, query: str) -> bool:
        """``kind:trace`` matches a kind, anything else is a case-insensitive substring."""
        if not query:
            return True
        if query.startswith("kind:"):
            return self.kind.startswith(query[5:].strip())
        q = query.lower()
        return q in self.text.lower() or q in self.device.lower() or q in self.kind

    def pieces(self) -> Pieces:
        style = "dim" if self.level == "debug" else STYLES.get(self.kind, "")
        return (
            (f"{self.time:11.6f} ", "dim"),
            (f"{self.kind:<9} ", STYLES.get(self.kind, "")),
            (f"{self.device:<12} ", "bold"),
            (self.text, "bold red" if "ANOMALY" in self.text or self.level == "warn" else style),
        )


class EventLog(Lines):
    """The last ``SHOWN`` matching entries, one per line, following the newest unless scrolled
    back; an entry is rendered once (the strip cache of ``Lines``) however far it scrolls."""

    DEFAULT_CSS = "EventLog { overflow: auto auto; }"

    def __init__(self, keep: int = KEEP, **kwargs: object) -> None:
        """``keep``: the entries kept for filtering (the configuration's ``event_log``)."""
        super().__init__(**kwargs)
        self.entries: deque[Entry] = deque(maxlen=keep)
        self.query_text = ""
        self._shown: deque[Entry] = deque(maxlen=SHOWN)
        self._width = 0  # the widest entry shown since the last filter

    def render_row(self, row: Hashable) -> Pieces:
        return row.pieces()  # type: ignore[attr-defined]

    def add_events(self, events: Sequence[Event], changes: Sequence[Change] = (), when: float = 0.0) -> None:
        """A batch of events, then the allocator changes they caused (stamped ``when``, the
        time of the last event behind them)."""
        entries = [Entry(e.time, e.kind, e.level, e.device, event_text(e)) for e in events]
        entries += [Entry(when, "allocator", "", c.device, c.text) for c in changes]
        self.entries.extend(entries)
        self._show([e for e in entries if e.matches(self.query_text)])

    def restart(self, events: Sequence[Event]) -> None:
        """Another machine: its history in place of everything shown (the filter stays)."""
        self.entries.clear()
        self.set_filter(self.query_text)
        self.add_events(events)

    def set_filter(self, query: str) -> int:
        """Show only matching entries; returns how many match."""
        self.query_text = query.strip()
        shown = [e for e in self.entries if e.matches(self.query_text)]
        self._shown.clear()
        self._width = 0
        self._show(shown[-SHOWN:], shrink=True)
        return len(shown)

    def on_mount(self) -> None:
        self.anchor()  # follow the newest line until the user scrolls back

    def watch_scroll_y(self, old: float, new: float) -> None:
        super().watch_scroll_y(old, new)
        # scrolled back to the newest line: follow again.  Widget.watch_scroll_y does this for
        # other widgets; ScrollView's own watcher (textual 8.2.8) leaves it out
        self._check_anchor()

    def _show(self, entries: list[Entry], *, shrink: bool = False) -> None:
        if entries or not self.rows or shrink:
            self._shown.extend(entries)
            self._width = max([self._width, *(pieces_width(e.pieces()) for e in entries)])
            self.set_rows(tuple(self._shown), width=self._width, shrink=shrink)

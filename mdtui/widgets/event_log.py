"""The event log: uevents, module events, kernel log lines, refused actions and the allocator
changes derived from them, coloured by kind and filterable (``/``)."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import NamedTuple

from rich.text import Text
from textual.widgets import RichLog

from allocator import Event

from ..changes import Change
from ..watch import STYLES, event_text

KEEP = 5000  # entries kept for filtering
SHOWN = 300  # rendered lines the log keeps (each costs ~50 GC-tracked objects)


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

    def render(self) -> Text:
        style = "dim" if self.level == "debug" else STYLES.get(self.kind, "")
        line = Text(f"{self.time:11.6f} ", style="dim")
        line.append(f"{self.kind:<9} ", style=STYLES.get(self.kind, ""))
        line.append(f"{self.device:<12} ", style="bold")
        line.append(self.text, style="bold red" if "ANOMALY" in self.text or self.level == "warn" else style)
        return line


class EventLog(RichLog):
    def __init__(self, **kwargs: object) -> None:
        super().__init__(max_lines=SHOWN, wrap=False, markup=False, highlight=False, **kwargs)  # type: ignore[arg-type]
        self.entries: deque[Entry] = deque(maxlen=KEEP)
        self.query_text = ""

    def add_events(self, events: Sequence[Event], changes: Sequence[Change] = (), when: float = 0.0) -> None:
        """A batch of events, then the allocator changes they caused (stamped ``when``, the
        time of the last event behind them), in one write."""
        entries = [Entry(e.time, e.kind, e.level, e.device, event_text(e)) for e in events]
        entries += [Entry(when, "allocator", "", c.device, c.text) for c in changes]
        self._add(entries)

    def _add(self, entries: list[Entry]) -> None:
        self.entries.extend(entries)
        self._write([e for e in entries if e.matches(self.query_text)])

    def _write(self, entries: list[Entry]) -> None:
        """One write per batch: every write re-lays out the screen (its virtual size grows)."""
        if entries:
            self.write(Text("\n").join(e.render() for e in entries))

    def set_filter(self, query: str) -> int:
        """Show only matching entries; returns how many match."""
        self.query_text = query.strip()
        self.clear()
        shown = [e for e in self.entries if e.matches(self.query_text)]
        self._write(shown[-SHOWN:])
        return len(shown)

"""``mdtui watch``: one line per event, plus one per allocator change, until Ctrl-C.

A line is ``TIME KIND DEVICE TEXT``; allocator lines read ``media0 refcount 2→1 (au0828
unbound 1-1:1.0)``.  Styled on a terminal, plain when piped, JSON lines with ``--json``.
"""

from __future__ import annotations

import json
from typing import IO

from rich.console import Console
from rich.text import Text

from allocator import Event

from .follow import Follower
from .pipeline import Update
from .render.text import printable
from .sources import Source

STYLES = {
    "uevent": "cyan",
    "module": "magenta",
    "trace": "green",
    "error": "bold red",
    "allocator": "bold yellow",
}


def event_text(e: Event) -> str:
    if e.kind == "uevent":
        f = e.fields
        extra = f" DRIVER={f['DRIVER']}" if "DRIVER" in f else ""
        name = f.get("DEVNAME", "")  # the kernel's is relative to /dev; libudev's is a path
        node = f" {name}" if name.startswith("/") else f" /dev/{name}" if name else ""
        return f"{f.get('ACTION')} {f.get('SUBSYSTEM')} {e.device}{node}{extra} SEQNUM={f.get('SEQNUM')}"
    if e.kind == "error":
        return f"{e.text} [{e.fields['ERRNO']}]" if e.fields.get("ERRNO") else e.text
    return e.text


class _Console(Console):
    def on_broken_pipe(self) -> None:
        """The reader went away (``| head``): let the CLI end the way it ends every
        write failure (rich's own handler would exit 1 from inside a print)."""
        self.quiet = True
        raise BrokenPipeError


class Printer:
    def __init__(self, out: IO[str], as_json: bool, styled: bool | None) -> None:
        self.as_json = as_json
        self.out = out
        self.console = _Console(file=out, force_terminal=styled, highlight=False, soft_wrap=True)

    def line(self, time: float, kind: str, device: str, text: str, seq: int | None = None) -> None:
        if self.as_json:
            record = {"time": round(time, 6), "kind": kind, "device": device, "text": text}
            if seq is not None:
                record["seq"] = seq
            self.out.write(json.dumps(record, ensure_ascii=False) + "\n")
            self.out.flush()
            return
        t = Text(f"{time:12.6f} ", style="dim")
        t.append(f"{kind:<9}", style=STYLES.get(kind, ""))
        t.append(f" {printable(device):<12} ", style="bold")  # a process or device may name itself with escapes
        t.append(printable(text), style="red" if "ANOMALY" in text else "")
        self.console.print(t)


class Watch(Follower):
    """Prints what the pipeline (mdtui/pipeline.py) makes of a source's events: a line per
    event and per change, as they happen (mdtui/follow.py: on the calling thread)."""

    def __init__(self, source: Source, printer: Printer) -> None:
        super().__init__(source)
        self.printer = printer

    def apply(self, update: Update) -> None:
        for e in update.events:
            self.printer.line(e.time, e.kind, e.device, event_text(e), e.seq)
        for c in update.changes:
            self.printer.line(update.when, "allocator", c.device, c.text)

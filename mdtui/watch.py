"""``mdtui watch``: one line per event, plus one per allocator change, until Ctrl-C.

A line is ``TIME KIND DEVICE TEXT``; allocator lines read ``media0 refcount 2→1 (au0828
unbound 1-1:1.0)``.  Styled on a terminal, plain when piped, JSON lines with ``--json``.
"""

from __future__ import annotations

import json
import os
import queue
import selectors
import threading
from collections.abc import Callable
from typing import IO, Protocol

from rich.console import Console
from rich.text import Text

from allocator import Event

from .changes import Change, cause_of, diff
from .model import SystemSnapshot
from .script import Step

STYLES = {
    "uevent": "cyan",
    "module": "magenta",
    "trace": "green",
    "error": "bold red",
    "allocator": "bold yellow",
}


class WatchSource(Protocol):
    def subscribe(self, callback: Callable[[Event], None]) -> Callable[[], None]: ...
    def snapshot(self) -> SystemSnapshot: ...
    def run(self, step: Step) -> None: ...
    def now(self) -> float: ...


def event_text(e: Event) -> str:
    if e.kind == "uevent":
        f = e.fields
        extra = f" DRIVER={f['DRIVER']}" if "DRIVER" in f else ""
        name = f.get("DEVNAME", "")  # the kernel's is relative to /dev; libudev's is a path
        node = f" {name}" if name.startswith("/") else f" /dev/{name}" if name else ""
        return f"{f.get('ACTION')} {f.get('SUBSYSTEM')} {e.device}{node}{extra} SEQNUM={f.get('SEQNUM')}"
    if e.kind == "error":
        return f"{e.text} [{e.fields.get('ERRNO', '')}]"
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
        t.append(f" {device:<12} ", style="bold")
        t.append(text, style="red" if "ANOMALY" in text else "")
        self.console.print(t)


class Watch:
    """Feeds events and snapshot diffs to a printer.  Kernel callbacks only enqueue."""

    def __init__(self, source: WatchSource, printer: Printer) -> None:
        self.source = source
        self.printer = printer
        self.events: queue.Queue[Event] = queue.Queue()
        self.wake = threading.Event()
        self.stopped = False
        self._stop_r, self._stop_w = os.pipe()
        self.last = source.snapshot()
        self._unsubscribe = source.subscribe(self._on_event)

    def _on_event(self, event: Event) -> None:
        self.events.put(event)
        self.wake.set()

    def flush(self, cause: str = "") -> None:
        batch: list[Event] = []
        while True:
            try:
                batch.append(self.events.get_nowait())
            except queue.Empty:
                break
        for e in batch:
            self.printer.line(e.time, e.kind, e.device, event_text(e), e.seq)
        if not batch and not cause:
            return
        now = self.source.snapshot()
        when = batch[-1].time if batch else self.source.now()  # one clock: the source's
        changes: list[Change] = diff(self.last, now, cause_of(batch, self.last) or cause)
        for c in changes:
            self.printer.line(when, "allocator", c.device, c.text)
        self.last = now

    def run_script(self, steps: list[Step]) -> list[tuple[Step, OSError]]:
        """Run and print each step; the refused ones (each an error event too) are returned."""
        refused = []
        for step in steps:
            try:
                self.source.run(step)
            except OSError as exc:
                refused.append((step, exc))
            self.flush(str(step))
        return refused

    def follow(self) -> None:
        """Print as things happen, until ``stop()`` or Ctrl-C; sleeps while nothing does
        (a source with a monitor: blocked in select on its fd; the simulated kernel: on an
        event that its callback sets)."""
        start = getattr(self.source, "start", None)
        if start is None:
            self._follow([])
            return
        start()
        try:
            self.flush()  # what starting said (why exact mode is off): printed now, not at the first event
            self._follow(self.source.filenos())  # type: ignore[attr-defined]
        finally:
            self.source.stop()  # type: ignore[attr-defined]  # e.g. puts the debug lines back

    def _follow(self, fds: list[int]) -> None:
        if not fds:
            while True:
                self.wake.wait()
                self.wake.clear()
                if self.stopped:
                    return
                self.flush()
        with selectors.DefaultSelector() as selector:
            for fd in fds:
                selector.register(fd, selectors.EVENT_READ)
            selector.register(self._stop_r, selectors.EVENT_READ)
            while not self.stopped:
                for key, _ in selector.select():
                    if key.fd != self._stop_r:
                        self.source.handle_readable()  # type: ignore[attr-defined]
                self.flush()

    def stop(self) -> None:
        self.stopped = True
        self.wake.set()
        os.write(self._stop_w, b"x")

    def close(self) -> None:
        self._unsubscribe()
        os.close(self._stop_r)
        os.close(self._stop_w)

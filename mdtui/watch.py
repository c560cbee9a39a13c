"""``mdtui watch``: one line per event, plus one per allocator change, until Ctrl-C.

A line is ``TIME KIND DEVICE TEXT``; allocator lines read ``media0 refcount 2→1 (au0828
unbound 1-1:1.0)``.  Styled on a terminal, plain when piped, JSON lines with ``--json``.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import select
import selectors
from collections.abc import Callable
from typing import IO

from rich.console import Console
from rich.text import Text

from allocator import Event

from .commands import Step
from .pipeline import Pipeline
from .render.text import printable
from .sources import Refusal, Source, perform_all

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
        t.append(f" {printable(device):<12} ", style="bold")  # a process or device may name itself with escapes
        t.append(printable(text), style="red" if "ANOMALY" in text else "")
        self.console.print(t)


class Watch:
    """Prints what the pipeline (mdtui/pipeline.py) makes of a source's events.

    Everything runs on the calling thread: the source's callbacks only queue a call and wake
    the loop (a pipe, so that ``select`` on the monitors' descriptors wakes too)."""

    def __init__(self, source: Source, printer: Printer) -> None:
        self.source = source
        self.printer = printer
        self.stopped = False
        self._calls: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)  # a full pipe already says "wake up"
        self.pipeline = Pipeline(source, self._call_soon, notify=lambda: None)

    def _call_soon(self, call: Callable[[], None]) -> None:  # any thread
        self._calls.put(call)
        self._wake()

    def _wake(self) -> None:
        with contextlib.suppress(BlockingIOError):
            os.write(self._wake_w, b"x")

    def _run_calls(self) -> None:
        """Run what was queued, then print what is ready."""
        while True:
            try:
                call = self._calls.get_nowait()
            except queue.Empty:
                break
            call()
        update = self.pipeline.take()
        if update is None:
            return
        for e in update.events:
            self.printer.line(e.time, e.kind, e.device, event_text(e), e.seq)
        for c in update.changes:
            self.printer.line(update.when, "allocator", c.device, c.text)

    def _settle(self) -> None:
        """Run and print until the pipeline has nothing left (a snapshot built in the
        reader thread comes back as a queued call)."""
        while True:
            self._run_calls()
            if self.pipeline.idle and self._calls.empty():
                return
            select.select([self._wake_r], [], [])
            os.read(self._wake_r, 4096)

    def run_script(self, steps: list[Step]) -> list[Refusal]:
        """Take and print each step; the refused ones (each an error event too) are returned."""
        refused = []
        for step in steps:
            refused += perform_all(self.source, [step])
            self.pipeline.refresh(str(step))
            self._settle()
        return refused

    def follow(self) -> None:
        """Print as things happen, until ``stop()`` or Ctrl-C; sleeps while nothing does
        (blocked in select on the source's descriptors and the wake pipe)."""
        self.source.start()
        try:
            self._settle()  # what starting said (why exact mode is off): printed now, not at the first event
            with selectors.DefaultSelector() as selector:
                for fd in self.source.filenos():
                    selector.register(fd, selectors.EVENT_READ)
                selector.register(self._wake_r, selectors.EVENT_READ)
                while not self.stopped:
                    for key, _ in selector.select():
                        if key.fd == self._wake_r:
                            os.read(self._wake_r, 4096)
                        else:
                            self.source.handle_readable()
                    self._run_calls()
        finally:
            self.source.stop()  # e.g. puts the debug lines back

    def stop(self) -> None:
        """End ``follow()`` (safe from a signal handler)."""
        self.stopped = True
        self._wake()

    def close(self) -> None:
        self.pipeline.close()
        os.close(self._wake_r)
        os.close(self._wake_w)

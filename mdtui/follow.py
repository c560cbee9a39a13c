"""A pipeline followed on the calling thread, for the consumers that are not the TUI
(``watch``: mdtui/watch.py; ``metrics``: mdtui/metrics/exporter.py).

Everything runs on the calling thread: the source's callbacks only queue a call and wake the
loop (a pipe, so that ``select`` on the source's descriptors wakes too); between changes it
sleeps in ``select``.  A subclass says what to do with each update (``apply``).
"""

from __future__ import annotations

import contextlib
import os
import queue
import select
import selectors
from collections.abc import Callable

from .pipeline import Pipeline, Update
from .sources import Refusal, Source, perform_all
from .step import Step


class Follower:
    def __init__(self, source: Source) -> None:
        self.source = source
        self.stopped = False
        self._calls: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)  # a full pipe already says "wake up"
        self.pipeline = Pipeline(source, self._call_soon, notify=lambda: None)

    def apply(self, update: Update) -> None:
        """What this consumer does with an update (print it, keep it)."""
        raise NotImplementedError

    def _call_soon(self, call: Callable[[], None]) -> None:  # any thread
        self._calls.put(call)
        self._wake()

    def _wake(self) -> None:
        with contextlib.suppress(BlockingIOError):
            os.write(self._wake_w, b"x")

    def _run_calls(self) -> None:
        """Run what was queued, then apply what is ready."""
        while True:
            try:
                call = self._calls.get_nowait()
            except queue.Empty:
                break
            call()
        update = self.pipeline.take()
        if update is not None:
            self.apply(update)

    def settle(self) -> None:
        """Run until the pipeline has nothing left (a snapshot built in the reader thread
        comes back as a queued call)."""
        while True:
            self._run_calls()
            if self.pipeline.idle and self._calls.empty():
                return
            select.select([self._wake_r], [], [])
            os.read(self._wake_r, 4096)

    def run_script(self, steps: list[Step]) -> list[Refusal]:
        """Take each step and apply what it changed; the refused ones (each an error event
        too) are returned."""
        refused = []
        for step in steps:
            refused += perform_all(self.source, [step])
            self.pipeline.refresh(str(step))
            self.settle()
        return refused

    def follow(self, on_change: Callable[[], object] = lambda: None, poll: float | None = None) -> None:
        """Follow the source until ``stop()``: start it, apply what starting said (why exact
        mode is off: now, not at the first event), then sleep in select until its
        descriptors or the pipeline say something; ``on_change`` runs after every wake-up
        (and every ``poll`` seconds, if given), and once after starting.  The source is
        stopped however this ends (e.g. the debug lines put back)."""
        self.source.start()
        try:
            self.settle()
            on_change()
            with selectors.DefaultSelector() as selector:
                for fd in self.source.filenos():
                    selector.register(fd, selectors.EVENT_READ)
                selector.register(self._wake_r, selectors.EVENT_READ)
                while not self.stopped:
                    for key, _ in selector.select(poll):
                        if key.fd == self._wake_r:
                            os.read(self._wake_r, 4096)
                        else:
                            self.source.handle_readable()
                    self._run_calls()
                    if not self.stopped:
                        on_change()
        finally:
            self.source.stop()

    def stop(self) -> None:
        """End ``follow()`` (safe from a signal handler and from any thread)."""
        self.stopped = True
        self._wake()

    def close(self) -> None:
        self.pipeline.close()
        os.close(self._wake_r)
        os.close(self._wake_w)

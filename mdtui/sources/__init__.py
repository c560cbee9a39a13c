"""Where snapshots come from: the simulated kernel (``sim``) or the live system (``live``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from allocator import Event

from ..model import SystemSnapshot
from ..script import Step


class Source(Protocol):
    kind: str
    simulated: bool
    read_only: bool
    snapshot_on_loop: bool  # cheap, no I/O: build snapshots on the event loop

    def snapshot(self) -> SystemSnapshot: ...
    def subscribe(self, callback: Callable[[Event], None]) -> Callable[[], None]: ...
    def history(self) -> list[Event]: ...
    def now(self) -> float: ...  # the clock of this source's events: one clock for all of them
    def run(self, step: Step) -> None: ...

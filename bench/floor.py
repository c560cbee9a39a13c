"""The floor the speed benches measure mdtui against (issue #10): what any Textual app pays.

This VM's speed drifts from day to day, so the targets are ratios to a floor measured in the
same run, alternating with mdtui, and the absolute figures are printed beside them.

* ``FloorApp``: a minimal Textual app that receives the same event stream the same way as
  ``MdtuiApp``: the same ``Pipeline`` (``call_soon=loop.call_soon_threadsafe``), the same
  ``Updated`` message (coalescing), the source's descriptors on the event loop, and one
  ``Static`` updated per update.  ``on_update`` and ``settle`` (mdtui/scenarios.py) observe it
  as they observe the app.
* ``BARE``: the first-frame floor, a bare Textual app that shows one Static.

Both the benches and their trial processes import this from bench/ (the script's directory).
"""

from __future__ import annotations

import asyncio

from textual import on
from textual.app import App, ComposeResult
from textual.widgets import Static

from mdtui.app import Updated
from mdtui.model import SystemSnapshot
from mdtui.pipeline import Pipeline
from mdtui.sources import Source


class FloorApp(App[None]):
    def __init__(self, source: Source) -> None:
        super().__init__()
        self.source = source
        self.snapshot = source.snapshot()
        self.pipeline: Pipeline | None = None
        self._watched: list[int] = []

    def compose(self) -> ComposeResult:
        yield Static(self._text(self.snapshot, 0), id="floor")

    def on_mount(self) -> None:
        loop = asyncio.get_running_loop()
        self.pipeline = Pipeline(self.source, loop.call_soon_threadsafe, self._post_updated, last=self.snapshot)
        self.source.start()
        self._watched = self.source.filenos()
        for fd in self._watched:
            loop.add_reader(fd, self.source.handle_readable)
        if self._watched:
            self.pipeline.refresh()

    def _post_updated(self) -> None:
        self.post_message(Updated())

    @on(Updated)
    def _updated(self, message: Updated) -> None:
        update = message.update = self.pipeline.take() if self.pipeline is not None else None
        if update is None:
            return
        self.snapshot = update.snapshot
        self.query_one("#floor", Static).update(self._text(update.snapshot, len(update.events)))

    @staticmethod
    def _text(snap: SystemSnapshot, events: int) -> str:
        return f"seq {snap.seq}: {len(snap.media_devices)} media devices, {events} events in the last update"

    def on_unmount(self) -> None:
        if self.pipeline is not None:
            self.pipeline.close()
        loop = asyncio.get_running_loop()
        for fd in self._watched:
            loop.remove_reader(fd)
        self.source.stop()


#: a fresh process: spawn to the first frame (Ready) of a bare Textual app showing one Static;
#: argv[1] is the spawn time (time.time()), the seconds are printed
BARE = """
import sys, time
t0 = float(sys.argv[1])
from textual.app import App
from textual.widgets import Static
class Bare(App):
    def compose(self):
        yield Static("mdtui")
    def on_ready(self):
        print(time.time() - t0, flush=True)
        self.exit()
Bare().run(headless=True, size=(120, 40))
"""

"""The TUI on the live source, on the rig: unbind au0828 from the UI, confirm, and the
refcount falls to 1 on screen from the uevent the rig sends, not from a local guess."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time
from collections.abc import Callable, Iterator

from textual.pilot import Pilot

from mdtui.app import MdtuiApp
from mdtui.live.monitor import UdevMonitor
from mdtui.live.openers import SYSCALLS
from mdtui.model import SystemSnapshot
from mdtui.scenarios import fake_clock, on_update, settle
from mdtui.screens.choice import ChoiceScreen, ConfirmScreen
from mdtui.sources.live import LiveSource


class Recorder:
    """What the app applied, and how many uevent wake-ups had happened by then."""

    def __init__(self, app: MdtuiApp) -> None:
        self.wakeups = 0
        self.applied: list[tuple[int | None, int]] = []  # (media0 refcount, wakeups so far)
        source = app.source
        readable: Callable[[], None] = source.handle_readable

        def on_readable() -> None:
            # the rig sends an unbind's seven uevents back to back; the app may wake up after
            # any of them, and the event log would show its allocator line after a different
            # one each run.  Letting the burst arrive first keeps the screen deterministic.
            time.sleep(0.2)
            self.wakeups += 1
            readable()

        source.handle_readable = on_readable  # type: ignore[method-assign]

    def attach(self, app: MdtuiApp) -> None:
        """Record from now on (the app must be running), starting with what it shows."""
        self.record(app.snapshot)
        on_update(app, lambda update: self.record(update.snapshot))

    def record(self, snap: SystemSnapshot) -> None:
        dev = snap.device("1-1")
        self.applied.append((dev.refcount if dev else None, self.wakeups))


def _inspectable(fd: int) -> Iterator[str]:
    """The processes this user may inspect: the screen is the same on any host (this one's
    pid 1 hides its files even from root, and the scan would count it "1 hidden")."""
    for name in SYSCALLS.names(fd):
        try:
            os.readlink(f"/proc/{name}/exe")  # the same ptrace check as its fd links
        except PermissionError:
            continue
        except OSError:
            pass  # a kernel thread has no exe, a process may just have exited
        yield name


def make_app() -> tuple[MdtuiApp, Recorder]:
    proc_calls = dataclasses.replace(SYSCALLS, names=_inspectable)
    app = MdtuiApp(LiveSource(monitor_factory=UdevMonitor, clock=fake_clock(), proc_calls=proc_calls))
    return app, Recorder(app)


async def unbind_au0828(pilot: Pilot, recorder: Recorder) -> None:
    app = pilot.app
    recorder.attach(app)
    await settle(app)
    assert recorder.applied[-1] == (2, 0)
    await pilot.press("u")
    assert isinstance(app.screen, ChoiceScreen)
    await pilot.press("enter")  # the first choice: unbind au0828 from 1-1:1.0
    assert isinstance(app.screen, ConfirmScreen)  # a live system asks first
    await pilot.press("y")
    for _ in range(200):
        if recorder.applied[-1][0] == 1:
            break
        await asyncio.sleep(0.025)
    await settle(app)
    # module refcnts move with every open and close of /dev/mediaN (the app's own reads
    # too), and a close the rig learns of late shows as a stale refcnt: read once more when
    # all is quiet, so the screen is the same on every run
    await asyncio.sleep(0.1)
    app.pipeline.refresh()
    await settle(app)
    await pilot.pause()


def test_unbind_from_the_ui_falls_to_refcount_1_from_the_uevent(snap_compare) -> None:
    app, recorder = make_app()

    async def run_before(pilot: Pilot) -> None:
        await unbind_au0828(pilot, recorder)

    assert snap_compare(app, terminal_size=(120, 40), run_before=run_before)
    first_at_1 = next(wakeups for refcount, wakeups in recorder.applied if refcount == 1)
    assert first_at_1 >= 1  # the screen changed only once a uevent had been read
    assert all(refcount == 2 for refcount, wakeups in recorder.applied if wakeups == 0)
    assert recorder.applied[-1][0] == 1

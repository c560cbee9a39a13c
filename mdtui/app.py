"""The Textual app: devices, the allocator's view, the graph, the event log, and actions.

Data flows one way.  The source's event callback (any thread) only queues the event and
schedules a drain on the event loop; the drain appends to the log and asks for a snapshot
(bursts coalesce: one build at a time, one more if anything arrived meanwhile), built on the
loop when the source says that is cheap (the simulated kernel) and by a thread worker when it
means I/O; the finished snapshot is handed to the widgets, and only the visible tab redraws.  Actions run in thread
workers and report refusals as notifications with the kernel's wording.
"""

from __future__ import annotations

import asyncio
import gc
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from textual import on
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.timer import Timer
from textual.widgets import Footer, Header, Input, TabbedContent, TabPane

from allocator import Event, KernelError

from . import actions, crash, terminal, textual_fixes
from .changes import cause_of, diff
from .commands import ActionCommands
from .model import MediaDeviceView, SystemSnapshot
from .render import dot
from .screens.choice import ChoiceScreen, ConfirmScreen
from .screens.help import HelpScreen
from .script import Step
from .sources import Source
from .widgets.detail import Detail
from .widgets.device_list import DeviceList
from .widgets.event_log import EventLog
from .widgets.graph import EntityTree, GraphDrawing, InterfaceTable
from .widgets.modules import ModuleList

textual_fixes.apply()

#: seconds without updates after which a full garbage collection runs (once, not periodically)
IDLE_GC_AFTER = 2.0

TITLES = {
    "unbind": "Unbind which driver?",
    "bind": "Bind which driver, to which interface?",
    "plug": "Plug which device?",
    "unplug": "Unplug which USB device?",
    "modprobe": "Load which module?",
    "rmmod": "Unload which module?",
    "open": "Open which node?",
    "close": "Close which file?",
}


class MdtuiApp(App[None]):
    TITLE = "mdtui"
    CSS_PATH = Path(__file__).with_name("app.tcss")
    COMMANDS = App.COMMANDS | {ActionCommands}
    BINDINGS = [
        Binding("q", "quit", "Quit"),
        Binding("question_mark", "help", "Help", key_display="?"),
        Binding("slash", "filter", "Filter", key_display="/"),
        Binding("u", "choose('unbind')", "Unbind"),
        Binding("b", "choose('bind')", "Bind"),
        Binding("p", "choose('plug')", "Plug"),
        Binding("x", "choose('unplug')", "Unplug"),
        Binding("m", "choose('modprobe')", "Modprobe"),
        Binding("r", "choose('rmmod')", "Rmmod"),
        Binding("o", "choose('open')", "Open"),
        Binding("c", "choose('close')", "Close"),
        Binding("e", "toggle_folds", "Unfold"),
        Binding("d", "export_dot", "DOT"),
        Binding("s", "screenshot", "SVG"),
        Binding("1", "tab('tab-allocator')", "Allocator", show=False),
        Binding("2", "tab('tab-graph')", "Graph", show=False),
        Binding("3", "tab('tab-drawing')", "Drawing", show=False),
        Binding("4", "tab('tab-interfaces')", "Interfaces", show=False),
    ]

    def __init__(self, source: Source, *, export_dir: Path | None = None) -> None:
        super().__init__()
        self.source = source
        self.export_dir = export_dir or Path.cwd()
        self.snapshot: SystemSnapshot = source.snapshot()
        self.selected_key: str | None = None
        self._lock = threading.Lock()
        self._pending: list[Event] = []
        self._drain_scheduled = False
        self._batch: list[Event] = []
        self._building = False
        self._dirty = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._idle_gc: Timer | None = None
        self._reader: ThreadPoolExecutor | None = None
        self._watched: list[int] = []
        self._unwatch_terminal: Callable[[], None] | None = None
        #: where the traceback of a crash was saved (see ``mdtui.crash``)
        self.crash_report: Path | None = None

    # -- layout ------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Header()
        yield DeviceList(id="devices")
        with Horizontal(id="main"):
            with TabbedContent(id="tabs"):
                with TabPane("Allocator", id="tab-allocator"), VerticalScroll():
                    yield Detail(id="detail")
                with TabPane("Graph", id="tab-graph"):
                    yield EntityTree(id="tree")
                with TabPane("Drawing", id="tab-drawing"), VerticalScroll(id="drawing-scroll"):
                    yield GraphDrawing(id="drawing")
                with TabPane("Interfaces", id="tab-interfaces"):
                    yield InterfaceTable(id="interfaces")
            with VerticalScroll(id="modules"):
                yield ModuleList()
        yield EventLog(id="log")
        yield Input(placeholder="filter events: text, or kind:trace / kind:error ...", id="filter")
        yield Footer()

    def on_mount(self) -> None:
        self._loop = asyncio.get_running_loop()
        if not self.is_headless:  # a real terminal: end with it (mdtui/terminal.py)
            self._unwatch_terminal = terminal.watch(self._loop, self._quit_with)
        self.query_one("#devices").border_title = "Media devices" + (" · SIMULATED" if self.source.simulated else "")
        self.query_one("#modules").border_title = "Modules"
        self.query_one("#log").border_title = "Events"
        self.query_one("#filter", Input).cursor_blink = False
        self.query_one(EventLog).add_events(self.source.history())
        self._unsubscribe = self.source.subscribe(self._on_event)
        for fd in self._start_monitor():  # the live source's monitors: read when readable, never polled
            self._loop.add_reader(fd, self.source.handle_readable)  # type: ignore[attr-defined]
        if self._watched:
            self.snapshot = self.source.snapshot()  # with what starting the monitors noted
        self._apply(self.snapshot)
        self.query_one(DeviceList).focus()
        # What exists now (a simulated kernel's graphs: ~3,400 objects per HVR-950Q, all
        # in reference cycles) lives as long as the app, and full collections walking the
        # heap paused the UI for ~150-250 ms in the middle of event bursts.  Park the
        # start-up heap out of the collector's way, let full collections happen when the app
        # has gone quiet (_collect_when_idle), and keep the automatic ones as a backstop.
        gc.freeze()
        gc.set_threshold(700, 10, 1000)

    def _start_monitor(self) -> list[int]:
        start = getattr(self.source, "start", None)
        self._watched = []
        if start is None:
            return []
        start()
        self._watched = self.source.filenos()  # type: ignore[attr-defined]
        return self._watched

    def _quit_with(self, status: int) -> None:
        self.exit(return_code=status)

    def _handle_exception(self, error: Exception) -> None:
        # Textual's hook for an unhandled exception (it renders it, exits with status 1):
        # keep a copy of the traceback that outlives the terminal
        self.crash_report = crash.save(error)
        super()._handle_exception(error)

    def on_unmount(self) -> None:
        if self._unwatch_terminal is not None:
            self._unwatch_terminal()
        self._unsubscribe()
        if getattr(self, "_watched", None) and self._loop is not None:
            for fd in self._watched:
                self._loop.remove_reader(fd)
            self.source.stop()  # type: ignore[attr-defined]
        with self._lock:
            self._loop = None  # late events and snapshots are dropped from here on
        if self._reader is not None:
            self._reader.shutdown(wait=False)

    def on_resize(self) -> None:
        self.set_class(self.size.width < 100, "narrow")

    # -- events in, snapshots out ------------------------------------------------------

    def _on_event(self, event: Event) -> None:
        """Called by the source on whatever thread changed the kernel: queue and return."""
        with self._lock:
            self._pending.append(event)
            if self._drain_scheduled or self._loop is None:
                return
            self._drain_scheduled = True
        self._loop.call_soon_threadsafe(self._drain)

    def _drain(self) -> None:
        if self._take_pending():
            self._request_snapshot()

    def _take_pending(self) -> bool:
        """Move queued events into the current batch; False once unmounted.  They are logged
        with the snapshot that includes them: one log write per frame (each write re-lays out
        the screen; two per frame cost p99 ~8 ms in bench/tui_bench.py)."""
        with self._lock:
            events, self._pending = self._pending, []
            self._drain_scheduled = False
            if self._loop is None:
                return False
        self._batch.extend(events)
        return True

    def _request_snapshot(self) -> None:
        if self._building:
            self._dirty = True
            return
        self._building = True
        if self.source.snapshot_on_loop or self._loop is None:
            self._built(self.source.snapshot())
            return
        # reading devices is I/O: one long-lived thread does it (a worker per build cost
        # ~6 ms of thread start-up on every event)
        if self._reader is None:
            self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mdtui-snapshot")
            # CPython lets a thread that wants the GIL wait a 5 ms switch interval; the
            # reader paid it several times per event (bench/RESULTS.md: p99 46 -> 2x ms)
            sys.setswitchinterval(0.001)
        future = self._loop.run_in_executor(self._reader, self.source.snapshot)
        future.add_done_callback(self._snapshot_done)

    def _snapshot_done(self, future: asyncio.Future[SystemSnapshot]) -> None:
        error = future.exception()
        if error is not None:
            self._building = False
            self.notify(str(error), title="Could not read the system", severity="error")
            return
        self._built(future.result())

    def _built(self, snap: SystemSnapshot) -> None:
        if not self._take_pending():
            return
        # the changes this snapshot shows are explained by exactly the events it includes,
        # however the threads interleaved their delivery
        batch = [e for e in self._batch if e.seq <= snap.seq]
        self._batch = [e for e in self._batch if e.seq > snap.seq]
        self._dirty = self._dirty or bool(self._batch)
        changes = diff(self.snapshot, snap, cause_of(batch, self.snapshot))
        when = batch[-1].time if batch else 0.0
        self.query_one(EventLog).add_events(batch, changes, when)
        self.snapshot = snap
        self._apply(snap)
        self._building = False
        if self._idle_gc is not None:
            self._idle_gc.stop()
        self._idle_gc = self.set_timer(IDLE_GC_AFTER, self._collect_when_idle, name="idle gc")
        if self._dirty:
            self._dirty = False
            self._request_snapshot()

    def _apply(self, snap: SystemSnapshot) -> None:
        self.sub_title = " · ".join(snap.notes)  # the source says what it is reading, and how
        self.query_one(DeviceList).show(snap)
        self.query_one(ModuleList).show(snap)
        self._show_selected()

    @staticmethod
    def _collect_when_idle() -> None:
        """A full collection while nothing happens (it reclaims, e.g., the reference cycles of
        an unplugged stick's graph), then park the survivors out of the collector's way."""
        gc.unfreeze()
        gc.collect()
        gc.freeze()

    @on(DeviceList.Selected)
    def _selected(self, message: DeviceList.Selected) -> None:
        if message.key != self.selected_key:
            self.selected_key = message.key
            self._show_selected()

    def _show_selected(self) -> None:
        """Refresh the visible tab; the others catch up when they are shown."""
        dev = self.selected_device
        active = self.query_one(TabbedContent).active
        if active == "tab-allocator":
            self.query_one(Detail).show(dev, self.snapshot)
        elif active == "tab-graph":
            self.query_one(EntityTree).show(dev)
        elif active == "tab-drawing":
            self.query_one(GraphDrawing).show(dev)
        elif active == "tab-interfaces":
            self.query_one(InterfaceTable).show(dev)

    @on(TabbedContent.TabActivated)
    def _tab_shown(self) -> None:
        self._show_selected()

    @property
    def selected_device(self) -> MediaDeviceView | None:
        snap = self.snapshot
        if self.selected_key is not None:
            dev = snap.device(self.selected_key)
            if dev is not None:
                return dev
        return snap.media_devices[0] if snap.media_devices else None

    async def settle(self) -> None:
        """Wait until every action, drain and snapshot build has finished (for tests)."""
        for _ in range(400):
            await self.workers.wait_for_complete()
            await asyncio.sleep(0.005)
            with self._lock:
                busy = self._pending or self._drain_scheduled
            if not busy and not self._building and not self._batch:
                return

    # -- actions -----------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "choose" and parameters and parameters[0] in actions.SIM_ONLY:
            return self.source.simulated
        # --read-only: no bind/unbind either
        return not (action == "choose" and parameters and self.source.read_only)

    def _choices(self, command: str) -> list[actions.Choice]:
        snap, dev = self.snapshot, self.selected_device
        pick = {
            "unbind": lambda: actions.unbind(snap, dev),
            "bind": lambda: actions.bind(snap, dev),
            "plug": lambda: actions.plug(snap),
            "unplug": lambda: actions.unplug(snap, dev),
            "modprobe": lambda: actions.modprobe(snap),
            "rmmod": lambda: actions.rmmod(snap),
            "open": lambda: actions.open_node(snap, dev),
            "close": lambda: actions.close_file(snap),
        }
        return pick[command]()

    def action_choose(self, command: str) -> None:
        choices = self._choices(command)
        if not choices:
            self.notify(f"Nothing to {command} here.", severity="warning")
            return
        self.push_screen(ChoiceScreen(TITLES[command], choices), self._chosen)

    def _chosen(self, choice: actions.Choice | None) -> None:
        if choice is not None:
            self.perform(choice.step)

    def perform(self, step: Step) -> None:
        """Run a step, asking first when it is destructive on a live system."""
        if not self.source.simulated and step.command in actions.DESTRUCTIVE:

            def confirmed(yes: bool | None) -> None:
                if yes:
                    self.run_worker(lambda: self._perform(step), thread=True, group="actions")

            self.push_screen(ConfirmScreen(f"Really {step}?"), confirmed)
            return
        self.run_worker(lambda: self._perform(step), thread=True, group="actions")

    def _perform(self, step: Step) -> None:
        try:
            self.source.run(step)
        except KernelError as exc:
            self.call_from_thread(
                self.notify, str(exc.strerror), title=f"{step}: {exc.errno_name}", severity="error", timeout=10
            )
        # some changes send no event (an open pins modules silently): read the state again
        if self._loop is not None:
            self.call_from_thread(self._request_snapshot)

    def action_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.add_class("visible")
        box.focus()

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.query_one(EventLog).set_filter(event.value)

    @on(Input.Submitted, "#filter")
    def _filter_done(self) -> None:
        self.query_one(DeviceList).focus()

    def key_escape(self) -> None:
        box = self.query_one("#filter", Input)
        if box.has_class("visible"):
            box.value = ""
            box.remove_class("visible")
            self.query_one(DeviceList).focus()

    def action_toggle_folds(self) -> None:
        expanded = self.query_one(GraphDrawing).toggle_folds()
        self.query_one(TabbedContent).active = "tab-drawing"
        self.notify("Numbered runs unfolded." if expanded else "Numbered runs folded.")

    def action_export_dot(self) -> None:
        dev = self.selected_device
        if dev is None or not dev.registered:
            self.notify("Select a registered media device first.", severity="warning")
            return
        path = self.export_dir / f"mdtui-{dev.name}.dot"
        try:
            path.write_text(dot.print_dot(dev, interfaces=True))
        except OSError as exc:
            self.notify(f"{path}: {exc.strerror}", title="DOT export failed", severity="error")
            return
        self.notify(f"Wrote {path}", title="DOT exported")

    def action_screenshot(self) -> None:
        try:
            name = self.save_screenshot(path=str(self.export_dir))
        except OSError as exc:
            self.notify(str(exc.strerror), title="Screenshot failed", severity="error")
            return
        self.notify(f"Wrote {name}", title="Screenshot saved")

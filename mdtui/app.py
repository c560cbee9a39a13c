"""The Textual app: devices, the allocator's view, the graph, the event log, and actions.

Data flows one way: the source's events go through the pipeline (mdtui/pipeline.py), which
posts ``Updated`` when a snapshot is ready; its handler takes the update, logs its events and
changes, and hands the snapshot to the widgets (only the visible tab redraws).  The actions
are declared in mdtui/commands.py; a lifecycle step runs in a thread worker and a refusal
comes back as a notification in the kernel's wording.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from rich.terminal_theme import TerminalTheme
from textual import events, on
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.css.query import NoMatches
from textual.message import Message
from textual.timer import Timer
from textual.widgets import Footer, Header, Input, TabbedContent, TabPane

from allocator import KernelError
from allocator.mc_dev_allocator import VARIANTS

from . import crash, terminal, textual_fixes, tuning
from .commands import COMMANDS as REGISTRY  # not App.COMMANDS, the palette's providers
from .commands import Choice, Step
from .model import MediaDeviceView, SystemSnapshot
from .palette import ActionCommands
from .pipeline import Pipeline, Update
from .script import ScriptError, parse
from .sources import Source
from .theme import remember
from .widgets.detail import Detail
from .widgets.device_list import DeviceList
from .widgets.event_log import KEEP, EventLog
from .widgets.modules import ModuleList

LOG = logging.getLogger(__name__)

textual_fixes.apply()

if TYPE_CHECKING:
    from .widgets.graph import EntityTree, GraphDrawing, InterfaceTable

    GraphView = EntityTree | GraphDrawing | InterfaceTable

#: the graph tabs' widgets (in mdtui/widgets/graph.py) and their ids, made when first shown
GRAPH_TABS = {
    "tab-graph": ("EntityTree", "tree"),
    "tab-drawing": ("GraphDrawing", "drawing"),
    "tab-interfaces": ("InterfaceTable", "interfaces"),
}

#: seconds without updates after which a full garbage collection runs (once, not periodically)
IDLE_GC_AFTER = 2.0
#: seconds between reads of the topology while a graph tab is visible: a link change
#: (SETUP_LINK, ``media-ctl -l``) sends no uevent and leaves topology_version alone, so
#: nothing else would show it; no other tab wakes the app up
REREAD_PERIOD = 1.0


#: the terminal colours (rich's "yellow", "green", ...: states, event kinds) under a light
#: truecolor theme: Textual's own (Alabaster) with its yellow, green and cyan darkened to at
#: least 4.5:1 on textual-light's #e0e0e0 (Alabaster's yellow is 2.1:1 there)
LIGHT_ANSI = TerminalTheme(
    (247, 247, 247),
    (0, 0, 0),
    [
        (0, 0, 0), (170, 55, 49), (47, 107, 26), (122, 86, 0),
        (50, 92, 192), (122, 62, 157), (0, 106, 143), (247, 247, 247), (119, 119, 119),
    ],
    [
        (170, 55, 49), (47, 107, 26), (122, 86, 0), (0, 122, 204),
        (150, 50, 150), (0, 106, 143), (247, 247, 247),
    ],
)  # fmt: skip


class Updated(Message):
    """The pipeline has an update ready.  Notifications that pile up coalesce into one; the
    handler takes every ready update merged, and leaves it here for whoever observes the
    message (tests and benches, through ``message_signal``)."""

    def __init__(self) -> None:
        super().__init__()
        self.update: Update | None = None

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, Updated)


class MdtuiApp(App[None]):
    TITLE = "mdtui"
    CSS_PATH = Path(__file__).with_name("app.tcss")
    COMMANDS = App.COMMANDS | {ActionCommands}
    BINDINGS = [
        Binding(
            c.key, c.binding_action, c.label, show=c.show, key_display=c.key_display, priority=c.priority, id=c.name
        )
        for c in REGISTRY.values()
    ]

    def __init__(
        self,
        source: Source,
        *,
        export_dir: Path | None = None,
        redesign: Callable[[str], Source] | None = None,
        theme: str | None = None,
        confirm: str = "live",
        event_log: int = KEEP,
        keymap: Mapping[str, str] | None = None,
    ) -> None:
        """``theme``: shown from the start and not remembered (``None``: Textual's default).
        ``confirm``: when a destructive step asks first (mdtui/config.py CONFIRM); ``event_log``:
        the entries the event log keeps; ``keymap``: binding ids (the commands' names) to keys."""
        super().__init__()
        self.ansi_theme_light = LIGHT_ANSI
        if theme is not None:
            self.theme = theme
        self.confirm = confirm
        self.event_log_length = event_log
        self.keymap: Mapping[str, str] = dict(keymap or {})
        if self.keymap:
            self.set_keymap(dict(self.keymap))
        self.source = source
        #: the same machine (the same script) on another allocator design; None: not simulated
        self.redesign = redesign
        self.export_dir = export_dir or Path.cwd()
        self.snapshot: SystemSnapshot = source.snapshot()
        self.selected_key: str | None = None
        self.pipeline: Pipeline | None = None  # made on mount: it calls back on the event loop
        self._idle_gc: Timer | None = None
        self._reread: Timer | None = None
        self._last_update = 0.0
        self._watched: list[int] = []
        self._graph_views: dict[str, GraphView] = {}
        self._unwatch_terminal: Callable[[], None] | None = None
        #: where the traceback of a crash was saved (see ``mdtui.crash``)
        self.crash_report: Path | None = None

    # -- layout ------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Header()
        yield DeviceList(id="devices")
        with Horizontal(id="main"):
            with TabbedContent(id="tabs"):
                with TabPane("Allocator", id="tab-allocator"):
                    yield Detail(id="detail")
                # the other tabs' widgets are made when a tab is first shown (_graph_view)
                yield TabPane("Graph", id="tab-graph")
                yield TabPane("Drawing", id="tab-drawing")
                yield TabPane("Interfaces", id="tab-interfaces")
            yield ModuleList(id="modules")
        yield EventLog(id="log", keep=self.event_log_length)
        yield Input(placeholder="filter events: text, or kind:trace / kind:error ...", id="filter")
        yield Footer()

    def on_mount(self) -> None:
        # a theme chosen from now on (the palette's "Change theme") is the next start's
        self.theme_changed_signal.subscribe(self, lambda theme: remember(theme.name))
        loop = asyncio.get_running_loop()
        if not self.is_headless:  # a real terminal: end with it (mdtui/terminal.py)
            self._unwatch_terminal = terminal.watch(loop, self._quit_with)
        self.query_one("#devices").border_title = "Media devices" + (" · SIMULATED" if self.source.simulated else "")
        self.query_one("#modules").border_title = "Modules"
        self.query_one("#log").border_title = "Events"
        self.query_one("#filter", Input).cursor_blink = False
        self.query_one(EventLog).add_events(self.source.history())
        self.pipeline = Pipeline(self.source, loop.call_soon_threadsafe, self._post_updated, last=self.snapshot)
        self.source.start()
        self._watched = self.source.filenos()
        for fd in self._watched:  # the live source's monitors: read when readable, never polled
            loop.add_reader(fd, self.source.handle_readable)
        if self._watched:
            self.pipeline.refresh()  # with what starting the monitors noted
        self._apply(self.snapshot)
        self.query_one(DeviceList).focus()

    def _collect_when_idle(self) -> None:
        """A full collection once updates have stopped for IDLE_GC_AFTER seconds.  One timer
        at a time, put off while updates keep coming (not a timer per update), and nothing
        wakes the app once it has run."""
        quiet = time.monotonic() - self._last_update
        if quiet < IDLE_GC_AFTER:
            self._idle_gc = self.set_timer(IDLE_GC_AFTER - quiet, self._collect_when_idle, name="idle gc")
            return
        self._idle_gc = None
        tuning.collect_when_idle()

    def _post_updated(self) -> None:
        self.post_message(Updated())

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
        if self.pipeline is not None:
            self.pipeline.close()  # late events and snapshots are dropped from here on
        loop = asyncio.get_running_loop()
        for fd in self._watched:
            loop.remove_reader(fd)
        self.source.stop()

    def on_resize(self, event: events.Resize) -> None:
        self.set_class(event.size.width < 100, "narrow")  # self.size is still the old one here

    # -- snapshots in --------------------------------------------------------------------

    @on(Updated)
    def _updated(self, message: Updated) -> None:
        update = message.update = self.pipeline.take() if self.pipeline is not None else None
        if update is None:
            return
        try:
            log = self.query_one(EventLog)
        except NoMatches:  # the screen has gone (the app is closing): nothing to show it on
            return
        for error in update.errors:
            self.notify(error, title="Could not read the system", severity="error")
        log.add_events(update.events, update.changes, update.when)
        self.snapshot = update.snapshot
        self._apply(update.snapshot)
        if not (update.events or update.changes):
            return  # a re-read that found no event to tell: not activity (the idle GC still runs)
        self._last_update = time.monotonic()
        if self._idle_gc is None:
            self._idle_gc = self.set_timer(IDLE_GC_AFTER, self._collect_when_idle, name="idle gc")

    def _apply(self, snap: SystemSnapshot) -> None:
        self.sub_title = " · ".join(snap.notes)  # the source says what it is reading, and how
        self.query_one(DeviceList).show(snap)
        self.query_one(ModuleList).show(snap)
        self._show_selected()

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
            return
        view = self._graph_views.get(active)
        if view is not None and view.is_mounted:  # else it shows the device once mounted
            view.show(dev)

    @on(TabbedContent.TabActivated)
    async def _tab_shown(self, message: TabbedContent.TabActivated) -> None:
        if message.pane.id in GRAPH_TABS:
            await self._graph_view(message.pane.id)
        self._show_selected()
        self._reread_links(message.pane.id in GRAPH_TABS)

    def _reread_links(self, visible: bool) -> None:
        """Read the shown device's topology every REREAD_PERIOD while a graph tab is visible
        (only then)."""
        if visible and self._reread is None and self.pipeline is not None:
            self._reread = self.set_interval(REREAD_PERIOD, self._reread_graphs, name="re-read links")
        elif not visible and self._reread is not None:
            self._reread.stop()
            self._reread = None

    def _reread_graphs(self) -> None:
        if self.pipeline is not None and self.selected_key is not None:
            self.source.reread_media(self.selected_key)
            self.pipeline.refresh()

    async def _graph_view(self, tab: str) -> GraphView:
        """The graph tab's widget, made and mounted the first time it is needed: the first
        frame does without them (and without importing Tree and DataTable)."""
        view = self._graph_views.get(tab)
        if view is None:
            from .widgets import graph

            name, widget_id = GRAPH_TABS[tab]
            view = getattr(graph, name)(id=widget_id)
            # the drawing scrolls inside its pane; the tree and the table scroll themselves
            shown = VerticalScroll(view, id="drawing-scroll") if tab == "tab-drawing" else view
            await self.query_one(f"#{tab}", TabPane).mount(shown)
            self._graph_views[tab] = view
        return view

    @property
    def selected_device(self) -> MediaDeviceView | None:
        snap = self.snapshot
        if self.selected_key is not None:
            dev = snap.device(self.selected_key)
            if dev is not None:
                return dev
        return snap.media_devices[0] if snap.media_devices else None

    @property
    def simulated(self) -> bool:
        return self.source.simulated

    # -- actions -----------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "filter":  # the main screen's; typed into a box (this one, the palette's), "/" is text
            return self.screen is self.screen_stack[0] and not isinstance(self.focused, Input)
        if action != "choose" or not parameters:
            return True
        command = REGISTRY[str(parameters[0])]
        if command.sim_only and not self.source.simulated:
            return False
        return not self.source.read_only  # --read-only: no bind/unbind either

    def action_choose(self, name: str) -> None:
        command = REGISTRY[name]
        choices = command.offers(self.snapshot, self.selected_device)
        if not choices:
            self.notify(f"Nothing to {name} here.", severity="warning")
            return
        from .screens.choice import ChoiceScreen  # imports only what the first frame needs

        self.push_screen(ChoiceScreen(command.title, choices), self._chosen)

    def _chosen(self, choice: Choice | None) -> None:
        if choice is not None:
            self.perform(choice.step)

    def action_perform(self, line: str) -> None:
        """A lifecycle line, as a script has it (the command palette's steps)."""
        try:
            [step] = parse(line, "palette")
        except (ScriptError, ValueError) as exc:
            self.notify(str(exc), title="Not a lifecycle step", severity="error", markup=False)
            return
        self.perform(step)

    def perform(self, step: Step) -> None:
        """Take a step, asking first when it is destructive (on a live system, unless the
        configuration's ``confirm`` says always or never)."""
        asks = self.confirm == "always" or (self.confirm == "live" and not self.source.simulated)
        if asks and REGISTRY[step.command].destructive:
            from .screens.choice import ConfirmScreen

            def confirmed(yes: bool | None) -> None:
                LOG.info("%s%s: %s", step, where, "confirmed" if yes else "not confirmed")
                if yes:
                    self.run_worker(lambda: self._perform(step), thread=True, group="actions")

            where = f" on {step.host}" if step.host else ""
            self.push_screen(ConfirmScreen(f"Really {step}{where}?"), confirmed)
            return
        self.run_worker(lambda: self._perform(step), thread=True, group="actions")

    def _perform(self, step: Step) -> None:
        where = f" on {step.host}" if step.host else ""
        LOG.info("%s%s", step, where)
        try:
            self.source.perform(step)
        except KernelError as exc:
            LOG.warning("%s%s: refused: %s: %s", step, where, exc.errno_name, exc.strerror)
            self.call_from_thread(
                self.notify,
                str(exc.strerror),
                title=f"{step}: {exc.errno_name}",
                severity="error",
                timeout=10,
                markup=False,  # the step names devices and processes: never markup
            )
        # some changes send no event (an open pins modules silently): read the state again,
        # with the step as the cause when no event names one
        if self.pipeline is not None:
            self.pipeline.refresh(str(step))

    @property
    def designs(self) -> list[str]:
        """The allocator designs the machine can be rebuilt on (the palette offers them)."""
        if self.redesign is None:
            return []
        return [v for v in VARIANTS if v != self.source.variant]

    def action_design(self, variant: str) -> None:
        """Run this machine's script again on another allocator design, from an empty
        machine (the default world without a script): the events, the state and the
        anomalies on screen are that design's."""
        if self.redesign is None or variant not in VARIANTS:
            self.notify(f"no allocator design {variant!r} here (simulated machines only)", severity="error")
            return
        if self.pipeline is not None:
            self.pipeline.close()
        self.source.stop()
        self.source = self.redesign(variant)
        self.snapshot = self.source.snapshot()
        self.query_one(EventLog).restart(self.source.history())
        loop = asyncio.get_running_loop()
        self.pipeline = Pipeline(self.source, loop.call_soon_threadsafe, self._post_updated, last=self.snapshot)
        self.source.start()
        self._apply(self.snapshot)
        self.notify(f"allocator design {variant}: the machine was built again")

    def action_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab

    def action_help(self) -> None:
        from .screens.help import HelpScreen  # Markdown: ~30 ms of imports the first frame does without

        self.push_screen(HelpScreen(self.keymap))

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.add_class("visible")
        # now, not after a refresh (Widget.focus): the keys typed after "/" are passed on to
        # whatever has the focus when the app reads them (the binding is a priority one)
        self.screen.set_focus(box)

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

    async def action_toggle_folds(self) -> None:
        from .widgets.graph import GraphDrawing

        drawing = await self._graph_view("tab-drawing")
        assert isinstance(drawing, GraphDrawing)
        expanded = drawing.toggle_folds()
        self.query_one(TabbedContent).active = "tab-drawing"
        self.notify("Numbered runs unfolded." if expanded else "Numbered runs folded.")

    def action_export_dot(self) -> None:
        dev = self.selected_device
        if dev is None or not dev.registered:
            self.notify("Select a registered media device first.", severity="warning")
            return
        from .render import dot

        path = self.export_dir / f"mdtui-{dev.name}.dot"
        try:
            path.write_text(dot.print_dot(dev, interfaces=True))
        except OSError as exc:
            self.notify(f"{path}: {exc.strerror}", title="DOT export failed", severity="error", markup=False)
            return
        self.notify(f"Wrote {path}", title="DOT exported", markup=False)

    def action_screenshot(self) -> None:
        try:
            name = self.save_screenshot(path=str(self.export_dir))
        except OSError as exc:
            self.notify(str(exc.strerror), title="Screenshot failed", severity="error")
            return
        self.notify(f"Wrote {name}", title="Screenshot saved")

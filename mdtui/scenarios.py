"""Named screens on deterministic simulated machines: the snapshot tests and
``python -m mdtui.scenarios DIR`` (the README's screenshots) use the same list.

Each scenario is the default world (fake clock, so times are stable), some lifecycle steps
run through the app as a user's actions would be, then a tab or keys.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from textual.command import CommandInput
from textual.pilot import Pilot
from textual.widgets import TabbedContent

from .app import MdtuiApp, Updated
from .pipeline import Update
from .script import parse
from .sources.sim import build, fake_clock

if TYPE_CHECKING:
    from .sources import Source
    from .widgets.graph import GraphDrawing


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    steps: str = ""
    tab: str | None = None
    keys: tuple[str, ...] = ()
    size: tuple[int, int] = (120, 40)
    palette: str | None = None  # open the command palette and type this
    theme: str | None = None  # one of Textual's themes (None: its default, textual-dark)


SCENARIOS = [
    Scenario("default_world_wide", "The default world: a shared HVR-950Q and a webcam"),
    Scenario("default_world_80x24", "The same at 80x24", size=(80, 24)),
    Scenario(
        "deferred_release_light",
        "A kept reference, in a light theme (textual-light)",
        "open /dev/video0 tvheadend\nunbind au0828 1-1:1.0",
        theme="textual-light",
    ),
    Scenario("after_unbinding_au0828", "au0828 unbound: refcount 1, still registered", "unbind au0828 1-1:1.0"),
    Scenario(
        "after_unbinding_both",
        "Both unbound: the media device is released",
        "unbind au0828 1-1:1.0\nunbind snd-usb-audio 1-1:1.1",
    ),
    Scenario("rmmod_refused", "rmmod au0828 refused while the sharer pins it", "unbind au0828 1-1:1.0\nrmmod au0828"),
    Scenario("graph_drawing_hvr950q", "The HVR-950Q's data links, ts-outs folded", tab="tab-drawing", size=(160, 40)),
    Scenario("graph_tree_hvr950q", "Entities by function, pads and links", tab="tab-graph"),
    Scenario(
        "deferred_release_through_open_video0",
        "au0828 unbound but kept by an open /dev/video0",
        "open /dev/video0 tvheadend\nunbind au0828 1-1:1.0\nunbind snd-usb-audio 1-1:1.1",
    ),
    Scenario("help", "Help", keys=("question_mark",)),
    Scenario("command_palette", "Every action in the command palette", palette="unbind"),
]


def make_app(
    export_dir: Path | None = None,
    theme: str | None = None,
    confirm: str = "live",
    keymap: Mapping[str, str] | None = None,
) -> MdtuiApp:
    """The default world, with a clock that ticks 1 ms per reading (also when it is built
    again on another allocator design); the other arguments are the configuration's."""
    source, _ = build(clock=fake_clock())

    def redesign(variant: str) -> Source:
        return build(variant=variant, clock=fake_clock())[0]

    return MdtuiApp(source, export_dir=export_dir, redesign=redesign, theme=theme, confirm=confirm, keymap=keymap)


async def settle(app: MdtuiApp) -> None:
    """Wait until every action has run and the pipeline has delivered what it caused (for
    screenshots and tests: nothing the app itself waits for)."""
    quiet = 0
    for _ in range(400):
        await app.workers.wait_for_complete()
        await asyncio.sleep(0.005)
        quiet = quiet + 1 if app.pipeline is None or app.pipeline.idle else 0
        if quiet == 2:  # and what the last update posted (a notification's toast) has been handled
            return


async def show_drawing(pilot: Pilot) -> GraphDrawing:
    """Switch to the Drawing tab; its widget once it shows a device (it is made and mounted
    when the tab is first shown)."""
    from .widgets.graph import GraphDrawing

    pilot.app.query_one(TabbedContent).active = "tab-drawing"
    for _ in range(200):
        await pilot.pause(0.02)
        drawings = pilot.app.query(GraphDrawing)
        if drawings and not isinstance(drawings.first().content, str):
            break
    return pilot.app.query_one(GraphDrawing)


def on_update(app: MdtuiApp, callback: Callable[[Update], None]) -> None:
    """Call ``callback`` with every update the running app has applied, right after it was
    (the app's ``Updated`` message, seen through Textual's ``message_signal``)."""

    def seen(message: object) -> None:
        if isinstance(message, Updated) and message.update is not None:
            callback(message.update)

    app.message_signal.subscribe(app, seen, immediate=True)


def percentile(values: list[float], p: float) -> float:
    """The nearest-rank ``p``-th percentile (benches and tests)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def run_before(scenario: Scenario) -> Callable[[Pilot], object]:
    async def prepare(pilot: Pilot) -> None:
        app: MdtuiApp = pilot.app  # type: ignore[assignment]
        await settle(app)
        for step in parse(scenario.steps):
            app.perform(step)
            await settle(app)
        if scenario.tab:
            app.query_one(TabbedContent).active = scenario.tab
        if scenario.keys:
            await pilot.press(*scenario.keys)
        if scenario.palette is not None:
            await pilot.press("ctrl+p")
            await pilot.pause()
            for box in app.screen.query(CommandInput):
                box.cursor_blink = False
            await pilot.press(*scenario.palette)
            await pilot.pause(0.5)
        await settle(app)
        await pilot.pause()

    return prepare


async def screenshot(scenario: Scenario, directory: Path) -> Path:
    app = make_app(theme=scenario.theme)
    async with app.run_test(size=scenario.size) as pilot:
        await run_before(scenario)(pilot)
        path = directory / f"{scenario.name}.svg"
        path.write_text(app.export_screenshot(title=f"mdtui: {scenario.title}"))
    return path


def main(argv: list[str] | None = None) -> int:
    """``python -m mdtui.scenarios DIR``: write one SVG per scenario into DIR."""
    args = sys.argv[1:] if argv is None else argv
    directory = Path(args[0] if args else "screenshots")
    directory.mkdir(parents=True, exist_ok=True)
    for scenario in SCENARIOS:
        print(asyncio.run(screenshot(scenario, directory)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

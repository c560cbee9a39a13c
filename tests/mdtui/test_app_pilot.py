"""Drive the TUI with keys and check what the simulated kernel and the screen hold."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console
from textual import events
from textual.command import CommandList
from textual.pilot import Pilot
from textual.widgets import Input, TabbedContent

import mdtui.app
from allocator.mc.uapi import MEDIA_LNK_FL_ENABLED
from mdtui.scenarios import make_app, settle, show_drawing
from mdtui.screens.choice import ChoiceScreen, ConfirmScreen
from mdtui.screens.help import HelpScreen
from mdtui.script import parse
from mdtui.widgets.detail import render_detail
from mdtui.widgets.event_log import EventLog

from .conftest import step


def _refcount(app) -> int | None:
    return app.snapshot.device("1-1").refcount


@pytest.mark.asyncio
async def test_unbind_and_bind_from_the_keyboard(pilot: Pilot) -> None:
    app = pilot.app
    await settle(app)
    assert _refcount(app) == 2
    await pilot.press("u")
    assert isinstance(app.screen, ChoiceScreen)
    await pilot.press("enter")  # first choice: unbind au0828 from 1-1:1.0
    await settle(app)
    assert _refcount(app) == 1
    assert app.source.kernel.usb.find_interface("1-1:1.0").driver is None
    log = app.query_one(EventLog)
    assert any("media0 refcount 2→1 (au0828 unbound 1-1:1.0)" in e.text for e in log.entries)
    await pilot.press("b", "enter")  # bind au0828 to 1-1:1.0
    await settle(app)
    assert _refcount(app) == 2


@pytest.mark.asyncio
async def test_refused_rmmod_is_a_notification_with_the_kernel_wording(pilot: Pilot) -> None:
    app = pilot.app
    await pilot.press("r", "enter")  # rmmod au0828 (first loaded module)
    await settle(app)
    notes = list(app._notifications)
    assert [n.message for n in notes] == ["rmmod: ERROR: Module au0828 is in use"]
    assert notes[0].title == "rmmod au0828: EBUSY" and notes[0].severity == "error"
    assert "au0828" in app.source.kernel.modules


@pytest.mark.asyncio
async def test_escape_cancels_a_choice(pilot: Pilot) -> None:
    app = pilot.app
    await pilot.press("u", "escape")
    await settle(app)
    assert _refcount(app) == 2 and not isinstance(app.screen, ChoiceScreen)


@pytest.mark.asyncio
async def test_plug_open_close_unplug(pilot: Pilot) -> None:
    app = pilot.app
    await pilot.press("p", "enter")  # plug hvr950q
    await settle(app)
    assert [d.key for d in app.snapshot.media_devices] == ["1-1", "1-2:1.0", "1-3"]
    await pilot.press("o", "enter")  # first node of the selected device (media0's stick)
    await settle(app)
    assert len(app.snapshot.open_files) == 1
    await pilot.press("c", "enter")
    await settle(app)
    assert app.snapshot.open_files == ()
    await pilot.press("down")  # select the webcam: unplug offers its stick first
    await pilot.press("x", "enter")
    await settle(app)
    assert [d.key for d in app.snapshot.media_devices] == ["1-1", "1-3"]
    await pilot.press("2")
    assert app.query_one("#tabs").active == "tab-graph"
    assert app.source.kernel.check() == []


@pytest.mark.asyncio
async def test_filter_help_and_palette(pilot: Pilot) -> None:
    app = pilot.app
    await pilot.press("r", "enter")
    await settle(app)
    await pilot.press("slash")
    assert app.focused is app.query_one("#filter", Input)
    await pilot.press(*"kind:error")
    log = app.query_one(EventLog)
    assert log.query_text == "kind:error" and len(log.rows) == 1
    await pilot.press("escape")
    assert log.query_text == "" and len(log.rows) > 1
    await pilot.press("question_mark")
    assert isinstance(app.screen, HelpScreen)
    await pilot.press("escape")
    await pilot.press("ctrl+p")
    await pilot.press(*"unbind au0828")
    await pilot.pause(0.3)
    await pilot.press("enter")
    await settle(app)
    assert _refcount(app) == 1


@pytest.mark.asyncio
async def test_export_dot_and_screenshot(tmp_path: Path) -> None:
    app = make_app(export_dir=tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("d", "s")
        await settle(app)
        dot = (tmp_path / "mdtui-media0.dot").read_text()
        assert dot.startswith("digraph board {") and "intf_devnode_" in dot
        assert [p.suffix for p in tmp_path.iterdir() if p.suffix == ".svg"] == [".svg"]


@pytest.mark.asyncio
async def test_selection_follows_the_cursor_and_survives_updates(pilot: Pilot) -> None:
    app = pilot.app
    await pilot.press("down")
    await settle(app)
    assert app.selected_device.key == "1-2:1.0"
    app.perform(step("unbind au0828 1-1:1.0"))
    await settle(app)
    assert app.selected_device.key == "1-2:1.0"  # an update elsewhere keeps the selection
    await pilot.click("#devices", offset=(5, 2))  # the border, the header, then media0's row
    await settle(app)
    assert app.selected_device.key == "1-1"
    await pilot.click("#devices", offset=(5, 1))  # the header selects nothing
    await pilot.press("end")
    await settle(app)
    assert app.selected_device.key == "1-2:1.0"
    await pilot.press("pageup", "up", "up")
    await settle(app)
    assert app.selected_device.key == "1-1"


@pytest.mark.asyncio
async def test_an_anomaly_is_shown_on_the_row_and_in_the_detail() -> None:
    from allocator.device import MinorAllocator

    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        k = app.source.kernel
        for line in ("unbind au0828 1-1:1.0", "unbind snd-usb-audio 1-1:1.1"):
            app.perform(step(line))
            await settle(app)
        k.video_minors = MinorAllocator(0)  # au0828's probe will fail after allocating...
        app.perform(step("bind au0828 1-1:1.0"))  # ...and mainline leaks its reference
        await settle(app)
        [dev] = [d for d in app.snapshot.media_devices if d.key == "1-1"]
        assert dev.state == "ANOMALY" and dev.anomalies == ("refcount 1 != 0 holders (nobody)",)
        await pilot.press("up")
        await settle(app)
        assert app.selected_device.key == "1-1"
        console = Console(width=120, record=True, file=io.StringIO())
        console.print(render_detail(app.selected_device, app.snapshot))
        assert "ANOMALY  refcount 1 != 0 holders (nobody)" in console.export_text()


@pytest.mark.asyncio
async def test_destructive_actions_ask_first_when_not_simulated() -> None:
    app = make_app()
    app.source.simulated = False  # what a live source declares
    async with app.run_test(size=(120, 40)) as pilot:
        app.perform(step("unbind au0828 1-1:1.0"))
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        await settle(app)
        assert _refcount(app) == 2
        app.perform(step("unbind au0828 1-1:1.0"))
        await pilot.pause()
        await pilot.press("y")
        await settle(app)
        assert _refcount(app) == 1
        assert app.check_action("choose", ("plug",)) is False  # sim-only actions are hidden


def _keys_before_the_screen_is_gone(app, *keys: str) -> None:
    """Queue keys at once, as a terminal delivers them when typed faster than a frame:
    ``pilot.press`` would wait for each to be handled."""
    for key in keys:
        app.post_message(events.Key(key, "\r" if key == "enter" else None))


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("opener", "keys"),
    [
        ("u", ("enter", "enter")),  # ChoiceScreen: choose twice
        ("u", ("escape", "escape", "escape")),
        ("question_mark", ("escape", "escape")),  # HelpScreen
        ("ctrl+p", ("enter", "enter")),  # the command palette (Textual's own screen)
    ],
)
async def test_a_dialog_answers_once(pilot: Pilot, opener: str, keys: tuple[str, ...]) -> None:
    app = pilot.app
    await settle(app)
    await pilot.press(opener)
    _keys_before_the_screen_is_gone(app, *keys)
    await pilot.pause()
    await settle(app)
    assert len(app.screen_stack) == 1 and app.return_code is None  # alive, main screen
    if opener == "u":  # the palette's first enter may or may not land on a hit yet
        assert _refcount(app) == (1 if keys[0] == "enter" else 2)  # one unbind, not two


@pytest.mark.asyncio
async def test_a_confirmation_answers_once() -> None:
    app = make_app()
    app.source.simulated = False
    answers: list[bool | None] = []
    async with app.run_test(size=(120, 40)) as pilot:
        app.push_screen(ConfirmScreen("Really?"), answers.append)
        await pilot.pause()
        _keys_before_the_screen_is_gone(app, "y", "y", "n")
        await pilot.pause()
        assert answers == [True] and len(app.screen_stack) == 1 and app.return_code is None


@pytest.mark.asyncio
async def test_a_crash_exits_1_and_keeps_the_traceback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    app = make_app()

    def broken() -> None:
        raise RuntimeError("injected by the test")

    monkeypatch.setattr(app, "action_help", broken)
    with pytest.raises(RuntimeError):
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.press("question_mark")
    assert app.return_code == 1
    assert app.crash_report is not None and app.crash_report.parent == tmp_path / "mdtui"
    assert "RuntimeError: injected by the test" in app.crash_report.read_text()


@pytest.mark.asyncio
async def test_the_palette_runs_one_step_however_often_enter_is_pressed(pilot: Pilot) -> None:
    app = pilot.app
    await pilot.press("ctrl+p", *"unbind au0828")
    for _ in range(100):  # its hits are gathered in the background: wait for one to be highlighted
        await pilot.pause(0.05)
        if app.screen.query_one(CommandList).highlighted is not None:
            break
    _keys_before_the_screen_is_gone(app, "enter", "enter", "enter")
    await pilot.pause()
    await settle(app)
    assert _refcount(app) == 1 and len(app.screen_stack) == 1
    assert not [n for n in app._notifications if "ENODEV" in str(n.title)]  # no second unbind refused


@pytest.mark.asyncio
async def test_keys_typed_right_after_slash_go_into_the_filter(pilot: Pilot) -> None:
    """A terminal hands the app "/kind:error" in one read: the keys after "/" are passed on
    before "/" has run, so "/" must move the focus at once (a priority binding, focus set now);
    they were taken as the app's own keys (d exported a DOT file, r asked what to rmmod)."""
    app = pilot.app
    burst = "/kind:error"
    for ch in burst:
        app.post_message(events.Key("slash" if ch == "/" else "colon" if ch == ":" else ch, ch))
    await settle(app)
    box = app.query_one("#filter", Input)
    assert app.focused is box and box.value == "kind:error"
    assert app.screen is app.screen_stack[0]  # no dialog opened by a letter
    for ch in "/x":  # typed into the box, "/" is text
        app.post_message(events.Key("slash" if ch == "/" else ch, ch))
    await settle(app)
    assert box.value == "kind:error/x"


@pytest.mark.asyncio
async def test_slash_in_a_dialog_leaves_the_filter_alone(pilot: Pilot) -> None:
    app = pilot.app
    await pilot.press("u")
    assert isinstance(app.screen, ChoiceScreen)
    await pilot.press("slash")
    assert isinstance(app.screen, ChoiceScreen) and not app.query_one("#filter", Input).has_class("visible")
    await pilot.press("escape")
    assert app.screen is app.screen_stack[0]


@pytest.mark.asyncio
async def test_a_graph_tab_shows_a_link_change_no_event_told(pilot: Pilot, monkeypatch: pytest.MonkeyPatch) -> None:
    """SETUP_LINK sends no uevent and keeps topology_version: the graph tabs read the topology
    again every REREAD_PERIOD while one is visible, and not once another tab is."""
    monkeypatch.setattr(mdtui.app, "REREAD_PERIOD", 0.05)
    app = pilot.app
    mdev = next(s.mdev for s in app.source.kernel.view.media_devices() if s.mdev.model == "WinTV HVR-950Q")
    tuner = next(e for e in mdev.entities.values() if e.name == "tuner 0-0061")
    link = next(ln for ln in tuner.links if not ln.is_backlink and ln.sink.entity.name == "au8522 0-0047")

    def enabled_in_snapshot() -> bool:
        topo = app.snapshot.device("1-1").topology
        return bool(next(r.flags for r in topo.links if r.id == link.id) & MEDIA_LNK_FL_ENABLED)

    def toggle(flags: int) -> None:
        with app.source.lock:
            mdev.media_device_setup_link((tuner.id, link.source.index), (link.sink.entity.id, link.sink.index), flags)

    drawing = await show_drawing(pilot)
    before = drawing.content.plain
    assert not enabled_in_snapshot()
    toggle(MEDIA_LNK_FL_ENABLED)
    await pilot.pause(0.3)
    await settle(app)
    assert enabled_in_snapshot()
    assert drawing.content.plain != before  # the edge is drawn enabled now
    app.query_one(TabbedContent).active = "tab-allocator"
    await pilot.pause(0.1)
    await settle(app)
    toggle(0)
    await pilot.pause(0.3)
    await settle(app)
    assert enabled_in_snapshot()  # no tab re-reads: the link change stays unseen


@pytest.mark.asyncio
async def test_the_selection_follows_a_replugged_device_to_its_new_node(pilot: Pilot) -> None:
    """/dev/mediaN numbers follow plug order: a stick unplugged and plugged back after another
    device took its number is selected again (by bus_info), at its new node."""
    app = pilot.app
    assert app.selected_key == "1-1" and app.selected_device.devnode == "/dev/media0"
    for line in ("unplug 1-1", "plug c270 1-3", "plug hvr950q 1-1"):
        app.perform(step(line))
        await settle(app)
        await pilot.pause()
    assert app.selected_key == "1-1"
    assert app.selected_device.devnode == "/dev/media2"  # media0 went to the second C270
    assert render_detail(app.selected_device, app.snapshot).plain.startswith("/dev/media2")
    app.perform(step("unplug 1-1"))
    await settle(app)
    await pilot.pause()
    await pilot.press("down", "up")  # the user chooses while it is gone: its return moves nothing
    moved = app.selected_key
    assert moved != "1-1"
    app.perform(step("plug hvr950q 1-1"))
    await settle(app)
    await pilot.pause()
    assert app.selected_key == moved


@pytest.mark.asyncio
async def test_the_palette_builds_the_machine_again_on_another_design(pilot: Pilot) -> None:
    """#13: the same world on v4, from the palette: its lockdep WARNs are on screen."""
    app = pilot.app
    await settle(app)
    assert app.source.variant == "mainline" and app.designs == ["v3", "v4", "v10", "fixed"]
    await pilot.press("ctrl+p")
    await pilot.pause(0.1)
    for key in "design v4":
        await pilot.press(key if key != " " else "space")
    await pilot.pause(0.3)
    await pilot.press("enter")
    await settle(app)
    assert app.source.variant == "v4"
    assert "(allocator: v4)" in " ".join(app.snapshot.notes)
    log = app.query_one(EventLog)
    assert any("module_assert_mutex+0x20/0x30" in e.text for e in log.entries)
    assert not any("allocator: mainline" in e.text for e in log.entries)  # the old machine's log is gone
    assert _refcount(app) == 2 and app.designs == ["v3", "v10", "mainline", "fixed"]
    await pilot.press("u", "enter")  # the new machine answers the keys
    await settle(app)
    assert _refcount(app) == 1


@pytest.mark.asyncio
async def test_names_are_never_markup_in_dialogs_and_the_palette() -> None:
    """A process named ``[/]`` (any user may name one so; a bundle may hold any name) once
    crashed the close dialog and the palette with a MarkupError."""
    from mdtui.sources.sim import build, fake_clock

    source, _ = build(
        parse(
            "modprobe au0828\nmodprobe snd_usb_audio\nplug hvr950q\nopen /dev/video0 [/]\nopen /dev/media0 [b]bold\n"
        ),
        clock=fake_clock(),
    )
    app = mdtui.app.MdtuiApp(source)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app)
        await pilot.press("c")
        await pilot.pause(0.2)
        assert isinstance(app.screen, ChoiceScreen)
        prompts = [str(app.screen.query_one("OptionList").get_option_at_index(n).prompt) for n in range(2)]
        assert prompts == ["close /dev/video0 (fd 3, pid 1000 [/])", "close /dev/media0 (fd 4, pid 1001 [b]bold)"]
        await pilot.press("escape", "ctrl+p")
        await pilot.pause(0.3)
        for key in "close":
            await pilot.press(key)
        await pilot.pause(0.3)
        assert app.return_code is None  # still running: no MarkupError
        await pilot.press("escape")

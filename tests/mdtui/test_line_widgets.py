"""The line widgets (mdtui/widgets/lines.py) as a hostile review drove them: each of these
failed on the first version of the widgets."""

from __future__ import annotations

import pytest

from mdtui.app import MdtuiApp
from mdtui.scenarios import make_app, settle
from mdtui.script import parse
from mdtui.sources.sim import build, fake_clock
from mdtui.widgets.detail import Detail
from mdtui.widgets.device_list import DeviceList
from mdtui.widgets.event_log import EventLog
from mdtui.widgets.modules import ModuleList


def strip_text(widget: DeviceList | ModuleList, y: int) -> str:
    return widget.render_line(y).text


@pytest.mark.asyncio
async def test_module_ellipsis_visible_with_scrollbar() -> None:
    app = make_app()
    async with app.run_test(size=(100, 30)):
        await settle(app)
        ml = app.query_one(ModuleList)
        assert ml.show_vertical_scrollbar
        visible = ml.scrollable_content_region.width
        line = next(strip_text(ml, y) for y in range(ml.size.height) if strip_text(ml, y).startswith("mc "))
        assert line[:visible].rstrip().endswith("…"), repr(line[:visible])


@pytest.mark.asyncio
async def test_detail_wraps_inside_its_scrollbar() -> None:
    app = make_app()
    async with app.run_test(size=(100, 30)):
        await settle(app)
        det = app.query_one(Detail)
        assert det.show_vertical_scrollbar
        widest = max(sum(len(t) for t, _ in row) for row in det.rows)
        assert widest <= det.scrollable_content_region.width, (widest, det.scrollable_content_region.width)


@pytest.mark.asyncio
async def test_cursor_stays_visible_when_the_list_gets_shorter() -> None:
    script = parse("\n".join(["modprobe au0828", "modprobe uvcvideo", *["plug c270"] * 12]))
    source, _ = build(script, clock=fake_clock())
    app = MdtuiApp(source)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app)
        dl = app.query_one(DeviceList)
        await pilot.press("end")
        await settle(app)
        await pilot.resize_terminal(90, 40)  # narrow: the list is 2 rows shorter
        await settle(app)
        await pilot.resize_terminal(90, 41)
        await settle(app)
        visible = dl.scrollable_content_region.height - 1
        assert dl.scroll_y <= dl.cursor < dl.scroll_y + visible, (dl.cursor, dl.scroll_y, visible)


@pytest.mark.asyncio
async def test_log_follows_again_after_scrolling_back_to_the_bottom() -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app)
        log = app.query_one(EventLog)
        log.focus()
        await pilot.press("up", "down")
        await pilot.pause(0.3)
        assert log.scroll_y == log.max_scroll_y
        [s] = parse("plug c270")
        app.perform(s)
        await settle(app)
        await pilot.pause(0.3)
        assert log.scroll_y == log.max_scroll_y, (log.scroll_y, log.max_scroll_y)


@pytest.mark.asyncio
async def test_state_column_reachable_at_80_columns() -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app)
        for line in ("open /dev/video0", "unbind au0828 1-1:1.0", "unbind snd-usb-audio 1-1:1.1"):
            [s] = parse(line)
            app.perform(s)
            await settle(app)
        dl = app.query_one(DeviceList)
        dl.focus()
        await pilot.press(*["right"] * 12)  # sideways, as far as a held key goes
        await settle(app)
        width = dl.scrollable_content_region.width
        shown = [strip_text(dl, y)[:width] for y in range(3)]
        assert any("deferred release" in line for line in shown), shown


@pytest.mark.asyncio
async def test_control_characters_never_reach_the_terminal() -> None:
    """An escape sequence in a line (a USB string, a script's argument) is shown as text."""
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app)
        [s] = parse("bind au0828 ZZ\x1b[2J")
        app.perform(s)
        await settle(app)
        await pilot.pause()
        log = app.query_one(EventLog)
        shown = [log.render_line(y).text for y in range(log.size.height)]
        assert not any("\x1b" in line for line in shown)
        assert any("ZZ^[[2J" in line for line in shown), shown

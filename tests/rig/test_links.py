"""SETUP_LINK on the rig: ``media-ctl -l`` and ``-r`` change links as on real hardware, the
live reading and the TUI's graph tab (re-read every REREAD_PERIOD while visible) follow."""

from __future__ import annotations

import asyncio
import json
import subprocess

from mdtui.app import REREAD_PERIOD, MdtuiApp
from mdtui.live.monitor import UdevMonitor
from mdtui.scenarios import fake_clock, settle, show_drawing
from mdtui.sources.live import LiveSource

from .conftest import mdtui

TUNER_TO_DECODER = '"tuner 0-0061":1 -> "au8522 0-0047":0'


def media_ctl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["media-ctl", "-d", "/dev/media0", *args], capture_output=True, text=True)


def tuner_links() -> list[str]:
    out = media_ctl("-p").stdout
    section = out[out.index("tuner 0-0061 (") :]
    return [ln.strip() for ln in section.split("\n\n")[0].splitlines() if "->" in ln]


def enabled_in_live_dump() -> int:
    doc = json.loads(mdtui("dump", "--source", "live", "--format", "json", "--device", "media0"))
    links = doc["media_devices"][0]["links"]
    return sum(1 for ln in links if ln["enabled"] and ln["kind"] == "data")


def test_media_ctl_sets_and_resets_links() -> None:
    assert '-> "au8522 0-0047":0 []' in tuner_links()
    before = enabled_in_live_dump()
    done = media_ctl("-l", f"{TUNER_TO_DECODER}[1]")
    assert done.returncode == 0, done.stderr
    assert '-> "au8522 0-0047":0 [ENABLED]' in tuner_links()
    assert enabled_in_live_dump() == before + 1
    refused = media_ctl("-l", '"tuner 0-0061":1 -> "au0828a video":0[1]')  # no such link
    assert refused.returncode != 0
    assert media_ctl("-r").returncode == 0  # every link that is not immutable: off
    assert enabled_in_live_dump() == 0
    assert all(ln.endswith("[]") for ln in tuner_links())


def test_the_drawing_tab_shows_a_link_media_ctl_changed() -> None:
    async def run() -> None:
        app = MdtuiApp(LiveSource(monitor_factory=UdevMonitor, clock=fake_clock()))
        async with app.run_test(size=(120, 40)) as pilot:
            await settle(app)
            drawing = await show_drawing(pilot)
            before = drawing.content.plain
            assert media_ctl("-l", f"{TUNER_TO_DECODER}[1]").returncode == 0
            for _ in range(int(4 * REREAD_PERIOD / 0.05)):  # within a few periods, not at once
                await asyncio.sleep(0.05)
                if drawing.content.plain != before:
                    break
            assert drawing.content.plain != before

    asyncio.run(run())

"""A bug-report bundle made on the rig, shown outside it: ``mdtui dump --source live
--bundle X`` inside (through pyudev, sysfs and the media ioctls, with a process holding
/dev/video0 open), then ``mdtui --source bundle:X`` in a process that has left the rig
(no umockdev preload, no testbed, no control socket) shows the devices, the allocator's
view and the modules as the live TUI shows them inside."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

from mdtui.app import MdtuiApp
from mdtui.live.monitor import UdevMonitor
from mdtui.scenarios import fake_clock, settle
from mdtui.sources.bundle import BundleSource
from mdtui.sources.live import LiveSource

from ..mdtui.test_bundle import shown

SIZE = (120, 40)

#: shows a bundle the way `mdtui --source bundle:X` opens it (the CLI's source), in a pilot;
#: prints what the screen shows, as JSON
OUTSIDE = """
import asyncio, json, os, sys
from mdtui.app import MdtuiApp
from mdtui.cli import open_source, parser
from mdtui.scenarios import settle
from tests.mdtui.test_bundle import shown

assert not any(k.startswith(("UMOCKDEV", "MDTUI_RIG")) or k == "LD_PRELOAD" for k in os.environ)
args = parser().parse_args(["--source", "bundle:" + sys.argv[1]])
args.argv = []
source, steps = open_source(args, None)
assert steps == [] and type(source).__name__ == "BundleSource"

async def main():
    app = MdtuiApp(source)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app)
        print(json.dumps({"sub_title": app.sub_title, "shown": await shown(app, pilot)}))

asyncio.run(main())
"""


def outside_env() -> dict[str, str]:
    """This environment without the rig: no preload library, no testbed, no control socket."""
    return {k: v for k, v in os.environ.items() if k != "LD_PRELOAD" and not k.startswith(("UMOCKDEV", "MDTUI_RIG"))}


def live_screen() -> dict[str, list[str]]:
    """What the TUI on the live source (on the rig) shows, once quiet."""

    async def run() -> dict[str, list[str]]:
        app = MdtuiApp(LiveSource(monitor_factory=UdevMonitor, clock=fake_clock()))
        async with app.run_test(size=SIZE) as pilot:
            await settle(app)
            # module refcnts move with every open of /dev/mediaN (the app's own reads too):
            # read once more when all is quiet (as tests/rig/test_tui.py does)
            await asyncio.sleep(0.1)
            app.pipeline.refresh()
            await settle(app)
            return await shown(app, pilot)

    return asyncio.run(run())


def test_a_bundle_made_in_the_rig_shows_outside_what_the_live_tui_shows(tmp_path: Path) -> None:
    out = tmp_path / "rig.tar.gz"
    holder = subprocess.Popen(["sh", "-c", "exec sleep 60 < /dev/video0"])
    try:
        time.sleep(0.5)  # the open has reached the rig
        made = subprocess.run(
            [sys.executable, "-m", "mdtui", "dump", "--source", "live", "--bundle", str(out)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert made.returncode == 0, made.stderr
        assert made.stdout == "" and made.stderr.startswith(f"mdtui: wrote {out}: 13 files, 2 media devices")
        inside = live_screen()
        with tarfile.open(out, "r:gz") as tar:
            files = {m.name: tar.extractfile(m).read().decode() for m in tar if m.isfile()}  # type: ignore[union-attr]
    finally:
        holder.kill()
        holder.wait()

    readme = files["mdtui-bundle/README.txt"]
    assert f"Command line: mdtui dump --source live --bundle {out}" in readme
    assert "Source: live (live system, inferred allocator state" in readme
    assert {"mdtui-bundle/devices/media0.txt", "mdtui-bundle/devices/media1.dot"} <= set(files)
    stored = BundleSource(str(out)).stored
    assert [d.devnode for d in stored.media_devices] == ["/dev/media0", "/dev/media1"]
    assert stored.media_devices[0].holders and stored.media_devices[0].topology.entities

    # the process holding /dev/video0 is in the bundle (the rig's /proc shows its fd)
    hvr = stored.media_devices[0]
    assert [(f.pid, f.comm, f.fd, f.node) for f in hvr.open_files or ()] == [(holder.pid, "sleep", 0, "/dev/video0")]
    assert f"pid {holder.pid} sleep (" in files["mdtui-bundle/open-files.txt"]

    outside = subprocess.run(
        [sys.executable, "-c", OUTSIDE, str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        env=outside_env(),
        cwd=Path(__file__).resolve().parents[2],
    )
    assert outside.returncode == 0, outside.stderr[-2000:]
    seen = json.loads(outside.stdout)
    assert seen["sub_title"].startswith("bundle rig.tar.gz: live state of ")
    assert list(seen["shown"]) == ["media0", "media1"]
    assert seen["shown"] == inside

"""The live code path end to end on the rig: pyudev enumeration and monitoring, open() and
ioctl() on /dev/media0, sysfs writes; checked against the simulation and against media-ctl."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import select
import subprocess
import time
from pathlib import Path

import pytest

from allocator.mc import uapi_layout
from mdtui.live.decode import unpack_device_info
from mdtui.live.monitor import UdevMonitor
from mdtui.sources.sim import DEFAULT_WORLD

from .conftest import control, mdtui

DRIVERS = Path("/sys/bus/usb/drivers")
LIFECYCLE = (
    "unbind au0828 1-1:1.0",
    "unbind snd-usb-audio 1-1:1.1",
    "bind snd-usb-audio 1-1:1.1",
    "bind au0828 1-1:1.0",
    "unplug 1-1",
    "plug hvr950q",
)


def sysfs_write(line: str) -> None:
    """``echo INTF > /sys/bus/usb/drivers/DRIVER/{bind,unbind}``, as mdtui's live source does."""
    op, driver, intf = line.split()
    (DRIVERS / driver / op).write_text(f"{intf}\n")


def same_apart_from_inferred(live: str, sim: str) -> bool:
    """The two JSON dumps agree on everything but what tells the sources apart: their
    names and notes, for each device the holders' reasons when the live source marks its
    holders inferred (it says "bound (inferred)" where the simulation knows more), and the
    processes hidden from the scan (this machine's own: pid 1 here, which even root may not
    inspect; the simulation has none)."""
    docs = json.loads(live), json.loads(sim)
    for doc in docs:
        del doc["source"], doc["notes"]
    for lv, sm in zip(docs[0]["media_devices"], docs[1]["media_devices"], strict=False):  # lengths: compared below
        del lv["hidden_openers"], sm["hidden_openers"]
        inferred = set(lv.pop("inferred")) | set(sm.pop("inferred"))
        if "holders" in inferred:
            for holder in lv["holders"] + sm["holders"]:
                del holder["reason"]
    return docs[0] == docs[1]


def sim_dump(tmp_path: Path, lines: tuple[str, ...], *args: str) -> str:
    script = tmp_path / "machine.txt"
    script.write_text("\n".join([*(str(s) for s in DEFAULT_WORLD), *lines]) + "\n")
    return mdtui("dump", "--source", "sim", "--script", str(script), *args)


def test_live_dump_equals_the_simulation_default_world(tmp_path: Path) -> None:
    live = mdtui("dump", "--source", "live", "--format", "json")
    assert json.loads(live)["source"] == "live"
    assert same_apart_from_inferred(live, sim_dump(tmp_path, (), "--format", "json"))


def test_live_dump_follows_a_lifecycle_step_by_step(tmp_path: Path) -> None:
    """Bind/unbind through sysfs writes, unplug/plug through the rig's control socket; after
    every step the live reading equals the simulation that ran the same steps."""
    for n, line in enumerate(LIFECYCLE, start=1):
        if line.split()[0] in ("bind", "unbind"):
            sysfs_write(line)
        else:
            assert control(line) == "ok"
        live = mdtui("dump", "--source", "live", "--format", "json")
        assert same_apart_from_inferred(live, sim_dump(tmp_path, LIFECYCLE[:n], "--format", "json")), line


def media_ctl(*args: str) -> str:
    return subprocess.run(["media-ctl", "-d", "/dev/media0", *args], capture_output=True, text=True, check=True).stdout


def test_media_ctl_agrees_with_dump_text() -> None:
    ours = mdtui("dump", "--source", "live", "--format", "text", "--device", "media0")
    theirs = media_ctl("-p")
    assert theirs.count("- entity ") == 522
    section = ours[ours.index("Media controller API version") : ours.index("\nModules\n")]  # then our module table
    assert section.strip() == theirs.strip()


def test_media_ctl_print_dot_agrees_with_dump_dot() -> None:
    ours = mdtui("dump", "--source", "live", "--format", "dot", "--device", "media0")
    theirs = media_ctl("--print-dot")
    assert theirs.count("->") > 500
    assert ours.strip() == theirs.strip()


def test_bind_and_unbind_writes_fail_with_the_simulations_errno() -> None:
    sysfs_write("unbind au0828 1-1:1.0")
    assert not (DRIVERS / "au0828" / "1-1:1.0").exists()
    with pytest.raises(OSError) as again:
        sysfs_write("unbind au0828 1-1:1.0")
    assert again.value.errno == errno.ENODEV
    with pytest.raises(OSError) as nobody:
        sysfs_write("bind au0828 9-9:1.0")
    assert nobody.value.errno == errno.ENODEV
    sysfs_write("bind au0828 1-1:1.0")
    assert (DRIVERS / "au0828" / "1-1:1.0").is_symlink()
    assert control("rmmod au0828").startswith(f"error {errno.EBUSY} EBUSY")


def test_every_change_arrives_as_a_uevent_through_pyudev() -> None:
    bound = [p.parent.name for p in Path("/sys/bus/usb/devices").glob("1-1:*/driver")]
    monitor = UdevMonitor()  # filters by subsystem: the rig's header hashes must be right
    try:
        assert control("unplug 1-1") == "ok"
        events: list[dict[str, str]] = []
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and ("remove", "usb_device") not in {
            (e["ACTION"], e.get("DEVTYPE")) for e in events
        }:
            select.select([monitor.fileno()], [], [], 0.5)
            events += monitor.receive()
    finally:
        monitor.close()
    media = [(e["ACTION"], e["DEVNAME"]) for e in events if e.get("SUBSYSTEM") == "media"]
    assert media == [("remove", "/dev/media0")]
    names = [e["DEVPATH"].rsplit("/", 1)[1] for e in events if e["ACTION"] == "unbind"]
    unbound = sorted(n for n in names if ":" in n)  # interfaces; the device itself leaves "usb"
    assert unbound == sorted(bound) and len(bound) >= 2
    assert (events[-1]["ACTION"], events[-1]["DEVTYPE"]) == ("remove", "usb_device")
    seqnums = [int(e["SEQNUM"]) for e in events]
    assert seqnums == sorted(seqnums) and len(set(seqnums)) == len(seqnums)
    assert not Path("/sys/bus/media/devices/media0").exists()


def device_info(fd: int) -> str:
    buf = bytearray(uapi_layout.MEDIA_IOC_DEVICE_INFO >> 16 & 0x3FFF)
    fcntl.ioctl(fd, uapi_layout.MEDIA_IOC_DEVICE_INFO, buf)
    return unpack_device_info(bytes(buf)).driver


def test_media_device_test_and_open_loops_replica() -> None:
    """tools/testing/selftests/media_tests: media_device_test keeps an fd and calls
    MEDIA_IOC_DEVICE_INFO in a loop, media_device_open opens and closes, while the driver
    is unbound and bound by hand.  An fd kept across the unregister gets EIO, never a crash;
    the node comes back after bind and a new open works."""
    kept = os.open("/dev/media0", os.O_RDONLY)
    try:
        for n in range(20):
            assert device_info(kept) == "au0828"
            fd = os.open("/dev/media0", os.O_RDONLY)
            os.close(fd)
            if n == 10:
                sysfs_write("unbind au0828 1-1:1.0")  # snd-usb-audio still holds it
        assert device_info(kept) == "au0828"
        sysfs_write("unbind snd-usb-audio 1-1:1.1")  # the last holder: unregistered
        for _ in range(5):
            with pytest.raises(OSError) as gone:
                device_info(kept)
            assert gone.value.errno == errno.EIO
        assert not Path("/dev/media0").exists()
        sysfs_write("bind au0828 1-1:1.0")
        sysfs_write("bind snd-usb-audio 1-1:1.1")
        # the kept fd still holds minor 0 (a media devnode's minor is freed at its last
        # close), so the stick comes back as the next free node, after the webcam's media1
        assert sorted(p.name for p in Path("/dev").glob("media*")) == ["media1", "media2"]
        fresh = os.open("/dev/media2", os.O_RDONLY)
        try:
            assert device_info(fresh) == "au0828"
            with pytest.raises(OSError) as still:
                device_info(kept)
            assert still.value.errno == errno.EIO
        finally:
            os.close(fresh)
    finally:
        os.close(kept)


def test_garbage_in_a_refcnt_file_is_put_right_and_breaks_no_open() -> None:
    """Found by a hostile tester: a non-UTF-8 byte written to /sys/module/au0828/refcnt made
    every later open of /dev/media0 fail (ENXIO) and leak a module reference."""
    refcnt = Path("/sys/module/au0828/refcnt")
    refcnt.write_bytes(b"\xff\n")
    for _ in range(3):
        assert subprocess.run(["media-ctl", "-p", "-d", "/dev/media0"], capture_output=True).returncode == 0
    assert refcnt.read_text() == "1\n"
    assert control("unbind au0828 1-1:1.0") == "ok" and control("unbind snd-usb-audio 1-1:1.1") == "ok"
    assert control("rmmod au0828") == "ok"

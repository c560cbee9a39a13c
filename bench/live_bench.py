"""Speed of the live source (issue: live).  Prints its figures; asserts nothing.

1. decode of a HVR-950Q G_TOPOLOGY (522 entities, 7 interfaces, 785 pads, 1,039 links) from
   kernel-layout bytes to snapshot tuples; and the whole two-call read through the ioctl seam
   (which also packs the bytes, as the kernel would).  Target: decode <= 5 ms.
2. uevent to updated screen: the app on the live source over a sysfs tree written from the
   simulation; the machine changes (snd-usb-audio unbound or rebound), then a uevent arrives
   on the fd the event loop watches; time until the app has applied a snapshot that includes
   it.  Target p99 <= 30 ms.
3. idle: `mdtui watch --source live` and the TUI on the live source, left alone for 60 s
   after start-up; CPU time and context switches of the process over those 60 s (from
   /proc/PID/stat and /proc/PID/status).  Target: no wake-ups.

Usage: python bench/live_bench.py [--quick]   (--quick: 10 s idle windows)
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

QUICK = "--quick" in sys.argv
IDLE_SECONDS = 10 if QUICK else 60


def decode() -> tuple[float, float]:
    from allocator import Kernel
    from mdtui.live import media, uapi
    from mdtui.live.answer import FakeIoctl

    k = Kernel()
    k.modprobe("au0828")
    k.modprobe("snd_usb_audio")
    k.plug("hvr950q")
    mdev = k.allocator.instances()[0].mdev
    t = mdev.topology()
    blobs = (
        uapi.pack_entities(t.entities),
        uapi.pack_interfaces(t.interfaces),
        uapi.pack_pads(t.pads),
        uapi.pack_links(t.links),
    )
    runs = []
    for _ in range(50):
        t0 = time.perf_counter()
        uapi.unpack_entities(blobs[0], len(t.entities))
        uapi.unpack_interfaces(blobs[1], len(t.interfaces))
        uapi.unpack_pads(blobs[2], len(t.pads))
        uapi.unpack_links(blobs[3], len(t.links))
        runs.append((time.perf_counter() - t0) * 1000)
    node = Path(tempfile.mkdtemp()) / "media0"
    node.write_bytes(b"")
    seam = FakeIoctl({str(node): mdev})
    reads = []
    for _ in range(20):
        t0 = time.perf_counter()
        media.read(str(node), seam)
        reads.append((time.perf_counter() - t0) * 1000)
    return statistics.median(runs), statistics.median(reads)


async def uevent_to_screen(events: int = 200) -> list[float]:
    from allocator import Kernel
    from mdtui.app import MdtuiApp
    from mdtui.live.answer import FakeIoctl
    from mdtui.live.sysfs import Sysfs
    from mdtui.live.testing import PipeMonitor
    from mdtui.rig.tree import write_tree
    from mdtui.sources.live import LiveSource

    k = Kernel()
    for m in ("au0828", "snd_usb_audio", "uvcvideo"):
        k.modprobe(m)
    for _ in range(4):
        k.plug("hvr950q")
        k.plug("c270")
    root = Path(tempfile.mkdtemp())
    seam = FakeIoctl()

    def sync() -> None:
        write_tree(k, root)
        seam.devices.clear()
        for mdev in k.media_devices():
            if mdev.devnode is not None:
                seam.devices[str(root / "dev" / mdev.devnode.device.devname)] = mdev

    sync()
    feed = PipeMonitor()
    source = LiveSource(Sysfs(root / "sys", root / "dev"), seam, monitor_factory=lambda: feed)
    app = MdtuiApp(source)
    applied: list[tuple[float, int]] = []
    original = app._apply
    arrived = asyncio.Event()  # set when a snapshot is applied: the benchmark never polls

    def timed(snap):
        original(snap)
        applied.append((time.perf_counter(), snap.seq))
        arrived.set()

    app._apply = timed  # type: ignore[method-assign]
    latencies = []
    async with app.run_test(size=(120, 40)):
        await app.settle()
        sticks = [u.name for u in k.usb.devices() if u.catalog_name == "hvr950q"]
        for n in range(events):
            stick = sticks[n % len(sticks)]
            action = "unbind" if (n // len(sticks)) % 2 == 0 else "bind"
            getattr(k, action)("snd-usb-audio", f"{stick}:1.1")  # the machine changes...
            sync()
            devpath = k.usb.find_device(stick).devpath
            t0 = time.perf_counter()
            feed.send(
                {"ACTION": action, "DEVPATH": f"{devpath}/{stick}:1.1", "SUBSYSTEM": "usb", "DEVTYPE": "usb_interface"}
            )  # ...and its uevent arrives
            seq = source._seq + 1
            while not any(s >= seq for _, s in applied):
                arrived.clear()
                await arrived.wait()
            done = next(at for at, s in applied if s >= seq)
            latencies.append((done - t0) * 1000)
            await asyncio.sleep(0.05)
    return latencies


WATCH = [sys.executable, "-m", "mdtui", "watch", "--source", "live"]
TUI = [
    sys.executable,
    "-c",
    "from mdtui.app import MdtuiApp; from mdtui.live.monitor import UdevMonitor; "
    "from mdtui.sources.live import LiveSource; "
    "MdtuiApp(LiveSource(monitor_factory=UdevMonitor)).run(headless=True, size=(120, 40))",
]


def idle(cmd: list[str]) -> tuple[float, int]:
    """CPU seconds and context switches of ``cmd`` over IDLE_SECONDS, after 5 s of start-up."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(5)
        cpu0, sw0 = _usage(proc.pid)
        time.sleep(IDLE_SECONDS)
        cpu1, sw1 = _usage(proc.pid)
        if proc.poll() is not None:
            raise RuntimeError(f"{cmd[-1][:40]}... exited with {proc.returncode} during the idle window")
    finally:
        proc.terminate()
        proc.wait(10)
    return cpu1 - cpu0, sw1 - sw0


def _usage(pid: int) -> tuple[float, int]:
    """utime+stime of every thread of the process, and all their context switches."""
    ticks = os.sysconf("SC_CLK_TCK")
    cpu, switches = 0.0, 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
        cpu += (int(stat[11]) + int(stat[12])) / ticks
        for line in Path(f"/proc/{pid}/task/{tid}/status").read_text().splitlines():
            if line.endswith("ctxt_switches:") or "ctxt_switches" in line:
                switches += int(line.split()[-1])
    return cpu, switches


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


def main() -> None:
    dec, read = decode()
    print(
        f"HVR-950Q topology decode: {dec:.2f} ms median (whole two-call read through the seam, "
        f"incl. packing and ENUM_ENTITIES: {read:.2f} ms)"
    )
    lat = asyncio.run(uevent_to_screen(60 if QUICK else 200))
    print(
        f"uevent to screen (8 devices, live source over a written sysfs tree): {len(lat)} events, "
        f"p50 {pct(lat, 50):.1f} ms, p99 {pct(lat, 99):.1f} ms, max {max(lat):.1f} ms"
    )
    for name, cmd in (("mdtui watch --source live", WATCH), ("TUI on the live source", TUI)):
        cpu, switches = idle(cmd)
        print(f"idle {IDLE_SECONDS} s, {name}: {cpu * 1000:.0f} ms CPU, {switches} context switches")


if __name__ == "__main__":
    main()

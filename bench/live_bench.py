"""Speed of the live source (issues #4, #10).  Prints its figures; asserts nothing.

1. decode of a HVR-950Q G_TOPOLOGY (522 entities, 7 interfaces, 785 pads, 1,039 links) from
   kernel-layout bytes to snapshot tuples; and the whole two-call read through the ioctl seam
   (which also packs the bytes, as the kernel would).  Target: decode <= 5 ms.
2. uevent to updated screen, the live reader in the loop: the app on the live source over a
   sysfs tree written from the simulation (8 devices); the machine changes (snd-usb-audio
   unbound or rebound), then a uevent arrives on the fd the event loop watches; time until
   the app has applied a snapshot that includes it (``mdtui.scenarios.on_update``).  mdtui
   against the floor app (bench/floor.py: the same source, pipeline and descriptors, one
   Static), each trial a fresh process tuned as the CLI tunes it, alternating: 4 pairs of 50
   events.  Target: p99 <= 2x the floor's (absolute figures beside it).
3. idle: `mdtui watch --source live` and the TUI on the live source, left alone for 60 s
   after start-up; CPU time and context switches of the process over those 60 s (from
   /proc/PID/stat and /proc/PID/status).  Target: no wake-ups.

Usage: python bench/live_bench.py [--quick]   (--quick: 10 s idle windows, 2 pairs of 30 events)
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mdtui.scenarios import percentile

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout: tests.doubles

QUICK = "--quick" in sys.argv
IDLE_SECONDS = 10 if QUICK else 60


def decode() -> tuple[float, float]:
    from allocator import Kernel
    from allocator.mc import ioctl
    from mdtui.live import media
    from mdtui.live.decode import unpack_entities, unpack_interfaces, unpack_links, unpack_pads
    from tests.doubles import FakeIoctl

    k = Kernel()
    k.modprobe("au0828")
    k.modprobe("snd_usb_audio")
    k.plug("hvr950q")
    mdev = k.view.media_devices()[0].mdev
    t = mdev.topology()
    blobs = (
        ioctl.pack_entities(t.entities),
        ioctl.pack_interfaces(t.interfaces),
        ioctl.pack_pads(t.pads),
        ioctl.pack_links(t.links),
    )
    runs = []
    for _ in range(50):
        t0 = time.perf_counter()
        unpack_entities(blobs[0], len(t.entities))
        unpack_interfaces(blobs[1], len(t.interfaces))
        unpack_pads(blobs[2], len(t.pads))
        unpack_links(blobs[3], len(t.links))
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


async def uevent_trial(kind: str, events: int) -> list[float]:
    """One app (``mdtui`` or ``floor``) on the live source in this process: ``events`` times,
    the machine changes, then its uevent arrives; ms until an applied snapshot includes it."""
    from floor import FloorApp

    from allocator import Kernel
    from mdtui.app import MdtuiApp
    from mdtui.scenarios import on_update, settle
    from mdtui.tuning import tune
    from tests.doubles import WrittenMachine

    k = Kernel()
    for m in ("au0828", "snd_usb_audio", "uvcvideo"):
        k.modprobe(m)
    for _ in range(4):
        k.plug("hvr950q")
        k.plug("c270")
    machine = WrittenMachine(k)
    feed = machine.feed
    source = machine.source()
    tune(source)
    published: list[int] = []  # the seq of each event the source emits (on the event loop)
    source.subscribe(lambda e: published.append(e.seq))
    app = MdtuiApp(source) if kind == "mdtui" else FloorApp(source)
    applied: list[tuple[float, int]] = []
    arrived = asyncio.Event()  # set when an update is applied: the benchmark never polls

    def seen(update: object) -> None:
        applied.append((time.perf_counter(), update.snapshot.seq))  # type: ignore[attr-defined]
        arrived.set()

    async def covered(sent_from: int) -> float:
        """When an applied snapshot first included an event published after ``sent_from``."""
        while True:
            if len(published) > sent_from:
                seq = published[sent_from]
                done = next((at for at, s in applied if s >= seq), None)
                if done is not None:
                    return done
            arrived.clear()
            await arrived.wait()

    latencies = []
    async with app.run_test(size=(120, 40)):
        on_update(app, seen)
        await settle(app)
        sticks = [u.name for u in k.view.usb_devices() if u.catalog_name == "hvr950q"]
        for n in range(events):
            stick = sticks[n % len(sticks)]
            action = "unbind" if (n // len(sticks)) % 2 == 0 else "bind"
            getattr(k, action)("snd-usb-audio", f"{stick}:1.1")  # the machine changes...
            machine.sync()
            devpath = next(u.devpath for u in k.view.usb_devices() if u.name == stick)
            await settle(app)
            applied.clear()
            sent_from = len(published)
            t0 = time.perf_counter()
            feed.send(
                {"ACTION": action, "DEVPATH": f"{devpath}/{stick}:1.1", "SUBSYSTEM": "usb", "DEVTYPE": "usb_interface"}
            )  # ...and its uevent arrives
            done = await asyncio.wait_for(covered(sent_from), 10)
            latencies.append((done - t0) * 1000)
            await asyncio.sleep(0.05)
    return latencies


def uevent_to_screen(pairs: int, events: int) -> dict[str, list[list[float]]]:
    """Trials in fresh processes, floor and mdtui alternating, the order swapped every other pair."""
    trials: dict[str, list[list[float]]] = {"floor": [], "mdtui": []}
    for n in range(pairs):
        for kind in ("floor", "mdtui")[:: 1 if n % 2 == 0 else -1]:  # ABBA: the order's effect falls on both
            res = subprocess.run(
                [sys.executable, str(Path(__file__).resolve()), "--trial", kind, str(events)],
                capture_output=True,
                text=True,
                check=True,
            )
            trials[kind].append(json.loads(res.stdout.strip().splitlines()[-1]))
    return trials


WATCH = [sys.executable, "-m", "mdtui", "watch", "--source", "live"]
TUI = [
    sys.executable,
    "-c",
    "from mdtui.app import MdtuiApp; from mdtui.live.monitor import UdevMonitor; "
    "from mdtui.sources.live import LiveSource; from mdtui.tuning import tune; "
    "source = LiveSource(monitor_factory=UdevMonitor); tune(source); "
    "MdtuiApp(source).run(headless=True, size=(120, 40))",
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


def main() -> None:
    dec, read = decode()
    print(
        f"HVR-950Q topology decode: {dec:.2f} ms median (whole two-call read through the seam, "
        f"incl. packing and ENUM_ENTITIES: {read:.2f} ms)"
    )
    pairs, events = (2, 30) if QUICK else (4, 50)
    trials = uevent_to_screen(pairs, events)
    print(
        f"uevent to screen (8 devices, live source over a written sysfs tree), {pairs} pairs of {events}-event "
        "trials, floor and mdtui alternating:"
    )
    p99 = {}
    for kind in ("floor", "mdtui"):
        lat = [x for t in trials[kind] for x in t]
        p99[kind] = percentile(lat, 99)
        print(
            f"  {kind:<5} {len(lat)} events: p50 {percentile(lat, 50):.1f} ms, p99 {p99[kind]:.1f} ms, "
            f"max {max(lat):.1f} ms; per trial p99 " + ", ".join(f"{percentile(t, 99):.1f}" for t in trials[kind])
        )
    verdict = "met" if p99["mdtui"] <= 2 * p99["floor"] else "NOT met"
    print(
        f"  p99: mdtui {p99['mdtui']:.1f} ms, floor {p99['floor']:.1f} ms: {p99['mdtui'] / p99['floor']:.2f}x "
        f"(target <= 2x: {verdict})"
    )
    for name, cmd in (("mdtui watch --source live", WATCH), ("TUI on the live source", TUI)):
        cpu, switches = idle(cmd)
        print(f"idle {IDLE_SECONDS} s, {name}: {cpu * 1000:.0f} ms CPU, {switches} context switches")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--trial"]:
        print(json.dumps(asyncio.run(uevent_trial(sys.argv[2], int(sys.argv[3])))))
    else:
        main()

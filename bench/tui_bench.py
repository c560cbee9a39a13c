"""Speed and memory of the TUI (issue: mdtui).  Prints its figures; asserts nothing.

1. start to first frame, default world: a fresh process runs the app headless and exits on
   its first Ready; wall time from spawn to that moment.  Target <= 0.8 s.
2. event to screen: 32 devices (16 HVR-950Q, 16 webcams), a thread rebinding snd-usb-audio
   on the sticks so that about 200 events/s arrive; latency from the kernel emitting an event
   to the app applying a snapshot that includes it.  Target p99 <= 50 ms.
3. the HVR-950Q drawn graph: time from switching to the Drawing tab to the next frame (in
   steady state, after a first switch to another tab), and the renderer alone.  Target
   <= 150 ms.
4. peak memory (ru_maxrss) of a process running the app with 64 plugged HVR-950Qs.  Target
   <= 120 MB.

Usage: python bench/tui_bench.py
"""

from __future__ import annotations

import asyncio
import json
import statistics
import subprocess
import sys
import threading
import time

FIRST_FRAME = """
import time, sys
t0 = float(sys.argv[1])
from mdtui.sources.sim import build
from mdtui.app import MdtuiApp
class Probe(MdtuiApp):
    def on_ready(self):
        print(time.time() - t0, flush=True)
        self.exit()
source, _ = build()
Probe(source).run(headless=True, size=(120, 40))
"""

MEMORY = """
import asyncio, resource, sys
from mdtui.script import Step
from mdtui.sources.sim import build
from mdtui.app import MdtuiApp
steps = [Step(0, "modprobe", ("au0828",)), Step(0, "modprobe", ("snd_usb_audio",))]
steps += [Step(0, "plug", ("hvr950q",))] * 64
source, failed = build(steps)
assert not failed and len(source.snapshot().media_devices) == 64
async def main():
    app = MdtuiApp(source)
    async with app.run_test(size=(120, 40)) as pilot:
        await app.settle()
        for tab in ("tab-graph", "tab-drawing", "tab-interfaces"):
            app.query_one("#tabs").active = tab
            await pilot.pause()
        app.perform(Step(0, "unbind", ("au0828", "1-1:1.0")))
        await app.settle()
asyncio.run(main())
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


def first_frame(runs: int = 5) -> list[float]:
    out = []
    for _ in range(runs):
        t0 = time.time()
        res = subprocess.run([sys.executable, "-c", FIRST_FRAME, str(t0)], capture_output=True, text=True, check=True)
        out.append(float(res.stdout.strip().splitlines()[-1]))
    return out


async def event_to_screen(seconds: float = 10.0, rate: float = 200.0) -> tuple[list[float], int]:
    from mdtui.app import MdtuiApp
    from mdtui.script import Step
    from mdtui.sources.sim import build

    steps = [Step(0, "modprobe", (m,)) for m in ("au0828", "snd_usb_audio", "uvcvideo")]
    steps += [Step(0, "plug", ("hvr950q",)), Step(0, "plug", ("c270",))] * 16
    source, failed = build(steps)
    assert not failed and len(source.snapshot().media_devices) == 32
    emitted: dict[int, float] = {}
    applied: list[tuple[float, int]] = []
    source.subscribe(lambda e: emitted.__setitem__(e.seq, time.perf_counter()))
    app = MdtuiApp(source)
    original = app._apply

    def timed_apply(snap):
        original(snap)
        applied.append((time.perf_counter(), snap.seq))

    app._apply = timed_apply  # type: ignore[method-assign]
    sticks = [u.name for u in source.snapshot().usb_devices if u.product.startswith("WinTV")]
    stop = threading.Event()
    result: dict[str, float] = {}

    def churn(first_seq: int) -> None:
        """Unbind, then rebind, snd-usb-audio across the sticks, paced to ``rate`` events/s."""
        start = time.perf_counter()
        n = 0
        while not stop.is_set():
            stick = sticks[n % len(sticks)]
            action = "unbind" if (n // len(sticks)) % 2 == 0 else "bind"
            source.run(Step(0, action, ("snd-usb-audio", f"{stick}:1.1")))
            n += 1
            sent = source.kernel.events.last_seq - first_seq
            stop.wait(max(0.0, start + sent / rate - time.perf_counter()))
        result["rate"] = (source.kernel.events.last_seq - first_seq) / (time.perf_counter() - start)

    async with app.run_test(size=(120, 40)) as pilot:
        await app.settle()
        first_seq = source.kernel.events.last_seq
        worker = threading.Thread(target=churn, args=(first_seq,))
        worker.start()
        await asyncio.sleep(seconds)
        stop.set()
        worker.join()
        await app.settle()
        await pilot.pause()
    latencies = []
    for seq, t in emitted.items():
        if seq <= first_seq:
            continue
        done = next((at for at, s in applied if s >= seq and at >= t), None)
        if done is not None:
            latencies.append((done - t) * 1000)
    return latencies, int(result["rate"])


async def drawing() -> tuple[float, float]:
    from rich.console import Console

    from mdtui.app import MdtuiApp
    from mdtui.render.drawing import draw
    from mdtui.sources.sim import build

    source, _ = build()
    dev = source.snapshot().media_devices[0]
    t0 = time.perf_counter()
    Console(width=160, file=open("/dev/null", "w")).print(draw(dev))  # noqa: SIM115
    render_ms = (time.perf_counter() - t0) * 1000
    app = MdtuiApp(source)
    app.animation_level = "none"  # time the rendering, not the tab underline's slide
    async with app.run_test(size=(160, 40)) as pilot:
        await app.settle()
        await asyncio.sleep(3)  # steady state: after the idle garbage collection
        t0 = time.perf_counter()
        app.query_one("#tabs").active = "tab-interfaces"  # the cost of switching tabs alone
        await pilot.pause()
        switch_ms = (time.perf_counter() - t0) * 1000
        t0 = time.perf_counter()
        app.query_one("#tabs").active = "tab-drawing"
        await pilot.pause()
        tab_ms = (time.perf_counter() - t0) * 1000
    return render_ms, tab_ms, switch_ms


def memory() -> float:
    res = subprocess.run([sys.executable, "-c", MEMORY], capture_output=True, text=True, check=True)
    return float(res.stdout.strip().splitlines()[-1])


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


def main() -> None:
    frames = first_frame()
    print(
        f"start to first frame (default world, 120x40): median {statistics.median(frames):.3f} s, "
        f"min {min(frames):.3f} s, max {max(frames):.3f} s over {len(frames)} runs"
    )
    lat, rate = asyncio.run(event_to_screen())
    print(
        f"event to screen (32 devices, ~{rate} events/s for 10 s): {len(lat)} events, "
        f"p50 {pct(lat, 50):.1f} ms, p99 {pct(lat, 99):.1f} ms, max {max(lat):.1f} ms"
    )
    render_ms, tab_ms, switch_ms = asyncio.run(drawing())
    print(
        f"HVR-950Q drawing: renderer {render_ms:.1f} ms; Drawing tab to next frame {tab_ms:.1f} ms "
        f"(switching to the Interfaces tab: {switch_ms:.1f} ms)"
    )
    print(f"peak memory, app with 64 plugged HVR-950Qs: {memory():.1f} MB (ru_maxrss)")
    print(json.dumps({"python": sys.version.split()[0]}))


if __name__ == "__main__":
    main()

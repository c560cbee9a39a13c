"""Speed and memory of the TUI (issues #3, #10).  Prints its figures; asserts nothing.

This VM's speed drifts from day to day, so the speed targets are ratios to a floor measured
in the same run, alternating with mdtui (bench/floor.py); the absolute figures are printed
beside them.  Every timed app runs in a fresh process, tuned as the CLI tunes it
(``mdtui.tuning.tune``), and is observed through ``mdtui.scenarios.on_update``.

1. start to first frame, default world: ``mdtui --source sim`` as the CLI starts it (its
   imports, the default world, ``tune``), headless, 120x40, exiting on its first Ready
   (posted once the first frame is drawn), against a bare Textual app showing one Static;
   wall time from spawn; 7 pairs, alternating (the order swapped every other pair).
   Target: mdtui's median <= 1.3x the bare app's.  Then where the difference goes: stage
   marks in 5 more pairs of processes, and ``python -X importtime`` of the imports grouped
   by package.
2. event to screen, sim: 32 devices (16 HVR-950Q, 16 webcams), a thread rebinding
   snd-usb-audio on the sticks at 200 and at 1,000 events/s; latency from the kernel
   emitting an event to the app having applied a snapshot that includes it.  mdtui against
   the floor app (the same source, the same pipeline, one Static), alternating, 3 pairs of
   5 s trials per rate.  Targets: p99 <= 1.5x the floor's at 200/s, <= 2x at 1,000/s, and
   nothing dropped: every emitted seq covered by an applied snapshot (and in the log's
   events).
3. the HVR-950Q drawn graph: time from switching to the Drawing tab to the next frame (in
   steady state, after a first switch to another tab), and the renderer alone.  Target
   <= 150 ms (absolute; no floor).
4. peak memory (ru_maxrss) of a process running the app with 64 plugged HVR-950Qs.  Target
   <= 120 MB (absolute).

Usage: python bench/tui_bench.py [--quick]   (--quick: fewer pairs, shorter trials)
"""

from __future__ import annotations

import asyncio
import compileall
import json
import re
import statistics
import subprocess
import sys
import threading
import time
from bisect import bisect_left
from pathlib import Path

from floor import BARE, FloorApp

from mdtui.scenarios import percentile

QUICK = "--quick" in sys.argv
HERE = Path(__file__).resolve()
ROOT = HERE.parents[1]
#: seconds an app is left alone after start-up before events are timed: what is measured is
#: the steady state, not the first frames' layouts (the same for the floor and mdtui)
STEADY = 0.5

#: ``mdtui --source sim`` as cli.main starts it, headless, exiting on the first frame
MDTUI_IMPORTS = "from mdtui import cli, tuning; from mdtui.app import MdtuiApp; from mdtui.sources import perform_all"
MDTUI = f"""
import sys, time
t0 = float(sys.argv[1])
{MDTUI_IMPORTS}
args = cli.parser().parse_args(["--source", "sim"])
source, steps = cli.open_source(args, None)
perform_all(source, steps)
tuning.tune(source)
class Probe(MdtuiApp):
    def on_ready(self):
        print(time.time() - t0, flush=True)
        self.exit()
Probe(source).run(headless=True, size=(120, 40))
"""

#: the same, with a time mark after each stage (JSON: [[stage, seconds since spawn], ...]); the
#: imports are the probe's above, split into groups (the bare app's first)
MDTUI_STAGES = """
import json, sys, time
t0 = float(sys.argv[1])
marks = [("interpreter start-up", time.time())]
from textual.app import App
from textual.widgets import Static
marks.append(("imports: what the bare app imports (Textual)", time.time()))
import allocator.kernel
marks.append(("imports: allocator (the simulated kernel)", time.time()))
from mdtui import cli, tuning
from mdtui.sources import perform_all
marks.append(("imports: mdtui's CLI, model, sources, commands", time.time()))
from textual.widgets import Footer, Header, Input, TabbedContent
from textual.scroll_view import ScrollView
marks.append(("imports: Textual widgets the first frame uses", time.time()))
from mdtui.app import MdtuiApp
marks.append(("imports: mdtui's app, pipeline, widgets", time.time()))
args = cli.parser().parse_args(["--source", "sim"])
source, steps = cli.open_source(args, None)
perform_all(source, steps)
tuning.tune(source)
marks.append(("building the default world, tune()", time.time()))
class Probe(MdtuiApp):
    def compose(self):
        marks.append(("app: first snapshot, Textual start-up, app.tcss", time.time()))
        yield from super().compose()
        marks.append(("composing (compose())", time.time()))
    def on_mount(self, event):
        marks.append(("mounting the widgets (their CSS, mount)", time.time()))
        event.prevent_default()  # MdtuiApp.on_mount is called here, to time it
        MdtuiApp.on_mount(self)
        marks.append(("on_mount: log history, device list, detail", time.time()))
    def on_ready(self):
        marks.append(("layout and the first frame", time.time()))
        print(json.dumps([(name, t - t0) for name, t in marks]), flush=True)
        self.exit()
Probe(source).run(headless=True, size=(120, 40))
"""

BARE_STAGES = """
import json, sys, time
t0 = float(sys.argv[1])
marks = [("interpreter start-up", time.time())]
from textual.app import App
from textual.widgets import Static
marks.append(("imports: what the bare app imports (Textual)", time.time()))
class Bare(App):
    def compose(self):
        yield Static("mdtui")
    def on_ready(self):
        marks.append(("app: start-up to the first frame", time.time()))
        print(json.dumps([(name, t - t0) for name, t in marks]), flush=True)
        self.exit()
Bare().run(headless=True, size=(120, 40))
"""

MEMORY = """
import asyncio, resource, sys
from mdtui.commands import Step
from mdtui.sources.sim import build
from mdtui.app import MdtuiApp
from mdtui.scenarios import settle
steps = [Step(0, "modprobe", ("au0828",)), Step(0, "modprobe", ("snd_usb_audio",))]
steps += [Step(0, "plug", ("hvr950q",))] * 64
source, failed = build(steps)
assert not failed and len(source.snapshot().media_devices) == 64
async def main():
    app = MdtuiApp(source)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app)
        for tab in ("tab-graph", "tab-drawing", "tab-interfaces"):
            app.query_one("#tabs").active = tab
            await pilot.pause()
        app.perform(Step(0, "unbind", ("au0828", "1-1:1.0")))
        await settle(app)
asyncio.run(main())
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


def spawn(code: str) -> str:
    """Run ``code`` in a fresh interpreter (from the checkout) with the spawn time as argv[1];
    its last line of output."""
    t0 = time.time()
    res = subprocess.run([sys.executable, "-c", code, repr(t0)], capture_output=True, text=True, check=True, cwd=ROOT)
    return res.stdout.strip().splitlines()[-1]


# -- 1. start to first frame --------------------------------------------------------------


def alternating(pairs: int, codes: dict[str, str]) -> dict[str, list[str]]:
    """Each of ``codes`` ``pairs`` times in fresh processes, alternating, the order swapped in
    every other pair (ABBA: whatever the one before leaves behind falls on both)."""
    out: dict[str, list[str]] = {name: [] for name in codes}
    for n in range(pairs):
        for name in list(codes)[:: 1 if n % 2 == 0 else -1]:
            out[name].append(spawn(codes[name]))
    return out


def first_frame(pairs: int) -> tuple[list[float], list[float]]:
    """Seconds from spawn to the first frame: (mdtui, bare)."""
    runs = alternating(pairs, {"bare": BARE, "mdtui": MDTUI})
    return [float(s) for s in runs["mdtui"]], [float(s) for s in runs["bare"]]


def stages(pairs: int) -> tuple[dict[str, float], dict[str, float]]:
    """Median milliseconds per stage: (mdtui, bare)."""
    printed = alternating(pairs, {"bare": BARE_STAGES, "mdtui": MDTUI_STAGES})
    runs = {name: [json.loads(out) for out in outs] for name, outs in printed.items()}
    out = []
    for kind in ("mdtui", "bare"):
        durations: dict[str, list[float]] = {}
        for marks in runs[kind]:
            before = 0.0
            for name, at in marks:
                durations.setdefault(name, []).append((at - before) * 1000)
                before = at
        out.append({name: statistics.median(ms) for name, ms in durations.items()})
    return out[0], out[1]


IMPORT_LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)")


def import_times(code: str) -> dict[str, int]:
    """``python -X importtime``: each module's self time (us)."""
    res = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    return {m[4]: int(m[1]) for m in map(IMPORT_LINE.match, res.stderr.splitlines()) if m}


def import_breakdown() -> tuple[float, dict[str, float], list[tuple[str, float]]]:
    """``python -X importtime``: the self time (ms) of what both apps import; of what mdtui
    imports beyond it, by group; and the biggest of those modules.  importtime's own
    overhead inflates every figure (the stage marks above are the real times)."""
    bare = import_times("from textual.app import App; from textual.widgets import Static")
    mdtui = import_times("from textual.app import App; from textual.widgets import Static; " + MDTUI_IMPORTS)
    extra = {name: us / 1000 for name, us in mdtui.items() if name not in bare}

    def group(name: str) -> str:
        top = name.split(".")[0]
        if top in ("mdtui", "allocator"):
            return top
        if name.startswith(("textual.widgets", "rich")):
            return "Textual widgets and rich modules the bare app does without"
        return "the rest (json, argparse, ...)"

    groups: dict[str, float] = {}
    for name, ms in extra.items():
        groups[group(name)] = groups.get(group(name), 0.0) + ms
    biggest = sorted(extra.items(), key=lambda kv: -kv[1])[:8]
    return sum(bare.values()) / 1000, groups, biggest


# -- 2. event to screen -------------------------------------------------------------------


async def events_trial(kind: str, rate: float, seconds: float) -> dict[str, object]:
    """One app (``mdtui`` or ``floor``) in this process, the churn at ``rate`` events/s."""
    from mdtui.app import MdtuiApp
    from mdtui.commands import Step
    from mdtui.scenarios import on_update, settle
    from mdtui.sources.sim import build
    from mdtui.tuning import tune

    steps = [Step(0, "modprobe", (m,)) for m in ("au0828", "snd_usb_audio", "uvcvideo")]
    steps += [Step(0, "plug", ("hvr950q",)), Step(0, "plug", ("c270",))] * 16
    source, failed = build(steps)
    assert not failed and len(source.snapshot().media_devices) == 32
    tune(source)
    emitted: dict[int, float] = {}
    source.subscribe(lambda e: emitted.__setitem__(e.seq, time.perf_counter()))
    app = MdtuiApp(source) if kind == "mdtui" else FloorApp(source)
    applied_at: list[float] = []
    applied_seq: list[int] = []
    logged: set[int] = set()
    sticks = [u.name for u in source.snapshot().usb_devices if u.product.startswith("WinTV")]
    stop = threading.Event()
    result: dict[str, float] = {}

    def seen(update: object) -> None:
        applied_at.append(time.perf_counter())
        applied_seq.append(update.snapshot.seq)  # type: ignore[attr-defined]
        logged.update(e.seq for e in update.events)  # type: ignore[attr-defined]

    def churn(first_seq: int) -> None:
        """Unbind, then rebind, snd-usb-audio across the sticks, paced to ``rate`` events/s."""
        start = time.perf_counter()
        n = 0
        while not stop.is_set():
            stick = sticks[n % len(sticks)]
            action = "unbind" if (n // len(sticks)) % 2 == 0 else "bind"
            source.perform(Step(0, action, ("snd-usb-audio", f"{stick}:1.1")))
            n += 1
            sent = source.kernel.events.last_seq - first_seq
            stop.wait(max(0.0, start + sent / rate - time.perf_counter()))
        result["rate"] = (source.kernel.events.last_seq - first_seq) / (time.perf_counter() - start)

    async with app.run_test(size=(120, 40)) as pilot:
        on_update(app, seen)
        await settle(app)
        await pilot.pause()  # and start-up's own work (layouts, the footer's bindings) done
        await asyncio.sleep(STEADY)
        first_seq = source.kernel.events.last_seq
        worker = threading.Thread(target=churn, args=(first_seq,))
        worker.start()
        await asyncio.sleep(seconds)
        stop.set()
        worker.join()
        await settle(app)
        await pilot.pause()
    sent = sorted(seq for seq in emitted if seq > first_seq)
    latencies, uncovered = [], 0
    for seq in sent:
        i = bisect_left(applied_seq, seq)  # the first applied snapshot that includes it
        if i == len(applied_seq):
            uncovered += 1
        else:
            latencies.append((applied_at[i] - emitted[seq]) * 1000)
    return {
        "latencies": latencies,
        "rate": result["rate"],
        "events": len(sent),
        "updates": sum(1 for s in applied_seq if s > first_seq),
        "uncovered": uncovered,  # no applied snapshot includes it
        "unlogged": sum(1 for seq in sent if seq not in logged),  # no applied update carried it
    }


def event_to_screen(rate: float, pairs: int, seconds: float) -> dict[str, list[dict]]:
    trials: dict[str, list[dict]] = {"floor": [], "mdtui": []}
    for n in range(pairs):
        for kind in ("floor", "mdtui")[:: 1 if n % 2 == 0 else -1]:  # ABBA, as above
            res = subprocess.run(
                [sys.executable, str(HERE), "--trial", kind, str(rate), str(seconds)],
                capture_output=True,
                text=True,
                check=True,
                cwd=ROOT,
            )
            trials[kind].append(json.loads(res.stdout.strip().splitlines()[-1]))
    return trials


# -- 3. and 4. ----------------------------------------------------------------------------


async def drawing() -> tuple[float, float, float]:
    from rich.console import Console

    from mdtui.app import MdtuiApp
    from mdtui.render.drawing import draw
    from mdtui.scenarios import settle
    from mdtui.sources.sim import build

    source, _ = build()
    dev = source.snapshot().media_devices[0]
    t0 = time.perf_counter()
    Console(width=160, file=open("/dev/null", "w")).print(draw(dev))  # noqa: SIM115
    render_ms = (time.perf_counter() - t0) * 1000
    app = MdtuiApp(source)
    app.animation_level = "none"  # time the rendering, not the tab underline's slide
    async with app.run_test(size=(160, 40)) as pilot:
        await settle(app)
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
    return float(spawn(MEMORY))


# -- the report ---------------------------------------------------------------------------


def ratio_line(name: str, mdtui: float, floor: float, unit: str, target: float) -> None:
    verdict = "met" if mdtui <= target * floor else "NOT met"
    ratio = f"{mdtui / floor:.2f}x (target <= {target}x: {verdict})"
    print(f"  {name}: mdtui {mdtui:.1f} {unit}, floor {floor:.1f} {unit}: {ratio}")


def stage_row(name: str, mdtui: float, bare: float) -> None:
    print(f"    {name:<50} {mdtui:6.1f} | {bare:6.1f} | {mdtui - bare:+6.1f}")


def main() -> None:
    # mdtui's modules compiled, as pip compiles an installed package (and Textual's are): with
    # PYTHONDONTWRITEBYTECODE set every start would compile them from source (make bytecode)
    for package in ("allocator", "mdtui"):
        compileall.compile_dir(ROOT / package, quiet=1)
    pairs = 3 if QUICK else 7
    mdtui, bare = first_frame(pairs)
    m, b = statistics.median(mdtui), statistics.median(bare)
    print(f"start to first frame (default world, 120x40), {pairs} pairs of fresh processes, alternating:")
    print(f"  mdtui  median {m:.3f} s (min {min(mdtui):.3f}, max {max(mdtui):.3f})")
    print(f"  bare   median {b:.3f} s (min {min(bare):.3f}, max {max(bare):.3f}): a Textual app showing one Static")
    pair_ratios = [x / y for x, y in zip(mdtui, bare, strict=True)]
    print(
        f"  ratio {m / b:.2f}x (medians; per pair {min(pair_ratios):.2f}-{max(pair_ratios):.2f}x) "
        f"(target <= 1.3x: {'met' if m <= 1.3 * b else 'NOT met'})"
    )
    st_m, st_b = stages(3 if QUICK else 5)
    print(f"  where the time goes (ms, median of {3 if QUICK else 5} more pairs; mdtui | bare | extra):")
    for name in st_m:
        stage_row(name, st_m[name], st_b.get(name, 0.0))
    app = sum(list(st_m.values())[list(st_m).index("building the default world, tune()") + 1 :])
    stage_row("  the app, start-up to the first frame, in all", app, st_b["app: start-up to the first frame"])
    stage_row("total", sum(st_m.values()), sum(st_b.values()))
    both, groups, biggest = import_breakdown()
    print(f"  python -X importtime (self times, inflated by its overhead): both import {both:.1f} ms; mdtui also:")
    for name, ms in sorted(groups.items(), key=lambda kv: -kv[1]):
        print(f"    {name:<60} {ms:6.1f}")
    print("    the biggest (self ms): " + ", ".join(f"{n} {ms:.1f}" for n, ms in biggest))

    seconds = 3.0 if QUICK else 5.0
    for rate, target in ((200, 1.5), (1000, 2.0)):
        trials = event_to_screen(rate, 1 if QUICK else 5, seconds)
        print(
            f"event to screen (sim, 32 devices, {rate} events/s asked), {len(trials['mdtui'])} pairs of "
            f"{seconds:.0f} s trials, floor and mdtui alternating:"
        )
        p99 = {}
        for kind in ("floor", "mdtui"):
            lat = [x for t in trials[kind] for x in t["latencies"]]
            p99[kind] = percentile(lat, 99)
            rates = ", ".join(f"{t['rate']:.0f}" for t in trials[kind])
            print(
                f"  {kind:<5} {sum(t['events'] for t in trials[kind])} events in "
                f"{sum(t['updates'] for t in trials[kind])} updates (rates {rates}/s): "
                f"p50 {percentile(lat, 50):.1f} ms, p99 {p99[kind]:.1f} ms, max {max(lat):.1f} ms; per trial p99 "
                + ", ".join(f"{percentile(t['latencies'], 99):.1f}" for t in trials[kind])
                + f"; dropped {sum(t['uncovered'] for t in trials[kind])} (not in any applied snapshot), "
                f"{sum(t['unlogged'] for t in trials[kind])} (not in any update's events)"
            )
        ratio_line("p99", p99["mdtui"], p99["floor"], "ms", target)
        pair_p99 = [
            percentile(m["latencies"], 99) / percentile(f["latencies"], 99)
            for m, f in zip(trials["mdtui"], trials["floor"], strict=True)
        ]
        print("  per pair, p99 mdtui / floor: " + ", ".join(f"{r:.2f}x" for r in pair_p99))

    render_ms, tab_ms, switch_ms = asyncio.run(drawing())
    print(
        f"HVR-950Q drawing: renderer {render_ms:.1f} ms; Drawing tab to next frame {tab_ms:.1f} ms "
        f"(switching to the Interfaces tab: {switch_ms:.1f} ms)"
    )
    print(f"peak memory, app with 64 plugged HVR-950Qs: {memory():.1f} MB (ru_maxrss)")
    print(json.dumps({"python": sys.version.split()[0]}))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--trial"]:
        kind, rate, seconds = sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
        print(json.dumps(asyncio.run(events_trial(kind, rate, seconds))))
    else:
        main()

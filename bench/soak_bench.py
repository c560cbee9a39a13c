"""Speed of ``mdtui soak`` on the simulation (issue #13).  Prints its figures; asserts nothing.

A soak of 1,000 bind/unbind loops (regression_test.txt's; the other two scenarios run once
each, as in every soak) on the simulated HVR-950Q, each scenario on a fresh default world:
the wall time, loops per second, and what ran beside the loops (the open loops' open +
MEDIA_IOC_DEVICE_INFO + close, the video loop's open + VIDIOC_QUERYCAP + close).
Target: under 30 s.  ``--variant`` picks the design (default mainline, no race window: it
passes); ``--loops`` another count.

Usage: python bench/soak_bench.py [--loops 1000] [--variant mainline]
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import time

from mdtui.cli import main as mdtui

TARGET = 30.0


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--loops", type=int, default=1000)
    p.add_argument("--variant", default="mainline")
    args = p.parse_args()
    out = io.StringIO()
    started = time.perf_counter()
    rc = mdtui(["soak", "--variant", args.variant, "--loops", str(args.loops), "--json"], stdout=out)
    seconds = time.perf_counter() - started
    doc = json.loads(out.getvalue())
    regression = next(s for s in doc["scenarios"] if s["name"] == "regression_test.txt")
    loops = regression["loops"]
    print(f"python {platform.python_version()}, design {doc['design']}, exit status {rc} ({doc['result']})")
    for s in doc["scenarios"]:
        row = f"  {s['name']:<24} {s['result']:<5} {s['loops']:>5} loops {s['steps']:>3} checked steps"
        print(f"{row} {s['seconds']:7.2f} s")
    notes = [n for n in regression["notes"] if "open+" in n]
    if notes:
        print(f"  beside the loops: {notes[0]}")
    verdict = "met" if seconds < TARGET else "missed"
    print(
        f"soak of {loops} loops on sim: {seconds:.1f} s wall ({loops / regression['seconds']:.1f} loops/s in "
        f"regression_test.txt, {loops / seconds:.1f} loops/s over the whole soak); target < {TARGET:.0f} s: {verdict}"
    )


if __name__ == "__main__":
    main()

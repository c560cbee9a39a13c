"""media-ctl -p against mdtui dump --format text on the same rig device (issue: virtual rig).

Run from the checkout: ``.venv/bin/python bench/rig_bench.py``.  It re-runs itself inside
``mdtui rig``, then times, on /dev/media0 (the HVR-950Q, 522 entities):

* ``media-ctl -p -d /dev/media0``: whole process, median of RUNS;
* ``mdtui dump --format text --device media0 --source live``: the same command run in-process
  (``mdtui.cli.main``) after the interpreter and imports are up, a fresh source each time:
  the figure the target is about (mdtui's time excluding Python start-up);
* the whole ``mdtui dump`` process and a bare ``python -c pass``, for scale;
* where the in-process time goes: cProfile of one dump, top functions by cumulative time.

Target: mdtui no more than 3x media-ctl.  Prints figures, asserts nothing.
"""

from __future__ import annotations

import cProfile
import io
import os
import pstats
import statistics
import subprocess
import sys
import time

RUNS = 7
DUMP = ["dump", "--source", "live", "--format", "text", "--device", "media0"]


def wall(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return (time.perf_counter() - t0) * 1000


def inside() -> None:
    from mdtui.cli import main

    media_ctl = [wall(["media-ctl", "-p", "-d", "/dev/media0"]) for _ in range(RUNS)]
    in_process = []
    for _ in range(RUNS):
        t0 = time.perf_counter()
        main(DUMP, stdout=io.StringIO())
        in_process.append((time.perf_counter() - t0) * 1000)
    process = [wall([sys.executable, "-m", "mdtui", *DUMP]) for _ in range(RUNS)]
    bare = [wall([sys.executable, "-c", "pass"]) for _ in range(RUNS)]
    m, d = statistics.median(media_ctl), statistics.median(in_process)
    print(f"media-ctl -p (whole process): median {m:.1f} ms over {RUNS} runs")
    print(f"mdtui dump --format text, in-process: median {d:.1f} ms  ->  ratio {d / m:.2f}x media-ctl")
    print(f"mdtui dump, whole process: median {statistics.median(process):.1f} ms")
    print(f"python -c pass: median {statistics.median(bare):.1f} ms")
    profile = cProfile.Profile()
    profile.enable()
    main(DUMP, stdout=io.StringIO())
    profile.disable()
    out = io.StringIO()
    pstats.Stats(profile, stream=out).sort_stats("cumulative").print_stats(18)
    print("where one in-process dump spends its time (cProfile, cumulative):")
    print("\n".join(line for line in out.getvalue().splitlines() if "/" in line or "ncalls" in line))


if __name__ == "__main__":
    if "MDTUI_RIG_CONTROL" in os.environ:
        inside()
    else:
        sys.exit(subprocess.call([sys.executable, "-m", "mdtui", "rig", "--", sys.executable, __file__]))

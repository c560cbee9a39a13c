"""media-ctl -p against mdtui dump --format text on the same rig device (issues #5 and #11).

Run from the checkout: ``.venv/bin/python bench/rig_bench.py``.  It re-runs itself inside
``mdtui rig``, then, on /dev/media0 (the HVR-950Q, 522 entities), RUNS times each, taking
turns:

* ``media-ctl -p -d /dev/media0``: whole process;
* ``mdtui dump --format text --device media0 --source live``: the same command run in-process
  (``mdtui.cli.main``) after the interpreter and imports are up, a fresh source each time;
* the whole ``mdtui dump`` process;

and prints the medians and both ratios to media-ctl (targets, issue #11: in-process at most
0.2x, whole process at most 1.0x).  Then:

* the ioctls each tool makes, by device and request, counted by a small preload library put
  first in LD_PRELOAD (compiled here): in the rig, umockdev answers the media ioctls in user
  space, so ``strace -c`` sees none of them;
* where the whole ``mdtui dump`` process spends its time: a bare ``python -c pass``, importing
  ``mdtui.cli``, the first dump (with the imports it makes on first use), a second dump in the
  same process (the reads and the rendering alone), and what is left (exit);
* a cProfile of one in-process dump, top functions by cumulative time.

Prints figures, asserts nothing.
"""

from __future__ import annotations

import cProfile
import io
import json
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

RUNS = 9
DUMP = ["dump", "--source", "live", "--format", "text", "--device", "media0"]
MEDIA_CTL = ["media-ctl", "-p", "-d", "/dev/media0"]
TERMINAL = {"other (0x5401)": "TCGETS", "other (0x5413)": "TIOCGWINSZ"}  # asm-generic/ioctls.h

# Counts ioctl() per (file, request) and appends "pid path request count" lines to
# $IOCTL_COUNT_FILE at exit.  First in LD_PRELOAD, it sees each call before the rig's shim and
# umockdev's preload answer it.
COUNTER_C = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SLOTS 512
static struct { char path[96]; unsigned long request, count; } slots[SLOTS];
static int used;

int ioctl(int fd, unsigned long request, ...)
{
	static int (*next)(int, unsigned long, ...);
	char link[40], path[96];
	ssize_t n;
	va_list ap;
	void *arg;
	int i;

	va_start(ap, request);
	arg = va_arg(ap, void *);
	va_end(ap);
	if (!next)
		next = (int (*)(int, unsigned long, ...))dlsym(RTLD_NEXT, "ioctl");
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, path, sizeof(path) - 1);
	path[n > 0 ? n : 0] = '\0';
	for (i = 0; i < used; i++)
		if (slots[i].request == request && !strcmp(slots[i].path, path))
			break;
	if (i == used && used < SLOTS) {
		strcpy(slots[i].path, path);
		slots[i].request = request;
		used++;
	}
	if (i < used)
		slots[i].count++;
	return next(fd, request, arg);
}

__attribute__((destructor)) static void report(void)
{
	const char *name = getenv("IOCTL_COUNT_FILE");
	FILE *f;
	int i;

	if (!name || !(f = fopen(name, "a")))
		return;
	for (i = 0; i < used; i++)
		fprintf(f, "%d %s %lu %lu\n", (int)getpid(), slots[i].path[0] ? slots[i].path : "?",
			slots[i].request, slots[i].count);
	fclose(f);
}
"""

PHASES = """
import io, json, sys, time
t0 = time.perf_counter()
from mdtui.cli import main
t1 = time.perf_counter()
main(sys.argv[1:], stdout=io.StringIO())
t2 = time.perf_counter()
main(sys.argv[1:], stdout=io.StringIO())
t3 = time.perf_counter()
print(json.dumps([t1 - t0, t2 - t1, t3 - t2]))
"""


def wall(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return (time.perf_counter() - t0) * 1000


def in_process() -> float:
    from mdtui.cli import main

    t0 = time.perf_counter()
    main(DUMP, stdout=io.StringIO())
    return (time.perf_counter() - t0) * 1000


def ratios() -> None:
    in_process()  # the first call imports what a dump needs: not what is measured here
    media_ctl, inside, process = [], [], []
    for _ in range(RUNS):  # in turns, so that a slow moment of the VM weighs on all three
        media_ctl.append(wall(MEDIA_CTL))
        inside.append(in_process())
        process.append(wall([sys.executable, "-m", "mdtui", *DUMP]))
    m, d, p = (statistics.median(x) for x in (media_ctl, inside, process))
    print(f"media-ctl -p (whole process): median {m:.1f} ms over {RUNS} runs")
    print(f"mdtui dump --format text, in-process: median {d:.1f} ms  ->  ratio {d / m:.2f}x media-ctl (target 0.2x)")
    print(f"mdtui dump, whole process: median {p:.1f} ms  ->  ratio {p / m:.2f}x media-ctl (target 1.0x)")


def count_ioctls(cmd: list[str], counter: Path, workdir: Path) -> Counter[tuple[str, str]]:
    """(device, request name) -> calls, for one run of ``cmd`` (and any process it starts)."""
    from allocator.mc.uapi_layout import REQUESTS

    out = workdir / f"count-{time.monotonic_ns()}.txt"
    env = {**os.environ, "IOCTL_COUNT_FILE": str(out), "LD_PRELOAD": f"{counter} {os.environ.get('LD_PRELOAD', '')}"}
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=env)
    counts: Counter[tuple[str, str]] = Counter()
    for line in out.read_text().splitlines() if out.exists() else ():
        _pid, path, request, n = line.rsplit(" ", 3)
        counts[(path, REQUESTS.get(int(request), f"other ({int(request):#x})"))] += int(n)
    return counts


def ioctls() -> None:
    with tempfile.TemporaryDirectory(prefix="mdtui-bench-") as tmp:
        work = Path(tmp)
        (work / "counter.c").write_text(COUNTER_C)
        cc = os.environ.get("CC", "cc")
        lib = work / "counter.so"
        subprocess.run([cc, "-shared", "-fPIC", "-O2", "-o", str(lib), str(work / "counter.c"), "-ldl"], check=True)
        tools = (("media-ctl -p -d /dev/media0", MEDIA_CTL), ("mdtui dump", [sys.executable, "-m", "mdtui", *DUMP]))
        for title, cmd in tools:
            counts = count_ioctls(cmd, lib, work)
            media = {k: n for k, n in counts.items() if "/dev/media" in k[0]}
            on_0 = sum(n for (path, _), n in media.items() if path.endswith("/dev/media0"))
            print(f"{title}: {sum(media.values())} media ioctls, {on_0} on /dev/media0")
            for (path, request), n in sorted(media.items()):
                print(f"    {n:5d}  {request:26s} /dev/{path.rsplit('/dev/', 1)[1]}")
            others: Counter[str] = Counter()
            for (path, request), n in counts.items():
                if (path, request) not in media:
                    others[TERMINAL.get(request, request)] += n
            if others:
                text = ", ".join(f"{n} {r}" for r, n in others.most_common())
                print(f"    {sum(others.values()):5d}  on other files: {text}")


def phases() -> None:
    bare = [wall([sys.executable, "-c", "pass"]) for _ in range(RUNS)]
    whole, parts = [], []
    for _ in range(RUNS):
        t0 = time.perf_counter()
        run = subprocess.run([sys.executable, "-c", PHASES, *DUMP], check=True, capture_output=True, text=True)
        whole.append((time.perf_counter() - t0) * 1000)
        parts.append([x * 1000 for x in json.loads(run.stdout.splitlines()[-1])])
    start = statistics.median(bare)
    imports, first, second = (statistics.median(p[i] for p in parts) for i in range(3))
    total = statistics.median(whole)
    print(f"where the whole mdtui dump process goes (medians of {RUNS}; the process runs two dumps here):")
    print(f"    {start:6.1f} ms  interpreter start and exit (python -c pass)")
    print(f"    {imports:6.1f} ms  import mdtui.cli")
    print(f"    {first - second:6.1f} ms  imports made on the first dump (sources.live, pyudev, render)")
    print(f"    {second:6.1f} ms  the dump itself: sysfs, udev, the ioctls, the media-ctl text")
    rest = total - start - imports - first
    print(f"    {rest - second:6.1f} ms  the rest (exit: finalizers, closing the rig's files)")
    print(f"    {total - second:6.1f} ms  in all, for one dump ({total:.1f} ms with the second)")


def profile() -> None:
    from mdtui.cli import main

    prof = cProfile.Profile()
    prof.enable()
    main(DUMP, stdout=io.StringIO())
    prof.disable()
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("cumulative").print_stats(14)
    print("where one in-process dump spends its time (cProfile, cumulative):")
    print("\n".join(line for line in out.getvalue().splitlines() if "/" in line or "ncalls" in line))


def inside() -> None:
    ratios()
    ioctls()
    phases()
    profile()


if __name__ == "__main__":
    if "MDTUI_RIG_CONTROL" in os.environ:
        inside()
    else:
        sys.exit(subprocess.call([sys.executable, "-m", "mdtui", "rig", "--", sys.executable, __file__]))

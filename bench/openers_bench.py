"""Speed of the /proc scan for the processes that hold a media node open (issue #12,
``mdtui/live/openers.py``).  Prints its figures; asserts nothing.

1. A /proc-like tree of 2,000 processes written into a temp dir, each with ~20 fds of the
   kinds a desktop or server has (stdio on /dev/null or a pty, sockets, pipes, anon inodes,
   regular files; one process in 40 also holds /dev/video0, /dev/media0 or an ALSA control):
   a full scan for the nodes of two media devices, median of 7.  Target: at most 30 ms.
   Device nodes are made with mknod where allowed (root), else given their numbers through
   the scan's ``stat`` seam.  Beside it: the work per scan (calls through the seam, and the
   system calls they make), and the floor: a bare loop making only the calls no scan can
   avoid (list each fd directory, one readlinkat per fd), and one readlinkat's cost here.
   And the scan's calls made from a C program (``bench/openers_floor.c``, compiled here):
   what is left without an interpreter, the kernel's own cost of reading the links.
2. ``--real N``: the same scan over this machine's real /proc after starting N ``sleep``
   processes that each inherit ~17 descriptors of those kinds (the kernel's own fd links).

Usage: python bench/openers_bench.py [--real 2000]
"""

from __future__ import annotations

import dataclasses
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

from mdtui.live.openers import SYSCALLS, Calls, scan

PROCESSES = 2_000
TARGET_MS = 30.0
RUNS = 7
VIDEO0, MEDIA0, VIDEO1, MEDIA1, CONTROL_C0 = (81, 0), (238, 0), (81, 1), (238, 1), (116, 0)
WANTED = {VIDEO0, VIDEO1, MEDIA0, MEDIA1, CONTROL_C0}  # two media devices' nodes
NODES = {
    "dev/null": (1, 3),
    "dev/pts/0": (136, 0),
    "dev/pts/3": (136, 3),
    "dev/video0": VIDEO0,
    "dev/media0": MEDIA0,
    "dev/snd/controlC0": CONTROL_C0,
    "dev/dri/card0": (226, 0),
}
FILES = [
    "var/log/syslog",
    "usr/lib/locale/locale-archive",
    "home/u/.cache/fontconfig/x.cache-9",
    "var/lib/sqlite/state.db",
    "var/lib/sqlite/state.db-wal",
    "usr/share/icons/hicolor/index.theme",
    "tmp/.X0-lock",
]
ANON = ["anon_inode:[eventfd]", "anon_inode:[eventpoll]", "anon_inode:inotify", "anon_inode:[timerfd]"]


def write_tree(base: Path, rng: random.Random) -> Calls:
    """The tree under ``base/proc``; returns the calls the scan should use (the seam's stat
    when mknod is not allowed)."""
    devices: dict[tuple[int, int], tuple[int, int]] = {}
    for rel, (major, minor) in NODES.items():
        path = base / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.mknod(path, 0o20660, os.makedev(major, minor))
        except PermissionError:
            path.touch()
            st = path.stat()
            devices[st.st_dev, st.st_ino] = (major, minor)
    for rel in FILES:
        (base / rel).parent.mkdir(parents=True, exist_ok=True)
        (base / rel).touch()
    for n in range(PROCESSES):
        pid = 300 + n * 3
        d = base / "proc" / str(pid)
        (d / "fd").mkdir(parents=True)
        (d / "fdinfo").mkdir()
        (d / "comm").write_text(rng.choice(["systemd", "bash", "sshd", "nginx", "python3", "pipewire"]) + "\n")
        stdio = str(base / rng.choice(["dev/null", "dev/pts/0", "dev/pts/3"]))
        links = [stdio, stdio, stdio]
        links += [f"socket:[{rng.randrange(10**7)}]" for _ in range(rng.randint(4, 8))]
        links += [f"pipe:[{rng.randrange(10**7)}]" for _ in range(rng.randint(2, 6))]
        links += [rng.choice(ANON) for _ in range(rng.randint(1, 4))]
        links += [str(base / rng.choice(FILES)) for _ in range(rng.randint(2, 5))]
        if n % 40 == 0:
            links.append(str(base / rng.choice(["dev/video0", "dev/media0", "dev/snd/controlC0"])))
        if n % 25 == 0:
            links.append(str(base / "dev/dri/card0"))
        for fd, target in enumerate(links):
            os.symlink(target, d / "fd" / str(fd))
            (d / "fdinfo" / str(fd)).write_text(
                f"pos:\t0\nflags:\t0{rng.choice([0o100000, 0o100002, 0o2004002]):o}\nmnt_id:\t25\nino:\t1\n"
            )
    if not devices:
        return SYSCALLS

    def seam_stat(name: str, *, dir_fd: int | None = None) -> os.stat_result | SimpleNamespace:
        real = os.stat(name, dir_fd=dir_fd)
        device = devices.get((real.st_dev, real.st_ino))
        if device is None:
            return real
        return SimpleNamespace(st_mode=0o20660, st_rdev=os.makedev(*device), st_uid=real.st_uid)

    return dataclasses.replace(SYSCALLS, stat=seam_stat)


def timed(fn, runs: int = RUNS) -> tuple[float, list[float]]:
    fn()  # warm: the dentry cache, pwd
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times), times


def counted(calls: Calls, proc: Path) -> Counter[str]:
    """One scan through a seam that counts each call (and each directory entry)."""
    seen: Counter[str] = Counter()

    def wrap(name: str, call):
        def counting(*args, **kwargs):
            seen[name] += 1
            return call(*args, **kwargs)

        return counting

    def names(fd: int):
        seen["names"] += 1
        for entry in calls.names(fd):
            seen["entries"] += 1
            yield entry

    fields = {f.name: wrap(f.name, getattr(calls, f.name)) for f in dataclasses.fields(Calls)}
    scan(WANTED, proc, calls=Calls(**fields | {"names": names}))
    return seen


def syscalls(seen: Counter[str]) -> int:
    """The system calls behind the counted calls: a listing is dup, fdopendir's getdents64
    (twice: the entries, then the end), closedir; a read is openat, read, close."""
    return seen["opendir"] + 4 * seen["names"] + seen["readlink"] + seen["stat"] + 3 * seen["read"] + seen["close"]


def floor(proc: Path) -> int:
    """What no scan can avoid: list every fd directory, read every fd link."""
    root = os.open(proc, os.O_RDONLY | os.O_DIRECTORY)
    n = 0
    try:
        for pid in os.listdir(root):
            try:
                d = os.open(pid + "/fd", os.O_RDONLY | os.O_DIRECTORY, dir_fd=root) if pid.isdigit() else -1
            except OSError:  # exited, or not ours to read
                continue
            if d < 0:
                continue
            try:
                for name in os.listdir(d):
                    try:
                        os.readlink(name, dir_fd=d)
                    except OSError:
                        continue
                    n += 1
            finally:
                os.close(d)
    finally:
        os.close(root)
    return n


def report(label: str, proc: Path, calls: Calls) -> None:
    median, times = timed(lambda: scan(WANTED, proc, calls=calls))
    result = scan(WANTED, proc, calls=calls)
    seen = counted(calls, proc)
    base, _ = timed(lambda: floor(proc))
    verdict = "met" if median <= TARGET_MS else "NOT met"
    print(
        f"{label}: full scan median {median:.1f} ms (runs {', '.join(f'{t:.1f}' for t in sorted(times))}); "
        f"target {TARGET_MS:.0f} ms: {verdict}"
    )
    print(f"  found {len(result.files)} open files on the wanted nodes, {result.hidden} hidden, {result.unread} unread")
    print(
        f"  work: {seen['opendir']} opendir, {seen['names']} listings of {seen['entries']} entries (pids and fds), "
        f"{seen['readlink']} readlink, {seen['stat']} stat, {seen['read']} reads, {seen['close']} close "
        f"= ~{syscalls(seen):,} system calls, {median * 1000 / max(syscalls(seen), 1):.2f} us each"
    )
    print(f"  floor (list every fd directory, one readlinkat per fd, nothing else): {base:.1f} ms")
    print(f"  the scan's own calls made from C, median of {RUNS}: {c_floor(proc)}")
    holders = sorted({f.pid for f in result.files})[:1]
    known, _ = timed(lambda: scan(WANTED, proc, calls=calls, pids=holders))
    print(f"  the watch of one known opener (pids={holders}): {known * 1000:.0f} us")


def c_floor(proc: Path) -> str:
    """The same calls from C (bench/openers_floor.c): what no interpreter overhead adds."""
    source = Path(__file__).with_name("openers_floor.c")
    with tempfile.TemporaryDirectory() as tmp:
        exe = Path(tmp) / "openers_floor"
        built = subprocess.run([os.environ.get("CC", "cc"), "-O2", "-o", str(exe), str(source)], capture_output=True)
        if built.returncode != 0:
            return "not measured (no C compiler)"
        out = subprocess.run([str(exe), str(proc), str(RUNS)], capture_output=True, text=True, check=True).stdout
    ms, fds, stats = out.split()
    return f"{float(ms):.1f} ms ({fds} readlinkat, {stats} fstatat: {float(ms) * 1000 / int(fds):.2f} us per fd)"


def per_call(proc: Path) -> float:
    d = os.open(next(iter(proc.glob("*/fd"))), os.O_RDONLY | os.O_DIRECTORY)
    try:
        return timeit.timeit(lambda: os.readlink("3", dir_fd=d), number=20_000) / 20_000 * 1e6
    finally:
        os.close(d)


def real(count: int) -> None:
    """``count`` sleeps holding ~17 inherited descriptors each, then the real /proc."""
    sockets = [socket.socket(), socket.socket(socket.AF_UNIX), *socket.socketpair()]
    own = [*os.pipe(), *(os.open(f, os.O_RDONLY) for f in ("/dev/null", "/etc/passwd", sys.executable))]
    own += [os.eventfd(0) for _ in range(2)] if hasattr(os, "eventfd") else []
    own += [os.dup(fd) for fd in own[:6]]
    fds = own + [s.fileno() for s in sockets]
    children = []
    try:
        for _ in range(count):
            children.append(subprocess.Popen(["sleep", "600"], pass_fds=fds, stdin=subprocess.DEVNULL))
        n = sum(1 for p in os.listdir("/proc") if p.isdigit())
        wanted = WANTED  # no media node here: the cost of looking, as on most machines
        median, times = timed(lambda: scan(wanted, Path("/proc")))
        result = scan(wanted, Path("/proc"))
        base, _ = timed(lambda: floor(Path("/proc")))
        print(
            f"real /proc, {n} processes ({count} sleeps with {len(fds) + 1} fds each), "
            f"median {median:.1f} ms (runs {', '.join(f'{t:.1f}' for t in sorted(times))}), "
            f"{len(result.files)} open files found, {result.hidden} hidden; floor {base:.1f} ms; "
            f"from C: {c_floor(Path('/proc'))}"
        )
    finally:
        for child in children:
            child.kill()
        for child in children:
            child.wait()
        for fd in own:
            os.close(fd)
        for sock in sockets:
            sock.close()


def main() -> None:
    base = Path(tempfile.mkdtemp(prefix="openers-bench-"))
    try:
        calls = write_tree(base, random.Random(12))
        via = "mknod" if calls is SYSCALLS else "the stat seam"
        print(f"tree: {PROCESSES} processes in {base} (device numbers through {via})")
        report("tree", base / "proc", calls)
        print(f"  one readlinkat of an fd link here: {per_call(base / 'proc'):.2f} us")
    finally:
        shutil.rmtree(base)
    if "--real" in sys.argv:
        real(int(sys.argv[sys.argv.index("--real") + 1]))


if __name__ == "__main__":
    main()

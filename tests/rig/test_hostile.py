"""Hostile clients of the rig: bad ioctl pointers, kill -9 at random points, twenty clients at
once, opens never closed, sysfs writes that are not device names, control lines that are not
lines.  After each case the rig must be as it was: it answers on its control socket, every
``/sys/module/*/refcnt`` is back to its baseline, ``media-ctl -p`` prints what it printed
before, rmmod is not refused for a file nobody holds, and the server keeps no connection of a
client that is gone.

The C clients (tests/rig/clients/*.c) are compiled with ``cc`` for the session.  The run is
bounded (about 20 s); ``MDTUI_SOAK=N`` multiplies the random cases by N, and
``MDTUI_HOSTILE_SEED`` picks another seed.  The number of cases run is printed at the end.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import hashlib
import os
import random
import socket
import struct
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from allocator.mc import uapi_layout

from .conftest import CASES, control

CLIENTS = Path(__file__).with_name("clients")
SOAK = max(1, int(os.environ.get("MDTUI_SOAK", "1") or 1))
SEED = os.environ.get("MDTUI_HOSTILE_SEED", "20240611")
DRIVERS = Path("/sys/bus/usb/drivers")
WILD = ("0x1", "0xdeadbeef000", "unmapped")  # no memory at all there
REQUESTS = ("DEVICE_INFO", "ENUM_ENTITIES", "ENUM_LINKS", "SETUP_LINK", "G_TOPOLOGY")
#: a zeroed argument: DEVICE_INFO and G_TOPOLOGY (counts only) succeed; entity 0 is no entity
ZEROED = {
    "DEVICE_INFO": "OK",
    "ENUM_ENTITIES": "EINVAL",
    "ENUM_LINKS": "EINVAL",
    "SETUP_LINK": "EINVAL",
    "G_TOPOLOGY": "OK",
}


@pytest.fixture(scope="session")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> str:
    out = tmp_path_factory.mktemp("clients") / "hostile"
    subprocess.run(["cc", "-O1", "-Wall", "-o", str(out), str(CLIENTS / "hostile.c")], check=True)
    return str(out)


# -- what must hold after every case ---------------------------------------------------------


def refcnts() -> dict[str, int]:
    """Every loaded module's refcnt (reading one makes the rig release files first, as the
    kernel has released them by the time a parent reaps its child)."""
    return {p.parent.name: int(p.read_text()) for p in sorted(Path("/sys/module").glob("*/refcnt"))}


def topology_digest() -> str:
    """G_TOPOLOGY of /dev/media0, both calls, as bytes: what media-ctl -p is printed from."""
    fd = os.open("/dev/media0", os.O_RDWR)
    try:
        topo = uapi_layout.MediaV2Topology()
        fcntl.ioctl(fd, uapi_layout.MEDIA_IOC_G_TOPOLOGY, topo)
        sizes = {
            "entities": uapi_layout.ENTITY,
            "interfaces": uapi_layout.INTERFACE,
            "pads": uapi_layout.PAD,
            "links": uapi_layout.LINK,
        }
        arrays = {name: ctypes.create_string_buffer(getattr(topo, f"num_{name}") * f.size) for name, f in sizes.items()}
        for name, array in arrays.items():
            setattr(topo, f"ptr_{name}", ctypes.addressof(array))
        fcntl.ioctl(fd, uapi_layout.MEDIA_IOC_G_TOPOLOGY, topo)
        digest = hashlib.sha256(struct.pack("<Q", topo.topology_version))
        for array in arrays.values():
            digest.update(array.raw)
        return digest.hexdigest()
    finally:
        os.close(fd)


def media_connections() -> list[str]:
    """The rig server's connected sockets on a /dev/mediaN ioctl path: one per file a client
    holds open (umockdev's end, and the rig's duplicate of it).  The server's pid: the peer of
    a control connection."""
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(os.environ["MDTUI_RIG_CONTROL"])
        pid = struct.unpack("3i", s.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))[0]
    connected = {}  # inode -> path, for connected Unix sockets (St 03) on an ioctl path
    for line in Path("/proc/net/unix").read_text().splitlines()[1:]:
        fields = line.split()
        if len(fields) > 7 and fields[5] == "03" and "/ioctl/dev/media" in fields[7]:
            connected[fields[6]] = fields[7]
    held = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            if target.startswith("socket:[") and target[8:-1] in connected:
                held.append(f"fd {fd}: {connected[target[8:-1]]}")
    return held


def media_ctl() -> str:
    return subprocess.run(["media-ctl", "-p", "-d", "/dev/media0"], capture_output=True, text=True, check=True).stdout


def machine() -> tuple[tuple[str, ...], ...]:
    """What a lifecycle command would change: nodes, USB devices, bound drivers, modules."""
    return (
        tuple(sorted(p.name for p in Path("/dev").glob("media*"))),
        tuple(sorted(p.name for p in Path("/sys/bus/usb/devices").iterdir())),
        tuple(sorted(str(p.relative_to(DRIVERS)) for p in DRIVERS.glob("*/*:*"))),
        tuple(sorted(p.name for p in Path("/sys/module").iterdir())),
    )


@dataclass(frozen=True)
class Baseline:
    refcnts: dict[str, int]
    topology: str
    machine: tuple[tuple[str, ...], ...]

    def check(self, case: str) -> None:
        """The cheap checks, after every case."""
        assert control("") == "ok", case
        assert refcnts() == self.refcnts, case
        assert topology_digest() == self.topology, case
        assert machine() == self.machine, case
        deadline = time.monotonic() + 2  # umockdev closes its end on its own thread, soon after
        while media_connections() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert media_connections() == [], f"{case}: connections of gone clients kept by the rig"


@pytest.fixture(scope="session")
def media_ctl_baseline() -> str:
    assert control("reset") == "ok"
    out = media_ctl()
    assert out.count("- entity ") == 522
    return out


@pytest.fixture
def baseline(media_ctl_baseline: str) -> Iterator[Baseline]:
    """The machine as the reset left it; after the test, the full checks: media-ctl prints what
    it printed, and unplug then rmmod of the stick's driver is not refused (no file pins it)."""
    base = Baseline(refcnts(), topology_digest(), machine())
    yield base
    base.check("after the test")
    assert media_ctl() == media_ctl_baseline
    assert control("unplug 1-1") == "ok"
    assert control("rmmod au0828") == "ok"


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=60, env=env)


# -- bad pointers ------------------------------------------------------------------------------


def expected_efault_cases() -> dict[str, str]:
    """What the kernel answers for each case hostile.c runs."""
    want = {}
    for request in REQUESTS:
        for kind in ("NULL", *WILD):
            want[f"{request} arg {kind}"] = "EFAULT"  # copy_from_user() of the argument
        zeroed = want[f"{request} arg zeroed"] = ZEROED[request]
        # a read-only argument: copied in, the call runs, copy_to_user() fails if it succeeded
        want[f"{request} arg readonly"] = "EFAULT" if zeroed == "OK" else zeroed
    want["RIG_IOCTL arg 0x1"] = "ENOTTY"
    want["G_TOPOLOGY counts"] = "OK"
    for array in ("ptr_entities", "ptr_interfaces", "ptr_pads", "ptr_links"):
        for kind in (*WILD, "readonly"):
            want[f"G_TOPOLOGY {array} {kind}"] = "EFAULT"
        want[f"G_TOPOLOGY {array} NULL"] = "OK"  # NULL: count only
    want["G_TOPOLOGY ptr_entities end-of-mapping"] = "EFAULT"
    want["G_TOPOLOGY partial-whole-elements"] = "OK"
    for array in ("pads", "links"):
        for kind in (*WILD, "readonly"):
            want[f"ENUM_LINKS {array} {kind}"] = "EFAULT"
        want[f"ENUM_LINKS {array} NULL"] = "OK"
    want["ENUM_LINKS no-links links 0x1"] = "OK"  # nothing to write: nothing faults
    want["holes-intact"] = "OK"
    return want


def parse_cases(out: str) -> dict[str, str]:
    return dict(line.rsplit(" ", 1) for line in out.splitlines() if line != "alive")


def test_bad_pointers_fault_for_every_media_ioctl_and_every_user_pointer(hostile: str, baseline: Baseline) -> None:
    """NULL, 0x1, 0xdeadbeef000, an unmapped page and a read-only page as the argument of
    every media ioctl and as every user pointer inside G_TOPOLOGY and ENUM_LINKS: EFAULT where
    the kernel's copy_from_user()/copy_to_user() fails, the client alive after each."""
    done = run(hostile, "efault")
    assert done.returncode == 0, done.stderr
    results = parse_cases(done.stdout)
    assert results == expected_efault_cases()
    assert done.stdout.splitlines()[-1] == "alive"
    assert results["DEVICE_INFO arg zeroed"] == "OK" and results["ENUM_ENTITIES arg zeroed"] == "EINVAL"
    CASES["bad pointer"] += len(results)
    baseline.check("bad pointers")


def test_a_null_argument_faults_without_the_shim(hostile: str, baseline: Baseline) -> None:
    """A program that does not load the rig's shim still gets EFAULT for a NULL argument:
    the rig's own answer, without touching the client's memory."""
    preload = " ".join(p for p in os.environ["LD_PRELOAD"].replace(":", " ").split() if "mdtui-rig-shim" not in p)
    assert preload != os.environ["LD_PRELOAD"]
    done = run(hostile, "null", env=dict(os.environ, LD_PRELOAD=preload))
    assert done.returncode == 0, done.stderr
    assert parse_cases(done.stdout) == {f"{request} arg NULL": "EFAULT" for request in REQUESTS}
    assert done.stdout.splitlines()[-1] == "alive"
    CASES["bad pointer"] += len(REQUESTS)
    baseline.check("NULL without the shim")


def test_python_ioctl_with_a_null_argument_faults(baseline: Baseline) -> None:
    fd = os.open("/dev/media0", os.O_RDWR)
    try:
        for request in uapi_layout.REQUESTS:
            with pytest.raises(OSError) as fault:
                fcntl.ioctl(fd, request, 0)
            assert fault.value.errno == errno.EFAULT
            CASES["bad pointer"] += 1
    finally:
        os.close(fd)
    baseline.check("python NULL")


# -- kill -9, concurrency, opens never closed ----------------------------------------------------

KILLS = 12  # per loop mode, times MDTUI_SOAK


def test_kill_9_at_random_points(hostile: str, baseline: Baseline) -> None:
    """Clients looping (``open``: open, DEVICE_INFO, G_TOPOLOGY twice, close; ``keep``:
    G_TOPOLOGY on one fd; ``pause``: 2 ms between calls) killed with SIGKILL after a random
    0-30 ms: while opening, in the middle of an ioctl, between calls.  The kernel releases a
    killed process's files at its exit: every refcnt is back at once."""
    for mode in ("open", "keep", "pause"):
        rng = random.Random(f"{SEED}-{mode}")
        for case in range(KILLS * SOAK):
            proc = subprocess.Popen([hostile, "loop", "1000000", mode], stdout=subprocess.DEVNULL)
            time.sleep(rng.uniform(0, 0.03))
            proc.kill()
            assert proc.wait() == -9
            baseline.check(f"{mode} kill {case} (seed {SEED})")
            CASES["kill -9"] += 1


def test_twenty_clients_at_once(hostile: str, baseline: Baseline) -> None:
    """Twenty clients opening, asking and closing at the same time all read the same graph."""
    rounds = str(5 * SOAK)
    one = run(hostile, "loop", "1")
    assert one.stdout.startswith("ok 1 "), one.stdout + one.stderr
    digest = one.stdout.split()[2]
    procs = [
        subprocess.Popen([hostile, "loop", rounds, ("open", "keep", "pause")[n % 3]], stdout=subprocess.PIPE, text=True)
        for n in range(20)
    ]
    outs = [proc.communicate(timeout=120)[0] for proc in procs]
    assert [proc.returncode for proc in procs] == [0] * 20, outs
    assert {out.strip() for out in outs} == {f"ok {rounds} {digest}"}
    CASES["concurrent client"] += 20
    baseline.check("twenty clients")


LEAKS = 4  # per way of leaving, times MDTUI_SOAK


def test_open_without_close_then_exit(hostile: str, baseline: Baseline) -> None:
    """Three opens never closed, then the process ends (``exit()``, ``_exit()``, SIGKILL):
    the refcnts read right after the parent reaped it are the baseline already (no delay: the
    kernel closes a process's files at exit)."""
    for how in ("exit", "_exit", "kill"):
        for case in range(LEAKS * SOAK):
            if how == "kill":
                proc = subprocess.Popen([hostile, "loop", "1000000", "noclose"], stdout=subprocess.DEVNULL)
                time.sleep(0.02)
                proc.kill()
                assert proc.wait() == -9
            else:
                done = run(hostile, "leak", "3", *(["_exit"] if how == "_exit" else []))
                assert done.returncode == 0, done.stderr
            assert refcnts() == baseline.refcnts, f"{how} {case}"
            baseline.check(f"{how} {case}")
            CASES["open without close"] += 1


# -- sysfs writes that are not device names --------------------------------------------------------

NOT_NAMES = (
    b"1-1:1.0#x",  # a '#' is part of the name, not a comment
    b"1-1:1.0 ",  # no whitespace is stripped but one trailing newline
    b" 1-1:1.0",
    b"1-1:1.0\r\n",
    b"1-1:1.0\n\n",
    b"\xff\xfe1-1:1.0",
    b"1-1:1.0 plug hvr950q",  # words after the name are the name
    b"nothing\nplug hvr950q\n",  # a second line is the name too
    b"1-1:1.0\nrmmod au0828",
    b"1-1:1.0" * 1000,  # longer than any name (and than a control line)
)


def test_a_bind_or_unbind_write_is_one_device_name(baseline: Baseline) -> None:
    """write() to unbind, through the shim: the written bytes are looked up as one device name
    (sysfs_streq: a single trailing newline ignored, a NUL ends the string); anything else is
    ENODEV and changes nothing, whatever words or lines it holds."""
    unbind = DRIVERS / "au0828" / "unbind"
    for data in NOT_NAMES:
        with pytest.raises(OSError) as refused:
            unbind.write_bytes(data)
        assert refused.value.errno == errno.ENODEV, data
        assert machine() == baseline.machine, data
        CASES["sysfs write"] += 1
    unbind.write_bytes(b"1-1:1.0\0" + b" plug hvr950q" * 500)  # the name ends at the NUL: a match
    assert not (DRIVERS / "au0828" / "1-1:1.0").exists()
    (DRIVERS / "au0828" / "bind").write_bytes(b"1-1:1.0")  # no newline: a match too
    assert (DRIVERS / "au0828" / "1-1:1.0").is_symlink()
    assert os.write(os.open(unbind, os.O_WRONLY), b"") == 0  # sysfs: no store for 0 bytes
    CASES["sysfs write"] += 3
    assert control("reset") == "ok"  # a rebind makes a new graph: back to the baseline's
    baseline.check("sysfs writes")


def stdio_write(data: bytes, path: Path) -> None:
    """``printf DATA > PATH`` by bash: a write through stdio, which the shim cannot see; wait
    until the rig has applied it (it empties the file first, then acts under its lock)."""
    escaped = "".join(f"\\x{b:02x}" for b in data)
    subprocess.run(["bash", "-c", f"printf '{escaped}' > {path}"], check=True)
    deadline = time.monotonic() + 5
    while path.stat().st_size and time.monotonic() < deadline:
        time.sleep(0.01)
    assert path.stat().st_size == 0, f"the rig no longer applies writes to {path}"
    assert control("") == "ok"  # served after the write was applied


def test_stdio_writes_survive_any_bytes_and_never_run_commands(baseline: Baseline) -> None:
    """The files written through stdio: bytes that are not UTF-8 and lines that read like
    lifecycle commands are one device name that matches nothing; the rig keeps applying
    later writes."""
    unbind = DRIVERS / "au0828" / "unbind"
    for data in NOT_NAMES:
        stdio_write(data, unbind)
        assert machine() == baseline.machine, data
        CASES["sysfs write"] += 1
    stdio_write(b"1-1:1.0\n", unbind)
    assert not (DRIVERS / "au0828" / "1-1:1.0").exists()
    stdio_write(b"1-1:1.0\n", DRIVERS / "au0828" / "bind")
    assert (DRIVERS / "au0828" / "1-1:1.0").is_symlink()
    CASES["sysfs write"] += 2
    assert control("reset") == "ok"  # a rebind makes a new graph: back to the baseline's
    baseline.check("stdio writes")


# -- control lines that are not lines ------------------------------------------------------------


def exchange(sock: socket.socket, data: bytes) -> str:
    sock.sendall(data)
    reply = b""
    while not reply.endswith(b"\n"):
        chunk = sock.recv(4096)
        assert chunk, f"no answer to {data[:40]!r}"
        reply += chunk
    return reply.decode().strip()


def test_the_control_socket_answers_any_line_and_keeps_serving(baseline: Baseline) -> None:
    """Bytes that are not UTF-8, a line of a megabyte, a script that is no script: each gets
    an ``error`` answer on the same connection, which goes on serving."""
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(os.environ["MDTUI_RIG_CONTROL"])
        s.settimeout(30)
        assert exchange(s, b"\xff\xfeunplug 1-1\n").startswith(f"error {errno.EINVAL} EINVAL not UTF-8")
        assert exchange(s, b"x" * (1 << 20) + b"\n").startswith(f"error {errno.E2BIG} E2BIG")
        assert exchange(s, b"unplug " + b"9" * 100_000 + b" \n").startswith(f"error {errno.E2BIG} E2BIG")
        assert exchange(s, b"reset /dev/zero\n").startswith("error ")
        assert exchange(s, b"reset /nonexistent/script\n").startswith("error ")
        assert exchange(s, b"plug\n").startswith(f"error {errno.EINVAL} EINVAL")
        assert exchange(s, b"sysfs-write unbind zz zz\n").startswith(f"error {errno.EINVAL} EINVAL")
        assert exchange(s, b"\n") == "ok"
        CASES["control line"] += 8
    baseline.check("control lines")


def test_a_line_cut_off_by_a_disconnect_is_not_run(baseline: Baseline) -> None:
    """A client that goes away in the middle of a line (or before reading its answer): the
    partial line is not run (``unplug 1-1`` could be the start of ``unplug 1-10``), and the
    rig goes on serving."""
    for _ in range(5 * SOAK):
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(os.environ["MDTUI_RIG_CONTROL"])
            s.sendall(b"unplug 1-1")
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(os.environ["MDTUI_RIG_CONTROL"])
            s.sendall(b"\n" * 1000)  # answers nobody reads
        CASES["control line"] += 2
    assert control("") == "ok"
    assert machine() == baseline.machine
    baseline.check("control disconnects")

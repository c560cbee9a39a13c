"""Exact mode on the rig: the simulated kernel's log as /dev/kmsg and its dev_dbg call sites
as debugfs' dynamic_debug/control (mdtui/rig/kmsg.py, shim.c), read by mdtui's live source
as on a real machine, and by the tools that read them there (dmesg, a shell's echo).

Without the rig's /dev/kmsg and control file, ``LiveSource(exact=True)`` falls back to the
inferred mode with a note: every test here starts by asserting exact mode is on, or reads
one of the two files."""

from __future__ import annotations

import errno
import json
import os
import re
import select
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from allocator.events import TRACE
from mdtui.live import kmsg
from mdtui.live.monitor import UdevMonitor
from mdtui.model import MediaDeviceView, SystemSnapshot
from mdtui.render import jsondump
from mdtui.rig.kmsg import SITES, DynamicDebug, KernelLog, seqpacket_server, serve_kmsg
from mdtui.sources.live import LiveSource
from mdtui.sources.sim import build

from .conftest import control
from .test_rig import LIFECYCLE, sim_dump, sysfs_write

CONTROL = Path("/sys/kernel/debug/dynamic_debug/control")
#: mc-dev-allocator.c's dev_dbg() sites in mainline: line -> function
ALLOCATOR_SITES = {
    47: "media_device_instance_release",
    79: "__media_device_get",
    92: "__media_device_get",
    128: "media_device_delete",
}
RECORD = re.compile(rb"^(\d+),(\d+),(\d+),([-c]);([^\n]*)\n((?: [A-Z]+=[^\n]*\n)*)$")


def allocator_flags() -> dict[int, str]:
    return {site.line: site.flags for site in kmsg.parse_sites(CONTROL.read_text())}


def records(fd: int) -> list[bytes]:
    """Every record up to now (the fd is non-blocking)."""
    out = []
    while True:
        try:
            out.append(os.read(fd, 8192))
        except BlockingIOError:
            return out


def message(record: bytes) -> str:
    m = RECORD.match(record)
    assert m is not None, record
    return m.group(5).decode()


def write_query(query: str) -> None:
    with CONTROL.open("wb", buffering=0) as f:  # one query per write(), as the kernel takes them
        f.write(query.encode() + b"\n")


@pytest.fixture
def reader() -> Iterator[int]:
    fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    yield fd
    os.close(fd)


@pytest.fixture(autouse=True)
def debug_lines_off() -> Iterator[None]:
    """The call sites as a fresh boot has them, before and after (a test that fails halfway
    must not leave the next one printing)."""
    yield
    if CONTROL.exists():
        write_query("-pmfslt")


# -- what a source sees ------------------------------------------------------------------


def start(exact: bool) -> LiveSource:
    source = LiveSource(exact=exact, monitor_factory=UdevMonitor)
    source.start()
    return source


def pump(
    sources: list[LiveSource], done: Callable[[list[SystemSnapshot]], bool], timeout: float
) -> list[SystemSnapshot]:
    """Drain each source whose fds are readable, as the app's loop does, then read it; until
    ``done`` holds for the snapshots and nothing more is queued for 0.2 s (events of a step
    left queued would reach the next step), or ``timeout``: the last snapshots either way."""
    deadline = time.monotonic() + timeout
    snaps = [s.snapshot() for s in sources]
    quiet_since = time.monotonic()
    while time.monotonic() < deadline:
        if done(snaps) and time.monotonic() - quiet_since >= 0.2:
            break
        owner = {fd: s for s in sources for fd in s.filenos()}
        ready, _, _ = select.select(list(owner), [], [], min(0.05, max(0.0, deadline - time.monotonic())))
        if not ready:
            continue
        quiet_since = time.monotonic()
        for source in {id(owner[fd]): owner[fd] for fd in ready}.values():
            source.handle_readable()
        snaps = [s.snapshot() for s in sources]
    return snaps


def stick(snap: SystemSnapshot) -> MediaDeviceView:
    dev = snap.device("1-1")
    assert dev is not None, [d.key for d in snap.media_devices]
    return dev


def hold_video0() -> subprocess.Popen[bytes]:
    """A process that holds /dev/video0 open: ``sleep 60 < /dev/video0``, the shell's own open
    (a file opened here and handed down would leave umockdev's connection for it in this
    process too, and the simulated file would outlive the sleep)."""
    proc = subprocess.Popen(["sh", "-c", "exec sleep 60 < /dev/video0"])
    comm = Path(f"/proc/{proc.pid}/comm")
    deadline = time.monotonic() + 5
    while comm.read_text() != "sleep\n" and time.monotonic() < deadline:
        time.sleep(0.01)
    return proc


def deferred_au0828(dev: MediaDeviceView) -> bool:
    return any(h.state == "deferred" and h.driver == "au0828" for h in dev.holders)


def test_exact_and_inferred_agree_on_a_deferred_release() -> None:
    """A process keeps /dev/video0 open across au0828's unbind: both modes count au0828's
    reference as kept (refcount 2, a deferred holder), and both fall to 1 once the process
    is gone.  The exact source started after the stick was allocated, so its count of 1-1 is
    the inferred one (mainline logs no line when the owner's own reference goes, and the
    allocate before start was never logged): the close reaches both through the inotify
    watch among their fds."""
    exact, inferred = start(True), start(False)
    holder = None
    try:
        assert exact.mode == "exact", exact.notes
        assert any("exact mode" in note for note in exact.notes)
        assert inferred.mode == "inferred"
        assert set(allocator_flags().values()) == {"p"}
        holder = hold_video0()
        sysfs_write("unbind au0828 1-1:1.0")

        def kept(snaps: list[SystemSnapshot]) -> bool:
            return all(stick(s).refcount == 2 and deferred_au0828(stick(s)) for s in snaps)

        snaps = pump([exact, inferred], kept, 5)
        assert kept(snaps), [(stick(s).refcount, stick(s).holders) for s in snaps]
        holder.kill()
        holder.wait()
        gone = time.monotonic()
        snaps = pump([exact, inferred], lambda ss: all(stick(s).refcount == 1 for s in ss), 1.0)
        assert [stick(s).refcount for s in snaps] == [1, 1], time.monotonic() - gone
        assert not any(deferred_au0828(stick(s)) for s in snaps)
    finally:
        if holder is not None and holder.poll() is None:
            holder.kill()
            holder.wait()
        exact.stop()
        inferred.stop()
    assert set(allocator_flags().values()) == {"_"}  # put back as they were


def test_exact_mode_counts_from_the_allocators_lines() -> None:
    """The stick plugged after exact mode started: its count comes from kmsg (allocate,
    the sharer's get, its delete and get again, the release at unplug), not inferred, and
    agrees with the inferred source and the simulation at every step."""
    exact, inferred = start(True), start(False)
    try:
        assert exact.mode == "exact", exact.notes
        steps = [("unplug 1-1", None), ("plug hvr950q", 2)]
        steps += [(line, n) for line, n in zip(LIFECYCLE[1:3], (1, 2), strict=True)]  # snd-usb-audio out, in
        for line, want in steps:
            if line.split()[0] in ("bind", "unbind"):
                sysfs_write(line)
            else:
                assert control(line) == "ok"
            if want is None:
                snaps = pump([exact, inferred], lambda ss: all(s.device("1-1") is None for s in ss), 5)
                assert "1-1" not in exact.tracker.devices
                continue

            def counted(snaps: list[SystemSnapshot], n: int = want) -> bool:
                exact_dev, inferred_dev = stick(snaps[0]), stick(snaps[1])
                return exact_dev.refcount == inferred_dev.refcount == n and "refcount" not in exact_dev.inferred

            snaps = pump([exact, inferred], counted, 5)
            assert [stick(s).refcount for s in snaps] == [want, want], line
            tracked = exact.tracker.devices["1-1"]
            assert (tracked.refcount, tracked.owner) == (want, "au0828"), line
            assert "refcount" not in stick(snaps[0]).inferred and "refcount" in stick(snaps[1]).inferred
        assert control("unplug 1-1") == "ok"
        pump([exact], lambda ss: "1-1" not in exact.tracker.devices, 5)
        assert "1-1" not in exact.tracker.devices  # the release line
    finally:
        exact.stop()
        inferred.stop()
    assert set(allocator_flags().values()) == {"_"}


def test_a_tracked_deferred_release() -> None:
    """Exact mode tracking the stick (plugged after it started) while a process keeps
    /dev/video0 across au0828's unbind: the kernel still counts 2 until the process goes."""
    assert control("unplug 1-1") == "ok"
    exact = start(True)
    holder = None
    try:
        assert exact.mode == "exact", exact.notes
        assert control("plug hvr950q") == "ok"
        pump([exact], lambda ss: exact.tracker.devices.get("1-1") is not None, 5)
        assert exact.tracker.devices["1-1"].refcount == 2
        holder = hold_video0()
        sysfs_write("unbind au0828 1-1:1.0")
        snaps = pump([exact], lambda ss: deferred_au0828(stick(ss[0])), 5)
        assert stick(snaps[0]).refcount == 2  # the owner's reference, kept by the open file
        holder.kill()
        holder.wait()
        gone = time.monotonic()
        snaps = pump([exact], lambda ss: stick(ss[0]).refcount == 1, 5)
        assert stick(snaps[0]).refcount == 1 and time.monotonic() - gone < 1.2  # pump waits 0.2 s of quiet
    finally:
        if holder is not None:
            holder.kill()
            holder.wait()
        exact.stop()


def test_dump_in_exact_mode_follows_the_lifecycle(tmp_path: Path) -> None:
    """What ``mdtui dump --exact --source live --format json`` prints (a source started, read
    once, stopped), after each step of the lifecycle: exact mode, and the simulation's
    refcounts; the debug lines are off again after each."""
    for n, line in enumerate(LIFECYCLE, start=1):
        if line.split()[0] in ("bind", "unbind"):
            sysfs_write(line)
        else:
            assert control(line) == "ok"
        source = start(True)
        try:
            doc = json.loads(jsondump.render(source.snapshot()))
        finally:
            source.stop()
        assert any("exact" in note for note in doc["notes"]), doc["notes"]
        sim = json.loads(sim_dump(tmp_path, LIFECYCLE[:n], "--format", "json"))
        ours = {d["bus_info"]: d["refcount"] for d in doc["media_devices"]}
        assert ours == {d["bus_info"]: d["refcount"] for d in sim["media_devices"]}, line
        assert set(allocator_flags().values()) == {"_"}, line


def test_watch_exact_shows_the_allocator_lines_and_puts_them_back_on_sigterm() -> None:
    watch = subprocess.Popen(
        [sys.executable, "-m", "mdtui", "watch", "--source", "live", "--exact"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    out = b""
    try:
        deadline = time.monotonic() + 10
        while set(allocator_flags().values()) != {"p"} and time.monotonic() < deadline:
            time.sleep(0.02)
        assert set(allocator_flags().values()) == {"p"}
        assert control("unplug 1-1") == "ok" and control("plug hvr950q") == "ok"
        fd = watch.stdout.fileno()  # type: ignore[union-attr]
        while b"got owner reference" not in out and time.monotonic() < deadline:
            if select.select([fd], [], [], 0.1)[0]:
                out += os.read(fd, 65536)
    finally:
        watch.terminate()
        rest, _ = watch.communicate(timeout=10)
    text = (out + rest).decode()
    assert watch.returncode == 128 + 15
    assert "usb 1-1      __media_device_get: Allocated media device for owner au0828" in text
    assert "__media_device_get: module snd_usb_audio got owner reference" in text
    assert set(allocator_flags().values()) == {"_"}


# -- /dev/kmsg ---------------------------------------------------------------------------


def test_kmsg_records_are_the_kernels(reader: int) -> None:
    boot = records(reader)
    assert boot, "a fresh reader starts at the oldest record"
    seqs = [int(RECORD.match(r).group(2)) for r in boot]  # type: ignore[union-attr]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    usb = next(r for r in boot if b"usb 1-1: new high-speed USB device number" in r)
    assert usb.startswith(b"6,")  # KERN_INFO, facility 0
    assert not any(b"__media_device_get" in r for r in boot)  # dev_dbg: its site did not print

    write_query("file mc-dev-allocator.c +p")
    assert control("unplug 1-1") == "ok" and control("plug hvr950q") == "ok"
    assert select.select([reader], [], [], 1)[0] == [reader]
    got = records(reader)
    texts = [message(r) for r in got]
    assert "usb 1-1: media_device_delete: module snd_usb_audio put owner module reference" in texts
    assert "usb 1-1: media_device_instance_release: releasing Media Device" in texts
    allocated = texts.index("usb 1-1: __media_device_get: Allocated media device for owner au0828")
    assert texts[allocated + 1 :].count("usb 1-1: __media_device_get: module snd_usb_audio got owner reference") == 1
    assert got[allocated].startswith(b"7,")  # KERN_DEBUG
    assert got[allocated].endswith(b" SUBSYSTEM=usb\n DEVICE=c189:1\n")
    assert kmsg.LINE.match(kmsg.parse_record(got[allocated]) or "")["fn"] == "__media_device_get"  # type: ignore[index]
    with pytest.raises(BlockingIOError):
        os.read(reader, 8192)


def test_kmsg_read_seek_and_write(reader: int) -> None:
    records(reader)
    writer = os.open("/dev/kmsg", os.O_WRONLY)
    try:
        assert os.write(writer, b"<3>one\n") == 7
        record = os.read(reader, 8192)
        assert RECORD.match(record).group(1) == b"11"  # type: ignore[union-attr]  # LOG_USER, KERN_ERR
        assert message(record) == "one"
        os.write(writer, b"caf\xc3\xa9 \\ tab\there")
        with pytest.raises(OSError) as small:
            os.read(reader, 10)
        assert small.value.errno == errno.EINVAL
        record = os.read(reader, 8192)  # the record stayed
        assert record.startswith(b"12,") and message(record) == "caf\\xc3\\xa9 \\x5c tab\\x09here"
        with pytest.raises(OSError) as long:
            os.write(writer, b"x" * 1025)
        assert long.value.errno == errno.EINVAL
        with pytest.raises(OSError) as badf:
            os.read(writer, 8192)
        assert badf.value.errno == errno.EBADF
        with pytest.raises(OSError) as wr:
            os.write(reader, b"no")
        assert wr.value.errno == errno.EBADF
    finally:
        os.close(writer)
    assert os.lseek(reader, 0, os.SEEK_SET) == 0
    first = os.read(reader, 8192)
    os.lseek(reader, 0, os.SEEK_END)
    with pytest.raises(BlockingIOError):
        os.read(reader, 8192)
    for offset, whence, code in ((1, os.SEEK_SET, errno.ESPIPE), (0, os.SEEK_CUR, errno.EINVAL)):
        with pytest.raises(OSError) as bad:
            os.lseek(reader, offset, whence)
        assert bad.value.errno == code
    os.lseek(reader, 0, os.SEEK_DATA)  # nothing was cleared: the oldest record again
    assert os.read(reader, 8192) == first
    copy = os.dup(reader)  # CPython: fcntl(F_DUPFD_CLOEXEC)
    try:
        os.lseek(copy, 0, os.SEEK_END)
        with pytest.raises(BlockingIOError):
            os.read(reader, 8192)  # the same open file
    finally:
        os.close(copy)


def test_kmsg_blocking_read_waits_for_a_record() -> None:
    fd = os.open("/dev/kmsg", os.O_RDONLY)
    try:
        os.lseek(fd, 0, os.SEEK_END)
        assert select.select([fd], [], [], 0.1)[0] == []
        logger = subprocess.Popen(["sh", "-c", "sleep 0.2; echo '<6>from the shell' > /dev/kmsg"])
        assert message(os.read(fd, 8192)) == "from the shell"  # blocked until then
        assert logger.wait(5) == 0
    finally:
        os.close(fd)


def test_kmsg_drops_the_oldest_and_says_epipe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A reader that falls behind a full ring: EPIPE once, then the oldest record kept."""
    log = KernelLog(time.monotonic, shift=9)  # 512 bytes of text, 16 records
    server = seqpacket_server(str(tmp_path / "kmsg.sock"), lambda conn: serve_kmsg(conn, lambda: log))
    monkeypatch.setenv("MDTUI_RIG_KMSG", server.path)
    try:
        fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK)
        try:
            for n in range(200):
                log.write(b"<6>record %d" % n)
            seqs, epipe = [], []
            while True:
                try:
                    seqs.append(int(RECORD.match(os.read(fd, 8192)).group(2)))  # type: ignore[union-attr]
                except BlockingIOError:
                    break
                except BrokenPipeError:
                    epipe.append(len(seqs))
        finally:
            os.close(fd)
    finally:
        server.close()
    assert epipe and len(seqs) < 200  # the rig pushes while the records are written: maybe more than once
    assert seqs[: epipe[0]] == list(range(epipe[0]))  # what was on its way before the first drop, if any
    assert seqs == sorted(set(seqs))
    last = seqs[epipe[-1] :]  # from the oldest record kept on: everything, to the newest
    assert last == list(range(200 - len(last), 200)) and len(last) >= 16


def test_a_reset_is_a_new_boot(reader: int) -> None:
    records(reader)
    assert control("reset") == "ok"
    assert control("unplug 1-1") == "ok"
    assert select.select([reader], [], [], 0.2)[0] == []  # the old log gets nothing more
    fresh = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK)
    try:
        got = records(fresh)
        assert RECORD.match(got[0]).group(2) == b"0"  # type: ignore[union-attr]
        assert "usb 1-1: USB disconnect, device number 2" in [message(r) for r in got]
    finally:
        os.close(fresh)


@pytest.mark.skipif(shutil.which("dmesg") is None, reason="no dmesg (util-linux)")
def test_dmesg_reads_the_simulated_kernel() -> None:
    out = subprocess.run(["dmesg"], capture_output=True, text=True, check=True).stdout
    assert re.search(r"^\[\s*\d+\.\d{6}\] au0828: Registered device AU0828 \[Hauppauge HVR950Q\]$", out, re.M)


# -- dynamic_debug/control ---------------------------------------------------------------


def test_control_lists_the_allocators_call_sites() -> None:
    listing = CONTROL.read_text()
    assert listing.startswith("# filename:lineno [module]function flags format\n")
    rows = [row for row in listing.splitlines() if "mc-dev-allocator.c" in row]
    assert rows == [
        f'drivers/media/mc/mc-dev-allocator.c:{line} [mc]{fn} =_ "{fmt}"'
        for (line, fn), fmt in zip(
            ALLOCATOR_SITES.items(),
            (
                "%s: releasing Media Device\\n",
                "%s: module %s got owner reference\\n",
                "%s: Allocated media device for owner %s\\n",
                "%s: module %s put owner module reference\\n",
            ),
            strict=True,
        )
    ]
    assert oct(CONTROL.parent.parent.stat().st_mode & 0o777) == "0o700"  # debugfs is root's


def test_control_queries_as_the_kernel_parses_them(reader: int) -> None:
    write_query("file mc-dev-allocator.c line 92 +p")
    assert allocator_flags() == {47: "_", 79: "_", 92: "p", 128: "_"}
    write_query("module mc func __media_device_get +p; func media_device_delete +p")
    assert allocator_flags() == {47: "_", 79: "p", 92: "p", 128: "p"}
    write_query("format releasing =pmfl")
    assert allocator_flags()[47] == "pmfl"
    write_query("file drivers/media/mc/mc-dev-allocator.c:40-80 -p")  # a path, and a line range
    assert allocator_flags() == {47: "mfl", 79: "_", 92: "p", 128: "p"}
    write_query("line 47 +p")
    records(reader)
    assert control("unplug 1-1") == "ok"
    texts = [message(r) for r in records(reader)]
    release = "usb 1-1: media_device_instance_release: releasing Media Device"
    assert f"mc:media_device_instance_release:47: {release}" in texts
    for bad, code in (
        ("file mc-dev-allocator.c +x", errno.EINVAL),  # unknown flag
        ("flie mc-dev-allocator.c +p", errno.EINVAL),  # unknown keyword
        ("file mc-dev-allocator.c", errno.EINVAL),  # no flags
        ("line 90-80 +p", errno.EINVAL),
        ('format "unclosed +p', errno.EINVAL),
        ("x" * 4096, errno.E2BIG),
    ):
        with pytest.raises(OSError) as refused:
            write_query(bad)
        assert refused.value.errno == code, bad
    with pytest.raises(OSError):
        write_query("bogus +p; file mc-dev-allocator.c =_")  # the good half applies all the same
    assert set(allocator_flags().values()) == {"_"}
    write_query("file no-such-file.c +p")  # matches nothing: no error
    write_query("# a comment")


def test_control_written_through_stdio() -> None:
    """bash's echo writes through stdio, which the shim cannot see: the write reaches the rig
    all the same (the fd is its socket), and the listing is rewritten."""
    sh = f"echo 'file mc-dev-allocator.c +p' > {CONTROL}"
    assert subprocess.run(["bash", "-c", sh], capture_output=True).returncode == 0
    deadline = time.monotonic() + 2
    while set(allocator_flags().values()) != {"p"} and time.monotonic() < deadline:
        time.sleep(0.01)
    assert set(allocator_flags().values()) == {"p"}


def test_a_module_loaded_again_starts_with_its_sites_off() -> None:
    write_query("module snd_usb_audio +p")
    assert "[snd_usb_audio]snd_usb_create_streams =p" in CONTROL.read_text()
    assert control("unplug 1-1") == "ok" and control("rmmod snd_usb_audio") == "ok"
    assert "[snd_usb_audio]" not in CONTROL.read_text()
    assert control("modprobe snd_usb_audio") == "ok"
    assert "[snd_usb_audio]snd_usb_create_streams =_" in CONTROL.read_text()


def test_every_dev_dbg_of_the_simulation_has_a_call_site() -> None:
    source, failed = build()
    assert not failed
    k = source.kernel
    fd = k.open("/dev/video0")
    for line in (*LIFECYCLE[:2], "bind snd-usb-audio 1-1:1.1"):
        op, *args = line.split()
        getattr(k, op)(*args)
    k.close(fd)
    k.unplug("1-1")
    sites = DynamicDebug(sites=SITES)
    for module in ("dd", "mc", "snd_usb_audio"):
        sites.load(module)
    debug = [e for e in k.events.history if e.kind == TRACE and e.level == "debug"]
    assert len({e.text.split(":")[0] for e in debug}) >= 4
    assert [e.text for e in debug if sites.site(e.text) is None] == []

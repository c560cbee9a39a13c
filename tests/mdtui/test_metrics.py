"""``mdtui metrics``: /metrics over a real socket and the textfile, parsed by prometheus_client's
parser, on the simulated kernel; the soak report; usage and system errors."""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from allocator import Event
from mdtui.cli import main
from mdtui.metrics import listen_address
from mdtui.metrics.exporter import TEXTFILE, Exporter, Server, Textfile, TextfileError
from mdtui.metrics.families import Seen, SnapshotCollector, families
from mdtui.metrics.soakfile import SoakFile
from mdtui.model import HostView, SystemSnapshot, Unread
from mdtui.sources.sim import SimSource, build

from ..conftest import fake_clock
from .conftest import step

HOST = "testhost"
HVR = {"device": "media0", "bus_info": "usb-0000:00:14.0-1", "driver": "au0828", "model": "WinTV HVR-950Q"}
WORLD = "modprobe au0828\nmodprobe snd_usb_audio\nplug hvr950q\n"
ROOT = Path(__file__).resolve().parents[2]

Samples = dict[str, list[tuple[dict[str, str], float]]]


def parse(text: str) -> Samples:
    """Every sample by its name (``mdtui_uevents_total``), with its labels."""
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        assert family.documentation, f"{family.name} has no HELP text"
        for s in family.samples:
            out.setdefault(s.name, []).append((s.labels, s.value))
    return out


def value(samples: Samples, name: str, **labels: str) -> float | None:
    """The value of the one sample of ``name`` whose labels include ``labels``; None: none."""
    found = [v for got, v in samples.get(name, []) if labels.items() <= got.items()]
    assert len(found) <= 1, f"{name}{labels} matches {len(found)} samples"
    return found[0] if found else None


def scrape(address: tuple[str, int]) -> Samples:
    host, port = address
    with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=5) as response:
        assert response.status == 200
        return parse(response.read().decode())


def wait_for(check: Callable[[], bool], timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def metrics(*argv: str) -> int:
    return main(["metrics", *argv], clock=fake_clock(), stdout=io.StringIO())


def render(snap: SystemSnapshot, seen: Seen | None = None, **kwargs: object) -> Samples:
    registry = CollectorRegistry()
    registry.register(SnapshotCollector(lambda: (snap, seen or Seen()), HOST, **kwargs))  # type: ignore[arg-type]
    return parse(generate_latest(registry).decode())


class Stops(SimSource):
    """The default world, counting ``stop()``."""

    def __init__(self) -> None:
        source, _ = build(clock=fake_clock())
        super().__init__(source.kernel)
        self.stops = 0

    def stop(self) -> None:
        self.stops += 1


@contextlib.contextmanager
def following(exporter: Exporter, on_change: Callable[[], object] = lambda: None) -> Iterator[threading.Thread]:
    thread = threading.Thread(target=exporter.follow, args=(on_change,), daemon=True)
    thread.start()
    try:
        yield thread
    finally:
        exporter.stop()
        thread.join(5)
        exporter.close()


# -- over HTTP -----------------------------------------------------------------------------


def test_http_default_world_then_an_unbind_changes_the_values() -> None:
    source = Stops()
    exporter = Exporter(source, HOST)
    server = Server("127.0.0.1", 0, exporter.registry)
    try:
        with following(exporter) as thread:
            s = scrape(server.address)
            assert value(s, "mdtui_media_devices", host=HOST) == 2
            assert value(s, "mdtui_host_up", host=HOST) == 1
            assert value(s, "mdtui_media_device_registered", **HVR, host=HOST) == 1
            assert value(s, "mdtui_allocator_refcount", **HVR) == 2
            assert value(s, "mdtui_owner_module_refcnt", **HVR, module="au0828") == 1
            assert value(s, "mdtui_holders", **HVR, state="bound") == 2
            assert value(s, "mdtui_holders", **HVR, state="deferred") == 0
            assert value(s, "mdtui_open_files", **HVR) == 0
            assert value(s, "mdtui_anomalies", **HVR) == 0
            assert value(s, "mdtui_uevents_total", host=HOST) == 0  # the world's setup came before
            # the webcam is not shared: no allocator refcount, no owner, left out (not 0)
            assert value(s, "mdtui_allocator_refcount", device="media1") is None
            assert value(s, "mdtui_media_device_info", device="media1", shared="false") == 1

            source.perform(step("unbind au0828 1-1:1.0"))
            wait_for(lambda: value(scrape(server.address), "mdtui_allocator_refcount", **HVR) == 1)
            s = scrape(server.address)
            assert value(s, "mdtui_holders", **HVR, state="bound") == 1
            uevents = value(s, "mdtui_uevents_total", host=HOST)
            assert uevents is not None and uevents > 0

            source.perform(step("unbind snd-usb-audio 1-1:1.1"))  # the last holder: released
            wait_for(lambda: value(scrape(server.address), "mdtui_media_devices", host=HOST) == 1)
            s = scrape(server.address)
            assert value(s, "mdtui_allocator_refcount", **HVR) is None
            assert value(s, "mdtui_media_device_registered", device="media0") is None
            assert value(s, "mdtui_uevents_total", host=HOST) > uevents  # type: ignore[operator]
        assert not thread.is_alive() and source.stops == 1
    finally:
        server.close()
    with pytest.raises(OSError):
        scrape(server.address)


def _serving(proc: subprocess.Popen[str]) -> tuple[str, int]:
    assert proc.stderr is not None
    line = proc.stderr.readline()
    m = re.fullmatch(r"mdtui metrics: serving http://(.+):(\d+)/metrics\n", line)
    assert m, line
    return m[1], int(m[2])


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_cli_listen_serves_and_a_signal_ends_it_cleanly(signum: int) -> None:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    argv = ["metrics", "--source", "sim", "--listen", "127.0.0.1:0", "--host-label", "rack7"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "mdtui", *argv],
        cwd=ROOT,
        env=env,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    try:
        s = scrape(_serving(proc))
        assert value(s, "mdtui_allocator_refcount", **HVR, host="rack7") == 2
        assert value(s, "mdtui_host_up", host="rack7") == 1
        proc.send_signal(signum)
        assert proc.wait(5) == 0
        assert proc.stderr is not None and proc.stderr.read() == ""
    finally:
        proc.kill()
        proc.wait()


def test_a_port_in_use_is_an_error_naming_the_address(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert metrics("--source", "sim", "--listen", f"127.0.0.1:{port}") == 1
    err = capsys.readouterr().err
    assert f"cannot listen on 127.0.0.1:{port}" in err and "(EADDRINUSE)" in err


def test_ipv6_listen(capsys: pytest.CaptureFixture[str]) -> None:
    exporter = Exporter(build(clock=fake_clock())[0], HOST)
    server = Server(*listen_address("[::1]:0"), exporter.registry)
    try:
        host, port = server.address
        assert host == "::1"
        assert value(scrape(("[::1]", port)), "mdtui_allocator_refcount", **HVR) == 2
    finally:
        server.close()
        exporter.close()


# -- the textfile --------------------------------------------------------------------------


def test_once_writes_one_parsable_file_and_exits_0(tmp_path: Path) -> None:
    assert metrics("--source", "sim", "--textfile", str(tmp_path), "--once", "--host-label", "rack7") == 0
    assert os.listdir(tmp_path) == [TEXTFILE]  # no temporary file left
    path = tmp_path / TEXTFILE
    assert path.stat().st_mode & 0o777 == 0o644  # node_exporter runs as another user
    s = parse(path.read_text())
    assert value(s, "mdtui_allocator_refcount", **HVR, host="rack7") == 2
    assert value(s, "mdtui_media_devices", host="rack7") == 2
    assert value(s, "mdtui_host_up", host="rack7") == 1


@pytest.mark.parametrize(
    ("script", "refcount", "bound", "deferred", "open_files"),
    [
        (WORLD, 2, 2, 0, 0),
        (WORLD + "unbind au0828 1-1:1.0\n", 1, 1, 0, 0),
        (WORLD + "open /dev/video0 tvheadend\nunbind au0828 1-1:1.0\n", 2, 1, 1, 1),  # kept by the open file
    ],
)
def test_a_script_changes_the_values(
    tmp_path: Path, script: str, refcount: int, bound: int, deferred: int, open_files: int
) -> None:
    (tmp_path / "s.txt").write_text(script)
    out = tmp_path / "out"
    out.mkdir()
    assert metrics("--source", "sim", "--script", str(tmp_path / "s.txt"), "--textfile", str(out), "--once") == 0
    s = parse((out / TEXTFILE).read_text())
    assert value(s, "mdtui_allocator_refcount", **HVR) == refcount
    assert value(s, "mdtui_holders", **HVR, state="bound") == bound
    assert value(s, "mdtui_holders", **HVR, state="deferred") == deferred
    assert value(s, "mdtui_open_files", **HVR) == open_files
    assert value(s, "mdtui_uevents_total") > 0  # type: ignore[operator]  # the script's, seen by the exporter


def test_the_textfile_is_replaced_atomically(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / TEXTFILE
    path.write_text("old\n")
    calls: list[tuple[str, ...]] = []  # ("fsync", its file) or ("replace", src, dst, what src holds)
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        calls.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(src: str, dst: str) -> None:
        assert path.read_text() == "old\n"  # nobody wrote into the file readers read
        calls.append(("replace", str(src), str(dst), Path(src).read_text()))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    exporter = Exporter(build(clock=fake_clock())[0], HOST)
    try:
        assert Textfile(str(tmp_path), exporter.render).update()
    finally:
        exporter.close()
    (kind, synced), (what, src, dst, written) = calls[:2]
    assert (kind, what) == ("fsync", "replace")
    assert synced == src  # the temporary file reached the disk before the rename
    assert Path(src).parent == tmp_path and not str(src).endswith(".prom")  # node_exporter skips it
    assert dst == str(path) and path.read_text() == written
    assert value(parse(written), "mdtui_allocator_refcount", **HVR) == 2
    assert os.listdir(tmp_path) == [TEXTFILE]


def test_a_failed_rename_leaves_the_old_file_and_no_temporary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / TEXTFILE).write_text("old\n")

    def replace(src: str, dst: str) -> None:
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(TextfileError) as caught:
        Textfile(str(tmp_path), lambda: b"new\n").update()
    assert caught.value.error.errno == errno.EXDEV
    assert os.listdir(tmp_path) == [TEXTFILE] and (tmp_path / TEXTFILE).read_text() == "old\n"


def test_following_rewrites_on_change_and_readers_never_see_part_of_a_file(tmp_path: Path) -> None:
    source = Stops()
    exporter = Exporter(source, HOST)
    textfile = Textfile(str(tmp_path), exporter.render)
    path = tmp_path / TEXTFILE
    seen: list[float | None] = []
    broken: list[str] = []
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            with contextlib.suppress(FileNotFoundError):
                text = path.read_text()
                if not text.rstrip().endswith("mdtui_snapshot_failures_total 0.0"):
                    broken.append(text)
                    continue
                seen.append(value(parse(text), "mdtui_allocator_refcount", **HVR))

    reader = threading.Thread(target=read, daemon=True)
    with following(exporter, textfile.update):
        wait_for(path.exists)
        reader.start()
        wait_for(lambda: 2 in seen)
        source.perform(step("unbind au0828 1-1:1.0"))
        wait_for(lambda: 1 in seen)
        done.set()
        reader.join(5)
    assert not broken
    assert set(seen) == {2, 1} and seen.index(1) > seen.index(2)
    assert os.listdir(tmp_path) == [TEXTFILE]


@pytest.mark.parametrize("once", [["--once"], []])
@pytest.mark.parametrize(("make", "name"), [("file", "ENOTDIR"), ("missing", "ENOENT")])
def test_an_unwritable_directory_is_an_error_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], make: str, name: str, once: list[str]
) -> None:
    target = tmp_path / "dir"
    if make == "file":
        target.write_text("a file, not a directory")
    assert metrics("--source", "sim", "--textfile", str(target), *once) == 1  # following: at the first write
    err = capsys.readouterr().err
    assert f"cannot write {target / TEXTFILE}" in err and f"({name})" in err


def test_a_directory_it_may_not_write_is_eacces(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The kernel's answer to a user without write permission there (root may write
    anywhere, so the refusal is made where the temporary file is created)."""
    import tempfile

    def refused(*args: object, **kwargs: object) -> tuple[int, str]:
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(tmp_path))

    monkeypatch.setattr(tempfile, "mkstemp", refused)
    assert metrics("--source", "sim", "--textfile", str(tmp_path), "--once") == 1
    err = capsys.readouterr().err
    assert f"cannot write {tmp_path / TEXTFILE}" in err and "(EACCES)" in err


# -- usage ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        [],  # neither --listen nor --textfile
        ["--listen", "127.0.0.1:0", "--textfile", "/tmp"],
        ["--listen", "::1:9105"],  # IPv6 without brackets
        ["--listen", "9105"],
        ["--listen", "127.0.0.1:65536"],
    ],
)
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        metrics("--source", "sim", *argv)
    assert caught.value.code == 2
    assert "usage:" in capsys.readouterr().err


def test_once_with_listen_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert metrics("--source", "sim", "--listen", "127.0.0.1:0", "--once") == 2
    assert "--once" in capsys.readouterr().err


def test_listen_addresses() -> None:
    assert listen_address("[::1]:9105") == ("::1", 9105)
    assert listen_address("127.0.0.1:9105") == ("127.0.0.1", 9105)
    assert listen_address(":9105") == ("0.0.0.0", 9105)
    assert listen_address("localhost:0") == ("localhost", 0)


# -- the soak report -----------------------------------------------------------------------


def _soak(tmp_path: Path, *argv: str) -> Path:
    out = io.StringIO()
    main(["soak", "--json", "--loops", "1", *argv], stdout=out)
    path = tmp_path / "soak.json"
    path.write_text(out.getvalue())
    return path


def _with_soak(tmp_path: Path, report: Path) -> Samples:
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    assert metrics("--source", "sim", "--textfile", str(out), "--once", "--soak-report", str(report)) == 0
    return parse((out / TEXTFILE).read_text())


def test_a_passing_soak(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = _soak(tmp_path)
    capsys.readouterr()
    os.utime(report, (1_700_000_000, 1_700_000_000))
    s = _with_soak(tmp_path, report)
    assert capsys.readouterr().err == ""
    assert value(s, "mdtui_soak_report_readable") == 1
    assert value(s, "mdtui_soak_report_timestamp_seconds") == 1_700_000_000
    n = len(json.loads(report.read_text())["scenarios"])
    assert n >= 3 and value(s, "mdtui_soak_scenarios", result="pass") == n
    assert value(s, "mdtui_soak_scenarios", result="fail") == 0
    assert value(s, "mdtui_soak_last_run_failed") == 0
    assert value(s, "mdtui_soak_last_run_info", result="pass", design="mainline", device="media0") == 1


def test_a_failing_soak(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = _soak(tmp_path, "--variant", "v3")  # the 2016 patch: its use-after-free is seen
    capsys.readouterr()
    s = _with_soak(tmp_path, report)
    assert value(s, "mdtui_soak_last_run_failed") == 1
    assert value(s, "mdtui_soak_scenarios", result="fail") >= 1  # type: ignore[operator]
    assert value(s, "mdtui_soak_last_run_info", result="fail", design="v3") == 1


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (None, "(ENOENT)"),
        ('{"format": "mdtui-soak", "version": 1, "scen', "not JSON"),
        ('{"format": "junit"}', "not a soak report"),
        ("", "not JSON (empty)"),
    ],
)
def test_a_missing_or_garbled_report_is_unreadable_with_one_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | None, why: str
) -> None:
    report = tmp_path / "soak.json"
    if content is not None:
        report.write_text(content)
    s = _with_soak(tmp_path, report)
    assert value(s, "mdtui_soak_report_readable") == 0
    assert value(s, "mdtui_soak_last_run_failed") is None
    assert (value(s, "mdtui_soak_report_timestamp_seconds") is None) == (content is None)
    assert value(s, "mdtui_allocator_refcount", **HVR) == 2  # the rest is exported all the same
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and str(report) in lines[0] and why in lines[0]


def test_the_soak_file_warns_once_per_problem(tmp_path: Path) -> None:
    path = tmp_path / "soak.json"
    warnings: list[str] = []
    soak = SoakFile(str(path), warnings.append)
    assert [soak.read().readable for _ in range(3)] == [False] * 3
    assert len(warnings) == 1
    path.write_text(json.dumps({"format": "mdtui-soak", "version": 1, "result": "pass", "scenarios": []}))
    assert soak.read().readable and len(warnings) == 1
    path.write_text("garbled")
    assert not soak.read().readable and len(warnings) == 2


# -- the families, from snapshots no simulated world makes -----------------------------------


def _default() -> SystemSnapshot:
    return build(clock=fake_clock())[0].snapshot()


def test_unknown_values_are_left_out_not_zero() -> None:
    snap = _default()
    hvr = snap.media_devices[0]
    unread = dataclasses.replace(
        hvr,
        devnode=None,
        refcount=None,
        open_files=None,
        hidden_openers=None,
        unread=Unread("denied", "permission denied: /dev/media0 (EACCES on open)", "EACCES"),
    )
    s = render(dataclasses.replace(snap, media_devices=(unread, *snap.media_devices[1:])))
    key = {"device": "1-1", "model": "WinTV HVR-950Q"}  # not registered: named by its key device
    assert value(s, "mdtui_media_device_info", **key) == 1
    for name in ("mdtui_media_device_registered", "mdtui_allocator_refcount", "mdtui_open_files"):
        assert value(s, name, **key) is None, name
    assert value(s, "mdtui_holders", **key, state="bound") is None  # holders mean nothing unread
    assert value(s, "mdtui_hidden_openers", **key) is None
    assert value(s, "mdtui_owner_module_refcnt", **key) == 1  # the module is still read
    assert value(s, "mdtui_media_devices", host=HOST) == 2


def test_several_hosts() -> None:
    snap = _default()
    lab1 = tuple(dataclasses.replace(d, host="lab1", key=f"lab1/{d.key}") for d in snap.media_devices)
    several = dataclasses.replace(
        snap,
        media_devices=lab1,
        hosts=(HostView("lab1", "connected"), HostView("lab2", "disconnected", "ssh: timed out")),
        anomalies=("lab1: WARNING: something", "lab1: another", "lab2: one"),
    )
    # as several sources name an event's device: the host first
    uevent = Event(1, 0.0, "uevent", "info", "lab1/usb 1-1", "add")
    other = Event(2, 0.0, "module", "info", "lab1/au0828", "loaded")
    lost = Event(3, 0.0, "uevent", "info", "lab2: gone", "x")
    s = render(several, Seen().after([uevent, uevent, other, lost], hosts=["lab1", "lab2"]))
    assert value(s, "mdtui_host_up", host="lab1") == 1
    assert value(s, "mdtui_host_up", host="lab2") == 0
    assert value(s, "mdtui_host_up", host=HOST) is None
    assert value(s, "mdtui_media_devices", host="lab1") == 2
    assert value(s, "mdtui_media_devices", host="lab2") is None  # not connected: unknown
    assert value(s, "mdtui_uevents_total", host="lab1") == 2
    assert value(s, "mdtui_uevents_total", host="lab2") == 1
    assert value(s, "mdtui_machine_anomalies", host="lab1") == 2
    assert value(s, "mdtui_machine_anomalies", host="lab2") is None  # not connected: unknown
    assert value(s, "mdtui_allocator_refcount", **{**HVR, "host": "lab1"}) == 2
    assert value(s, "mdtui_media_device_info", host="lab1", device="media0", key="1-1") == 1


@pytest.mark.parametrize(("host_label", "expected"), [(None, "board-a"), ("rack7", "rack7")])
def test_one_remote_host_labels_its_devices(host_label: str | None, expected: str) -> None:
    """One ssh source: its devices have no host of their own; they are on the host it reads."""
    snap = dataclasses.replace(_default(), hosts=(HostView("board-a", "connected"),))
    s = render(snap, Seen().after([Event(1, 0.0, "uevent", "info", "usb 1-1", "add")]), host_label=host_label)
    assert value(s, "mdtui_allocator_refcount", **HVR, host=expected) == 2
    assert value(s, "mdtui_media_devices", host=expected) == 2
    assert value(s, "mdtui_host_up", host=expected) == 1
    assert value(s, "mdtui_uevents_total", host=expected) == 1
    assert len(s["mdtui_host_up"]) == 1 and len(s["mdtui_media_devices"]) == 1


def test_every_family_has_help_and_follows_the_naming_conventions() -> None:
    names = {f.name: f.type for f in families(_default(), Seen(), local_host=HOST)}
    assert all(n.startswith("mdtui_") for n in names)
    assert {n for n, t in names.items() if t == "counter"} == {"mdtui_uevents", "mdtui_snapshot_failures"}
    assert all(not n.endswith("_total") for n in names)  # the exposition adds it to counters
    assert "mdtui_media_device_info" in names

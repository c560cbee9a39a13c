"""Bug-report bundles (issue #12): ``mdtui dump --bundle FILE`` writes them, ``--source
bundle:FILE`` shows them again; state.json's lossless serialization (mdtui/persist.py);
hostile bundles and failed writes are one line and exit 1; the TUI on a bundle shows what
the TUI showed on the machine it was made from."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import errno
import gzip
import io
import json
import os
import re
import subprocess
import sys
import tarfile
import types
import typing
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from allocator import KernelError
from allocator.mc.topology import Topology
from mdtui import bundle, persist
from mdtui.app import MdtuiApp
from mdtui.cli import main
from mdtui.live.sysfs import Sysfs
from mdtui.model import HolderView, MediaDeviceView, SystemSnapshot, Unread
from mdtui.render import jsondump, text
from mdtui.scenarios import SCENARIOS, make_app, run_before, settle
from mdtui.script import parse
from mdtui.sources import bundle as bundle_source
from mdtui.sources.bundle import BundleError, BundleSource
from mdtui.sources.live import LiveSource
from mdtui.sources.sim import build, fake_clock

from .conftest import step

TOP = "mdtui-bundle"
OPEN_AND_UNBIND = """\
modprobe au0828
modprobe snd_usb_audio
plug hvr950q
open /dev/video0 tvheadend
unbind au0828 1-1:1.0
"""
MADE = datetime.datetime(2025, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)


def run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    rc = main(list(argv), clock=fake_clock(), stdout=out)
    return rc, out.getvalue()


def members(path: Path) -> dict[str, bytes]:
    """Every regular member of a bundle, by name, read with tarfile (as anybody would)."""
    with tarfile.open(path, "r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]


def member(path: Path, name: str) -> str:
    return members(path)[f"{TOP}/{name}"].decode()


# -- writing a bundle ---------------------------------------------------------------------------


def test_default_world_bundle_holds_every_file_in_one_top_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "report.tar.gz"
    assert run("dump", "--source", "sim", "--bundle", str(out)) == (0, "")
    assert capsys.readouterr().err == f"mdtui: wrote {out}: 13 files, 2 media devices\n"
    with tarfile.open(out, "r:gz") as tar:
        infos = tar.getmembers()
    names = [i.name for i in infos]
    assert names[:3] == [TOP, f"{TOP}/devices", f"{TOP}/README.txt"]
    assert sorted(n for n, i in zip(names, infos, strict=True) if i.isfile()) == sorted(
        f"{TOP}/{n}"
        for n in (
            "README.txt",
            "versions.txt",
            "modules.txt",
            "open-files.txt",
            "kernel-log.txt",
            "snapshot.json",
            "state.json",
            *(f"devices/media{i}.{ext}" for i in (0, 1) for ext in ("txt", "json", "dot")),
        )
    )
    for info in infos:  # safe to extract anywhere: relative, no "..", plain files and directories
        assert not info.name.startswith("/") and ".." not in info.name.split("/")
        assert info.isfile() or info.isdir()
        assert (info.uid, info.gid, info.mode) == (0, 0, 0o644 if info.isfile() else 0o755)

    files = members(out)
    source, _ = build(clock=fake_clock())
    snap = source.snapshot()
    # each device's files are what `dump` prints for it
    for dev in snap.media_devices:
        name = dev.name
        _, printed_text = run("dump", "--source", "sim", "--device", name)
        assert files[f"{TOP}/devices/{name}.txt"].decode() == printed_text
        _, printed_dot = run("dump", "--source", "sim", "--format", "dot", "--device", name)
        assert files[f"{TOP}/devices/{name}.dot"].decode() == printed_dot
        assert json.loads(files[f"{TOP}/devices/{name}.json"]) == jsondump.device(dev, snap)
    _, printed_json = run("dump", "--source", "sim", "--format", "json")
    assert json.loads(files[f"{TOP}/snapshot.json"]) == json.loads(printed_json)
    assert BundleSource(str(out)).stored == snap

    readme = files[f"{TOP}/README.txt"].decode()
    assert f"Command line: mdtui dump --source sim --bundle {out}" in readme
    assert "by mdtui 0.1.0" in readme and "Source: sim (simulated kernel 6.12.0 (allocator: mainline))" in readme
    for name in names[2:]:  # every file is explained
        assert name.removeprefix(f"{TOP}/") in readme
    assert "Could not be read\n-----------------\nnothing: everything mdtui looks for was read\n" in readme

    versions = files[f"{TOP}/versions.txt"].decode()
    assert versions.startswith("kernel    6.12.0 (the simulated kernel)\nmdtui     0.1.0\npython    3.")
    assert "textual   8.2.8\n" in versions and "pyudev    0.24.5\n" in versions

    modules = files[f"{TOP}/modules.txt"].decode().splitlines()
    assert modules[0].split() == ["module", "refcnt", "used", "by"]
    assert ["mc", "5", "videodev", "dvb_core", "au0828", "snd_usb_audio", "uvcvideo"] in [m.split() for m in modules]
    assert len(modules) == 1 + len(snap.modules)

    log = files[f"{TOP}/kernel-log.txt"].decode()
    assert log.startswith("# the simulated kernel's log and events")
    assert "trace   usb 1-1: __media_device_get: Allocated media device for owner au0828" in log
    assert "open-files.txt" in readme and "media0: WinTV HVR-950Q (key 1-1)\n  none\n  hidden_openers: 0" in (
        files[f"{TOP}/open-files.txt"].decode()
    )


def test_an_open_file_and_an_unbind_are_in_every_file(tmp_path: Path) -> None:
    script = tmp_path / "life.txt"
    script.write_text(OPEN_AND_UNBIND)
    out = tmp_path / "b.tar.gz"
    assert run("dump", "--source", "sim", "--script", str(script), "--bundle", str(out))[0] == 0
    files = {k.removeprefix(f"{TOP}/"): v.decode() for k, v in members(out).items()}
    assert set(files) >= {"devices/media0.txt", "devices/media0.json", "devices/media0.dot"}
    opened = files["open-files.txt"]
    assert "  pid 1000 tvheadend (user) fd 3 /dev/video0 (deleted) rw since " in opened
    assert "Every open file on a device node (the simulated kernel's list)" in opened
    dev = json.loads(files["devices/media0.json"])
    au0828 = next(h for h in dev["holders"] if h["driver"] == "au0828")
    assert au0828["state"] == "deferred"
    assert [(k["pid"], k["comm"], k["node"]) for k in au0828["kept_by"]] == [
        (1000, "tvheadend", "/dev/video0 (deleted)")
    ]
    assert [(f["pid"], f["comm"], f["fd"], f["mode"]) for f in dev["open_files"]] == [(1000, "tvheadend", 3, "rw")]
    assert "reference kept by /dev/video0 (deleted), open in pid 1000 (tvheadend)" in files["devices/media0.txt"]
    assert "uevent  unbind /devices/pci0000:00/0000:00:14.0/usb1/1-1/1-1:1.0 (usb)\n" in files["kernel-log.txt"]
    # and back: exactly the state the simulation had
    source, _ = build(parse(OPEN_AND_UNBIND), clock=fake_clock())
    stored = BundleSource(str(out)).stored
    assert stored == source.snapshot()
    assert stored.media_devices[0].holders[0].kept_by  # (not equal by being empty)


def test_refused_steps_are_in_the_readme_and_snapshot_and_exit_1(tmp_path: Path) -> None:
    script = tmp_path / "life.txt"
    script.write_text(OPEN_AND_UNBIND + "rmmod au0828\n")
    out = tmp_path / "b.tar.gz"
    assert run("dump", "--source", "sim", "--script", str(script), "--bundle", str(out))[0] == 1
    assert "- line 6: rmmod au0828: EBUSY: rmmod: ERROR: Module au0828 is in use" in member(out, "README.txt")
    assert json.loads(member(out, "snapshot.json"))["refused_steps"][0]["errno_name"] == "EBUSY"


def test_what_could_not_be_read_is_named(tmp_path: Path) -> None:
    source, _ = build(clock=fake_clock())
    snap = source.snapshot()
    hvr, cam = snap.media_devices
    denied = Unread("denied", "permission denied: /dev/media0 (EACCES on open)", "EACCES")
    snap = dataclasses.replace(
        snap,
        media_devices=(
            dataclasses.replace(hvr, unread=denied, hidden_openers=3),
            dataclasses.replace(cam, open_files=None, hidden_openers=None),
        ),
    )
    files = {m.name: m.data.decode() for m in bundle.members(source, snap, command="mdtui dump --bundle x", made=MADE)}
    readme = files["README.txt"]
    unread = readme.split("Could not be read\n-----------------\n", 1)[1].splitlines()
    assert unread == [
        "- media0: what the media ioctls tell: permission denied: /dev/media0 (EACCES on open)",
        "- media0: 3 processes hidden (permission): run as root to see them",
        "- media1: open files: not looked for by this source",
    ]
    assert "Made 2025-01-02 03:04:05 UTC by mdtui 0.1.0" in readme
    assert "  hidden_openers: 3: run as root to see them" in files["open-files.txt"]
    assert "  not looked for by this source\n  hidden_openers: unknown" in files["open-files.txt"]
    assert "holders           unknown (permission denied: /dev/media0 (EACCES on open))" in files["devices/media0.txt"]


def test_the_kernel_log_from_kmsg_keeps_what_concerns_media_and_reports(tmp_path: Path) -> None:
    records = [
        "6,1,1000000,-;Linux version 6.8.0",
        "6,2,1500000,-;usb 1-1: new high-speed USB device number 2 using xhci_hcd",
        " SUBSYSTEM=usb",  # a continuation line of the record before
        " DEVICE=c189:1",
        "6,3,1600000,-;au0828: i2c bus registered",
        "6,4,1700000,-;EXT4-fs (sda1): mounted filesystem",
        "4,5,2000000,-;------------[ cut here ]------------",
        "4,6,2000001,-;refcount_t: underflow; use-after-free.",
        "4,7,2000002,-;WARNING: CPU: 0 PID: 1 at lib/refcount.c:28 refcount_warn_saturate+0x1/0x2",
        "4,8,2000003,-;Modules linked in: au0828 snd_usb_audio",
        "4,9,2000004,-;Call Trace:",
        "4,10,2000005,-; <TASK>",
        "4,11,2000006,-; media_device_delete+0x10/0x20 [mc]",
        "4,12,2000007,-;---[ end trace 0000000000000000 ]---",
        "6,13,3000000,-;systemd[1]: Started something",
        "not a record",
    ]
    kmsg = tmp_path / "kmsg"
    kmsg.write_text("".join(r + "\n" for r in records))
    log = bundle.read_kmsg(str(kmsg))
    assert log.unreadable is None
    assert log.lines == [
        "[    1.500000] usb 1-1: new high-speed USB device number 2 using xhci_hcd",
        "[    1.600000] au0828: i2c bus registered",
        "[    2.000000] ------------[ cut here ]------------",
        "[    2.000001] refcount_t: underflow; use-after-free.",
        "[    2.000002] WARNING: CPU: 0 PID: 1 at lib/refcount.c:28 refcount_warn_saturate+0x1/0x2",
        "[    2.000003] Modules linked in: au0828 snd_usb_audio",
        "[    2.000004] Call Trace:",
        "[    2.000005]  <TASK>",
        "[    2.000006]  media_device_delete+0x10/0x20 [mc]",
        "[    2.000007] ---[ end trace 0000000000000000 ]---",
    ]
    assert bundle.read_kmsg(str(kmsg), keep=2).lines == log.lines[-2:]  # the last ones
    missing = bundle.read_kmsg(str(tmp_path / "nowhere"))
    assert (missing.lines, missing.unreadable) == ([], f"{tmp_path}/nowhere: No such file or directory (ENOENT)")
    broken = bundle.read_kmsg(str(tmp_path))  # a directory opens, and its read fails
    assert broken.unreadable == f"{tmp_path}: read: Is a directory (EISDIR) (what was read before is kept)"


def test_a_live_source_reads_the_kernel_log_and_says_why_not(tmp_path: Path) -> None:
    live = LiveSource(Sysfs(tmp_path / "sys", tmp_path / "dev"))
    source, _ = build(clock=fake_clock())
    snap = dataclasses.replace(
        source.snapshot(), media_devices=(dataclasses.replace(source.snapshot().media_devices[0], hidden_openers=2),)
    )
    files = {m.name: m.data.decode() for m in bundle.members(live, snap, kmsg_path=str(tmp_path / "kmsg"))}
    unread = files["README.txt"].split("Could not be read\n-----------------\n", 1)[1].splitlines()
    hint = "not readable even as root" if os.geteuid() == 0 else "run as root to see them"
    assert unread == [
        f"- kernel log: {tmp_path}/kmsg: No such file or directory (ENOENT)",
        f"- media0: 2 processes hidden (permission): {hint}",
    ]
    assert files["kernel-log.txt"].endswith(f"(nothing: {tmp_path}/kmsg: No such file or directory (ENOENT))\n")
    (tmp_path / "kmsg").write_text("6,1,1000000,-;EXT4-fs (sda1): mounted\n6,2,2000000,-;uvcvideo: Found UVC 1.00\n")
    files = {m.name: m.data.decode() for m in bundle.members(live, snap, kmsg_path=str(tmp_path / "kmsg"))}
    assert files["kernel-log.txt"].splitlines()[1:] == ["[    2.000000] uvcvideo: Found UVC 1.00"]
    (tmp_path / "kmsg").write_text("6,1,1000000,-;EXT4-fs (sda1): mounted\n")
    files = {m.name: m.data.decode() for m in bundle.members(live, snap, kmsg_path=str(tmp_path / "kmsg"))}
    assert files["kernel-log.txt"].splitlines()[1:] == ["(nothing: none of the 1 lines read matched)"]


def test_hostile_device_names_make_safe_member_names(tmp_path: Path) -> None:
    taken: set[str] = set()
    assert [
        bundle.safe_name(n, taken)
        for n in ("media0", "../../etc/passwd", "(1-1)", "\x1b[2Jevil\n", "..", "", "MEDIA0", "a" * 300)
    ] == ["media0", "etc_passwd", "1-1", "2Jevil", "device", "device-2", "MEDIA0-2", "a" * bundle.NAME_MAX]
    source, _ = build(clock=fake_clock())
    snap = source.snapshot()
    hvr, cam = snap.media_devices
    snap = dataclasses.replace(
        snap,
        media_devices=(
            dataclasses.replace(hvr, devnode=None, media="../../../tmp/x\n"),
            dataclasses.replace(cam, devnode="/dev/../../../root/.bashrc"),
        ),
    )
    out = tmp_path / "b.tar.gz"
    bundle.write_bundle(str(out), source, snap, command="test", made=MADE)
    names = sorted(members(out))
    assert f"{TOP}/devices/tmp_x.txt" in names and f"{TOP}/devices/bashrc.txt" in names
    assert all(n.startswith(f"{TOP}/") and ".." not in n.split("/") and "\n" not in n for n in names)
    assert BundleSource(str(out)).stored == snap


# -- writing: failures and usage ----------------------------------------------------------------


def test_a_bundle_to_a_pipe_is_the_archive_alone(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mdtui", "dump", "--source", "sim", "--bundle", "/dev/stdout"],
        capture_output=True,
        timeout=60,
    )
    assert (done.returncode, done.stderr) == (0, b"mdtui: wrote /dev/stdout: 13 files, 2 media devices\n")
    path = tmp_path / "piped.tar.gz"
    path.write_bytes(done.stdout)
    assert len(members(path)) == 13 and BundleSource(str(path)).stored.source == "sim"


def test_cannot_write_is_one_line_and_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    where = tmp_path / "no" / "such" / "dir.tar.gz"
    assert run("dump", "--source", "sim", "--bundle", str(where)) == (1, "")
    assert capsys.readouterr().err == f"mdtui: cannot write {where}: No such file or directory (ENOENT)\n"
    assert run("dump", "--source", "sim", "--bundle", "/dev/full") == (1, "")  # written straight: not replaced
    assert capsys.readouterr().err == "mdtui: cannot write /dev/full: No space left on device (ENOSPC)\n"
    assert Path("/dev/full").is_char_device()
    assert run("dump", "--source", "sim", "--bundle", str(tmp_path)) == (1, "")
    assert capsys.readouterr().err == f"mdtui: cannot write {tmp_path}: Is a directory (EISDIR)\n"


def test_a_failed_write_leaves_the_old_file_and_no_temporary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "b.tar.gz"
    out.write_bytes(b"the old report")
    out.chmod(0o640)

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(bundle.os, "fsync", full)
    assert run("dump", "--source", "sim", "--bundle", str(out)) == (1, "")
    assert capsys.readouterr().err == f"mdtui: cannot write {out}: No space left on device (ENOSPC)\n"
    assert [p.name for p in tmp_path.iterdir()] == ["b.tar.gz"] and out.read_bytes() == b"the old report"
    monkeypatch.undo()
    assert run("dump", "--source", "sim", "--bundle", str(out))[0] == 0
    assert [p.name for p in tmp_path.iterdir()] == ["b.tar.gz"]
    assert oct(out.stat().st_mode & 0o777) == oct(0o640)  # an existing file keeps its mode
    assert BundleSource(str(out)).stored.source == "sim"


def test_a_new_bundle_follows_the_umask(tmp_path: Path) -> None:
    out = tmp_path / "b.tar.gz"
    mask = os.umask(0o027)
    try:
        assert run("dump", "--source", "sim", "--bundle", str(out))[0] == 0
    finally:
        os.umask(mask)
    assert out.stat().st_mode & 0o777 == 0o640


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--bundle", "-"), "--bundle -: name a file"),
        (("--bundle", ""), "--bundle: name a file"),
        (("--bundle", "x.tar.gz", "--format", "json"), "--bundle writes every format"),
    ],
)
def test_bundle_usage_errors_exit_2(args: tuple[str, ...], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run("dump", "--source", "sim", *args) == (2, "")
    err = capsys.readouterr().err
    assert err.startswith(f"mdtui: {message}") and err.count("\n") == 1


def test_source_accepts_bundle_file_and_refuses_the_rest(capsys: pytest.CaptureFixture[str]) -> None:
    for bad in ("bogus", "bundle:", "bundle"):
        with pytest.raises(SystemExit) as exit_:
            main(["dump", "--source", bad])
        assert exit_.value.code == 2
        assert "choose sim, live, auto, bundle:FILE or ssh:[USER@]HOST[:PORT]" in capsys.readouterr().err
    for command in ((), ("dump",)):
        with pytest.raises(SystemExit):
            main([*command, "--help"])
        shown = capsys.readouterr().out
        assert "{sim,live,auto,bundle:FILE,ssh:[USER@]HOST[:PORT]}" in shown
        assert "mdtui --source bundle:mdtui-report.tar.gz" in shown
    with pytest.raises(SystemExit):
        main(["dump", "--help"])
    assert "--bundle FILE" in capsys.readouterr().out


def test_watch_and_script_on_a_bundle_are_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "b.tar.gz"
    assert run("dump", "--source", "sim", "--bundle", str(out))[0] == 0
    capsys.readouterr()
    assert run("watch", "--source", f"bundle:{out}") == (2, "")
    assert "a bundle has no events to watch" in capsys.readouterr().err
    assert run("dump", "--source", f"bundle:{out}", "--script", str(out)) == (2, "")
    assert "a bundle is read-only" in capsys.readouterr().err


# -- reading a bundle ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def made_bundle(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SystemSnapshot]:
    path = tmp_path_factory.mktemp("bundle") / "life.tar.gz"
    source, _ = build(parse(OPEN_AND_UNBIND), clock=fake_clock())
    snap = source.snapshot()
    bundle.write_bundle(str(path), source, snap, command="mdtui dump --bundle life.tar.gz", made=MADE)
    return path, snap


def test_dump_of_a_bundle_prints_what_dump_printed(made_bundle: tuple[Path, SystemSnapshot]) -> None:
    path, snap = made_bundle
    note = "bundle life.tar.gz: sim state of 2025-01-02 03:04:05 UTC (mdtui 0.1.0), read-only"
    rc, shown = run("dump", "--source", f"bundle:{path}")
    assert (rc, shown) == (0, text.render(dataclasses.replace(snap, notes=(note, *snap.notes))))
    source = BundleSource(str(path))
    assert source.snapshot().notes == (note, *snap.notes)
    assert source.stored == snap and dataclasses.replace(source.snapshot(), notes=snap.notes) == snap
    assert (source.read_only, source.simulated, source.history(), source.filenos()) == (True, False, [], [])
    rc, shown = run("dump", "--source", f"bundle:{path}", "--format", "json", "--device", "tvheadend")
    assert rc == 1  # --device works on a bundle as on any source (no such device: exit 1)
    rc, shown = run("dump", "--source", f"bundle:{path}", "--format", "json", "--device", "media0")
    assert rc == 0 and [d["devnode"] for d in json.loads(shown)["media_devices"]] == ["/dev/media0"]


def test_every_action_on_a_bundle_is_refused_with_erofs(made_bundle: tuple[Path, SystemSnapshot]) -> None:
    source = BundleSource(str(made_bundle[0]))
    for line in ("unbind snd-usb-audio 1-1:1.1", "plug hvr950q", "rmmod au0828", "close /dev/video0"):
        with pytest.raises(KernelError) as refused:
            source.perform(step(line))
        assert refused.value.errno == errno.EROFS
        assert (
            str(refused.value)
            == f"{line}: life.tar.gz is a bug-report bundle: what it recorded cannot be changed (EROFS)"
        )


def test_a_bundle_made_from_a_bundle_says_where_its_kernel_log_is(
    made_bundle: tuple[Path, SystemSnapshot], tmp_path: Path
) -> None:
    again = tmp_path / "again.tar.gz"
    assert run("dump", "--source", f"bundle:{made_bundle[0]}", "--bundle", str(again))[0] == 0
    assert "- kernel log: not read: the state comes from life.tar.gz (see its kernel-log.txt)" in member(
        again, "README.txt"
    )
    assert member(again, "versions.txt").startswith("kernel    6.12.0 (as the bundle recorded it)\n")
    assert BundleSource(str(again)).stored == BundleSource(str(made_bundle[0])).snapshot()


def _tar(files: dict[str, bytes], *, compress: bool = True) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(buf.getvalue()) if compress else buf.getvalue()


def _state(made_bundle: tuple[Path, SystemSnapshot], change: Any = None) -> bytes:
    doc = json.loads(members(made_bundle[0])[f"{TOP}/state.json"])
    if change is not None:
        change(doc)
    return json.dumps(doc).encode()


def _huge_header() -> bytes:
    """A tar whose state.json says it is 1 TiB (and is not there at all)."""
    info = tarfile.TarInfo(f"{TOP}/state.json")
    info.size = 1 << 40
    return gzip.compress(info.tobuf(format=tarfile.GNU_FORMAT))


def _symlink() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo(f"{TOP}/state.json")
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(info)
    return gzip.compress(buf.getvalue())


HOSTILE: dict[str, tuple[Any, str]] = {
    "missing": (None, "cannot open bundle {path}: No such file or directory (ENOENT)"),
    "directory": ("dir", "cannot open bundle {path}: Is a directory (EISDIR)"),
    "/dev/zero": ("/dev/zero", "{path}: not a bundle: not a gzip file"),
    "empty": (b"", "{path}: not a bundle: not a gzip file"),
    "text": (b"hello, world\n", "{path}: not a bundle: not a gzip file"),
    "a bare tar": (lambda mb: _tar({f"{TOP}/state.json": _state(mb)}, compress=False), "not a gzip file"),
    "gzip, not a tar": (gzip.compress(b"hello" * 1000), "{path}: not a bundle: not a tar archive inside the gzip"),
    "gzip of nothing": (gzip.compress(b""), "{path}: not a bundle: not a tar archive inside the gzip"),
    "gzip of zeros": (gzip.compress(bytes(1 << 20)), "{path}: not an mdtui bundle: it has no state.json"),
    "cut short": (lambda mb: made_bundle_bytes(mb)[:2000], "{path}: not a bundle: the gzip file is cut short"),
    "broken gzip": (lambda mb: made_bundle_bytes(mb)[:20] + b"\xff" * 64, "{path}: not a bundle: a broken gzip"),
    "no state.json": (_tar({f"{TOP}/README.txt": b"hi"}), "{path}: not an mdtui bundle: it has no state.json"),
    "state.json at the top": (
        lambda mb: _tar({"state.json": _state(mb)}),
        "{path}: not an mdtui bundle: it has no state.json",
    ),
    "huge member": (_huge_header(), "{path}: mdtui-bundle/state.json is 1099511627776 bytes: over the 128 MiB"),
    "symlink": (_symlink(), "{path}: mdtui-bundle/state.json is not a regular file"),
    "garbage JSON": (_tar({f"{TOP}/state.json": b"{'not': json"}), "{path}: state.json: not JSON: "),
    "not UTF-8": (_tar({f"{TOP}/state.json": b"\xff\xfe\xfa"}), "{path}: state.json: not JSON: "),
    "deep JSON": (_tar({f"{TOP}/state.json": b"[" * 200_000}), "{path}: state.json: not JSON"),
    "NaN": (_tar({f"{TOP}/state.json": b"[NaN]"}), "{path}: state.json: not JSON that mdtui wrote: NaN"),
    "another format": (_tar({f"{TOP}/state.json": b'{"format": "x"}'}), "not an mdtui state document (format"),
    "newer version": (
        lambda mb: _tar({f"{TOP}/state.json": _state(mb, lambda d: d.update(version=2))}),
        "{path}: state.json: version 2 is not supported (written by a newer mdtui?): this mdtui reads version 1",
    ),
    "wrong type": (
        lambda mb: _tar(
            {f"{TOP}/state.json": _state(mb, lambda d: d["snapshot"]["media_devices"][0].update(refcount="2"))}
        ),
        '{path}: state.json: snapshot.media_devices[0].refcount: expected int, got "2"',
    ),
    "unknown field": (
        lambda mb: _tar({f"{TOP}/state.json": _state(mb, lambda d: d["snapshot"]["modules"][1].update(size=3))}),
        "{path}: state.json: snapshot.modules[1].size: unknown field in ModuleView (written by a newer mdtui?)",
    ),
    "entity_legacy not aligned": (
        lambda mb: _tar(
            {f"{TOP}/state.json": _state(mb, lambda d: d["snapshot"]["media_devices"][0]["entity_legacy"].pop())}
        ),
        "{path}: state.json: snapshot.media_devices[0].entity_legacy: 6 entries for 7 entities",
    ),
    "ids that do not match": (
        lambda mb: _tar(
            {
                f"{TOP}/state.json": _state(
                    mb, lambda d: d["snapshot"]["media_devices"][0]["topology"]["entities"][0].update(id=None)
                )
            }
        ),
        "{path}: state.json: snapshot.media_devices[0].topology.entities[0].id: expected int, got null",
    ),
    "bad made": (
        lambda mb: _tar({f"{TOP}/state.json": _state(mb, lambda d: d.update(made=[1]))}),
        "{path}: state.json: made: expected an object of strings",
    ),
}


def made_bundle_bytes(made_bundle: tuple[Path, SystemSnapshot]) -> bytes:
    return made_bundle[0].read_bytes()


@pytest.mark.parametrize("case", list(HOSTILE))
def test_a_hostile_bundle_is_one_line_and_exit_1(
    case: str,
    made_bundle: tuple[Path, SystemSnapshot],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    content, message = HOSTILE[case]
    path = tmp_path / "bad.tar.gz"
    if callable(content):
        content = content(made_bundle)
    if content == "dir":
        path.mkdir()
    elif isinstance(content, str):
        path = Path(content)
    elif content is not None:
        path.write_bytes(content)
    for command in (["dump"], ["dump", "--format", "json"], []):  # [] is the TUI: refused before it starts
        assert run(*command, "--source", f"bundle:{path}") == (1, "")
        err = capsys.readouterr().err
        assert err.startswith("mdtui: ") and err.count("\n") == 1 and err.endswith("\n"), err
        assert message.format(path=path) in err, err
        assert "Traceback" not in err


def test_a_state_no_renderer_can_show_is_refused_before_it_is_shown(
    made_bundle: tuple[Path, SystemSnapshot], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(snap: SystemSnapshot) -> str:
        raise KeyError(4242)

    monkeypatch.setattr(text, "render", broken)  # (what a state whose ids do not match would do)
    for command in (["dump", "--format", "json"], []):
        assert run(*command, "--source", f"bundle:{made_bundle[0]}") == (1, "")
        assert capsys.readouterr().err == (
            f"mdtui: {made_bundle[0]}: state.json: a state mdtui cannot show (KeyError(4242))\n"
        )


def test_a_gzip_bomb_is_read_no_further_than_the_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, made_bundle: tuple[Path, SystemSnapshot]
) -> None:
    # a member of 8 MiB of zeros before state.json: read through, up to the limit only
    path = tmp_path / "bomb.tar.gz"
    path.write_bytes(_tar({f"{TOP}/zeros": bytes(8 << 20), f"{TOP}/state.json": _state(made_bundle)}))
    assert BundleSource(str(path)).stored == made_bundle[1]
    monkeypatch.setattr(bundle_source, "MAX_DECOMPRESSED", 4 << 20)
    with pytest.raises(BundleError, match=r"not a bundle mdtui reads: over 4 MiB uncompressed before state.json"):
        BundleSource(str(path))
    monkeypatch.setattr(bundle_source, "MAX_COMPRESSED", 4096)
    with pytest.raises(BundleError, match=r"over 0 MiB before state.json"):
        BundleSource(str(path))
    monkeypatch.setattr(bundle_source, "MAX_MEMBERS", 1)
    monkeypatch.setattr(bundle_source, "MAX_COMPRESSED", 1 << 30)
    monkeypatch.setattr(bundle_source, "MAX_DECOMPRESSED", 1 << 30)
    with pytest.raises(BundleError, match=r"no state.json among the first 1 members"):
        BundleSource(str(path))


def test_a_hostile_bundle_in_a_real_process(tmp_path: Path) -> None:
    path = tmp_path / "zero.tar.gz"
    path.write_bytes(gzip.compress(b"\0" * 4096) + b"trailing garbage")
    for argv in (["dump", "--source", f"bundle:{path}"], ["--source", f"bundle:{path}"]):
        done = subprocess.run(
            [sys.executable, "-m", "mdtui", *argv], capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL
        )
        assert (done.returncode, done.stdout) == (1, "")
        assert done.stderr == f"mdtui: {path}: not a bundle: a broken gzip file (Not a gzipped file (b'tr'))\n"


# -- persist: lossless, strict ------------------------------------------------------------------


def test_persist_round_trips_every_scenario_state() -> None:
    for script in ("", OPEN_AND_UNBIND, OPEN_AND_UNBIND + "unbind snd-usb-audio 1-1:1.1\nclose /dev/video0\n"):
        source, _ = build(parse(script) if script else None, clock=fake_clock())
        snap = source.snapshot()
        assert persist.load(persist.dump(snap)) == snap


def test_persist_errors_name_the_path() -> None:
    source, _ = build(parse(OPEN_AND_UNBIND), clock=fake_clock())
    doc = json.loads(persist.dump(source.snapshot()))
    kept = source.snapshot().media_devices[0].holders[0].kept_by[0]

    def fails(change: Any) -> str:
        bad = json.loads(json.dumps(doc))
        change(bad)
        with pytest.raises(persist.FormatError) as exc:
            persist.read_document(bad)
        return str(exc.value)

    snap = "snapshot.media_devices[0]"
    assert fails(lambda d: d["snapshot"]["media_devices"][0]["holders"][0].update(state=3)) == (
        f"{snap}.holders[0].state: expected str, got 3"
    )
    assert fails(lambda d: d["snapshot"]["media_devices"][0]["holders"][0]["kept_by"][0].pop("pid")) == (
        f"{snap}.holders[0].kept_by[0].pid: missing field of {type(kept).__name__}"
    )
    assert fails(lambda d: d["snapshot"]["media_devices"][0]["devnames"][0].__setitem__(0, [1, "x"])) == (
        f'{snap}.devnames[0][0][1]: expected int, got "x"'
    )
    assert fails(
        lambda d: d["snapshot"]["media_devices"][0]["devnames"].append(d["snapshot"]["media_devices"][0]["devnames"][0])
    ).startswith(f"{snap}.devnames[{len(doc['snapshot']['media_devices'][0]['devnames'])}]: the key")
    assert fails(lambda d: d["snapshot"]["media_devices"][0]["entity_legacy"][0].append(0)) == (
        f"{snap}.entity_legacy[0]: expected 3 items, got 4"
    )
    assert fails(lambda d: d["snapshot"]["media_devices"][0]["topology"]["links"][5].update(flags=True)) == (
        f"{snap}.topology.links[5].flags: expected int, got true"
    )
    assert fails(lambda d: d["snapshot"]["media_devices"][0]["open_files"][0].update(since=1e999)).endswith(
        "open_files[0].since: expected a finite float, got inf"
    )
    assert fails(lambda d: d["snapshot"]["media_devices"][0].update(inferred="refcount")) == (
        f'{snap}.inferred: expected a list, got "refcount"'
    )
    assert fails(lambda d: d.update(version="1")) == 'version: expected an integer version, got "1"'
    assert fails(lambda d: d.pop("snapshot")) == "snapshot: no snapshot in the document"
    # a field missing that has a default takes it (a snapshot written before the field was added)
    old = json.loads(json.dumps(doc))
    del old["snapshot"]["media_devices"][0]["hidden_openers"]
    assert persist.read_document(old)[0].media_devices[0].hidden_openers is None
    with pytest.raises(TypeError, match="cannot serialize"):
        persist.codec(list[int])
    with pytest.raises(TypeError, match=r"only X \| None unions"):
        persist.codec(int | str)


def test_persist_refuses_a_snapshot_that_breaks_the_model() -> None:
    source, _ = build(clock=fake_clock())
    snap = source.snapshot()
    bad = dataclasses.replace(snap, modules=[*snap.modules])  # a list where the model says tuple
    with pytest.raises(persist.FormatError, match=r"^snapshot.modules: expected a tuple, got a list$"):
        persist.dump(bad)
    nan = dataclasses.replace(
        snap,
        open_files=(),
        media_devices=(
            dataclasses.replace(
                snap.media_devices[0],
                holders=(HolderView("au0828", "au0828", "1-1:1.0", "deferred", "x", float("nan")),),
            ),
        ),
    )
    with pytest.raises(persist.FormatError, match=r"holders\[0\].unbound_at: expected a finite float, got nan"):
        persist.dump(nan)
    # the bundle is still written, without state.json, and says why
    files = {m.name: m for m in bundle.members(source, bad, made=MADE)}
    assert "state.json" not in files
    assert "- state.json (for --source bundle:): not written: snapshot.modules: expected a tuple, got a list" in (
        files["README.txt"].data.decode()
    )


def strategy(tp: Any) -> st.SearchStrategy[Any]:
    """Values of any annotation persist takes, from the annotations (as persist reads them)."""
    if tp is int:
        return st.integers(-(2**63), 2**63)
    if tp is float:
        return st.floats(allow_nan=False, allow_infinity=False)
    if tp is str:
        return st.text(max_size=8)  # surrogates too: a file name that is not UTF-8
    if tp is bool:
        return st.booleans()
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return st.none() | strategy(next(a for a in args if a is not type(None)))
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return st.lists(strategy(args[0]), max_size=2).map(tuple)
        return st.tuples(*map(strategy, args))
    if origin is frozenset:
        return st.frozensets(strategy(args[0]), max_size=3)
    if origin is dict:
        return st.dictionaries(strategy(args[0]), strategy(args[1]), max_size=2)
    hints = typing.get_type_hints(tp)
    names = [f.name for f in dataclasses.fields(tp)] if dataclasses.is_dataclass(tp) else list(tp._fields)
    return st.builds(tp, **{name: strategy(hints[name]) for name in names})


@settings(max_examples=50, deadline=None)
@given(strategy(SystemSnapshot))
def test_persist_round_trip_of_any_snapshot(snap: SystemSnapshot) -> None:
    assert persist.load(persist.dump(snap)) == snap
    assert persist.load(persist.dump(snap).encode()) == snap


def test_the_strategy_reaches_every_field_type() -> None:
    """(so the property above covers the model as it grows: Topology, frozensets, tuple keys)"""
    seen: set[Any] = set()

    def walk(tp: Any) -> None:
        if tp in seen:
            return
        seen.add(tp)
        for arg in typing.get_args(tp):
            if arg is not Ellipsis:
                walk(arg)
        if dataclasses.is_dataclass(tp) or hasattr(tp, "_fields"):
            for hint in typing.get_type_hints(tp).values():
                walk(hint)

    walk(SystemSnapshot)
    assert {Topology, MediaDeviceView, Unread, float, frozenset[str], dict[tuple[int, int], str]} <= seen


# -- the TUI on a bundle ------------------------------------------------------------------------

DEFERRED = next(s for s in SCENARIOS if s.name == "deferred_release_through_open_video0")
SIZE = DEFERRED.size


async def shown(app: MdtuiApp, pilot: Any) -> dict[str, list[str]]:
    """Per device (selected in turn in the device list): the device list, the allocator's
    view and the modules, as the screen shows them.  The device list's columns are as wide
    as the widest cell it has shown since its devices last changed (a holder that came and
    went), so its rows are compared cell by cell, not by their padding."""
    out: dict[str, list[str]] = {}
    await pilot.press("home")
    for n in range(len(app.snapshot.media_devices)):
        await settle(app)
        await pilot.pause()
        lines = []
        for selector in ("#devices", "#detail", "#modules"):
            widget = app.query_one(selector)
            rows = [widget.render_line(y).text for y in range(widget.size.height)]
            if selector == "#devices":  # its columns only widen while it runs: compare the cells
                rows = [" | ".join(re.split(r"\s{2,}", row.strip())) for row in rows]
            lines += [f"{selector} {row}" for row in rows]
        out[app.snapshot.media_devices[n].name] = lines
        await pilot.press("down")
    return out


@pytest.fixture(scope="module")
def deferred_bundle(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, list[str]], SystemSnapshot]:
    """The deferred-release scenario's app, as its snapshot test runs it; what it shows; and
    a bundle made from it."""
    path = tmp_path_factory.mktemp("deferred") / "deferred.tar.gz"

    async def scenario() -> tuple[dict[str, list[str]], SystemSnapshot]:
        app = make_app()
        async with app.run_test(size=SIZE) as pilot:
            await run_before(DEFERRED)(pilot)
            snap = app.source.snapshot()
            assert snap == app.snapshot  # what is shown is what the bundle gets
            bundle.write_bundle(str(path), app.source, snap, command="mdtui dump --bundle deferred.tar.gz", made=MADE)
            return await shown(app, pilot), snap

    screens, snap = asyncio.run(scenario())
    return path, screens, snap


def test_the_tui_on_a_bundle_shows_what_the_tui_showed(
    deferred_bundle: tuple[Path, dict[str, list[str]], SystemSnapshot],
) -> None:
    path, expected, snap = deferred_bundle
    assert BundleSource(str(path)).stored == snap

    async def on_bundle() -> dict[str, list[str]]:
        app = MdtuiApp(BundleSource(str(path)))
        async with app.run_test(size=SIZE) as pilot:
            await settle(app)
            assert app.sub_title.startswith("bundle deferred.tar.gz: sim state of 2025-01-02 03:04:05 UTC")
            return await shown(app, pilot)

    got = asyncio.run(on_bundle())
    assert list(got) == ["media0", "media1"]
    detail = " ".join(line.removeprefix("#detail").strip() for line in got["media0"] if line.startswith("#detail"))
    assert "reference kept by /dev/video0 (deleted), open in pid 1000 (tvheadend)" in detail
    assert got == expected


def test_the_tui_on_a_bundle_refuses_actions(
    deferred_bundle: tuple[Path, dict[str, list[str]], SystemSnapshot],
) -> None:
    async def on_bundle() -> None:
        app = MdtuiApp(BundleSource(str(deferred_bundle[0])))
        async with app.run_test(size=SIZE) as pilot:
            await settle(app)
            for key in ("u", "b", "p", "x", "m", "r", "o", "c"):  # no dialog opens: every action is disabled
                await pilot.press(key)
                await pilot.pause()
                assert app.screen is app.screen_stack[0]
            app.action_perform("unbind snd-usb-audio 1-1:1.1")  # the palette's way: refused, EROFS
            await pilot.pause()
            if app.screen is not app.screen_stack[0]:  # a live-style confirmation: say yes
                await pilot.press("y")
            await settle(app)
            await pilot.pause()
            notes = [(n.title, n.message) for n in app._notifications]
            assert (
                "unbind snd-usb-audio 1-1:1.1: EROFS",
                "unbind snd-usb-audio 1-1:1.1: deferred.tar.gz is a "
                "bug-report bundle: what it recorded cannot be changed",
            ) in notes

    asyncio.run(on_bundle())


def test_screen_of_a_bundle(snap_compare, deferred_bundle: tuple[Path, dict[str, list[str]], SystemSnapshot]) -> None:
    app = MdtuiApp(BundleSource(str(deferred_bundle[0])))
    assert snap_compare(app, terminal_size=SIZE, run_before=lambda pilot: settle(pilot.app))


@pytest.mark.parametrize("kind", [tarfile.XHDTYPE, tarfile.GNUTYPE_LONGNAME])
def test_a_huge_tar_header_member_is_refused_before_tarfile_reads_it(tmp_path: Path, kind: bytes) -> None:
    """Found by a hostile review: a 498 KB bundle holding a 500 MiB pax header made tarfile
    hold ~1 GiB before the size limit refused it; a header member is now checked as it passes."""
    import gzip

    info = tarfile.TarInfo("././@PaxHeader")
    info.size, info.type = 1 << 20, kind
    bomb = tmp_path / "bomb.tar.gz"
    with gzip.open(bomb, "wb") as f:
        f.write(info.tobuf(format=tarfile.GNU_FORMAT))
        f.write(bytes(1 << 20))
    with pytest.raises(BundleError, match=r"a 1048576-byte tar header member \(over 64 KiB\) before state.json"):
        BundleSource(str(bomb))

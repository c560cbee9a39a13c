"""``mdtui dump`` and ``mdtui watch`` on scripts: JSON schema, DOT grammar, text, events."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jsonschema
import pydot
import pytest

from mdtui.cli import main
from mdtui.render import jsondump

from ..conftest import fake_clock

SCHEMA = json.loads(jsondump.SCHEMA_PATH.read_text())

LIFECYCLE = """\
# the selftest's first half, then a refused rmmod and the deferred release
modprobe au0828
modprobe snd_usb_audio
plug hvr950q
open /dev/video0
unbind au0828 1-1:1.0
rmmod au0828
unbind snd-usb-audio 1-1:1.1
close /dev/video0
"""


def run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    rc = main(list(argv), clock=fake_clock(), stdout=out)
    return rc, out.getvalue()


@pytest.fixture
def script(tmp_path: Path) -> str:
    p = tmp_path / "life.txt"
    p.write_text(LIFECYCLE)
    return str(p)


def test_dump_json_follows_the_schema_default_world() -> None:
    rc, out = run("dump", "--source", "sim", "--format", "json")
    assert rc == 0
    doc = json.loads(out)
    jsonschema.validate(doc, SCHEMA)
    hvr, cam = doc["media_devices"]
    assert (hvr["devnode"], hvr["driver"], hvr["refcount"], hvr["owner"], hvr["owner_refcnt"]) == (
        "/dev/media0",
        "au0828",
        2,
        "au0828",
        1,
    )
    assert [(h["driver"], h["interface"], h["state"]) for h in hvr["holders"]] == [
        ("au0828", "1-1:1.0", "bound"),
        ("snd-usb-audio", "1-1:1.1", "bound"),
    ]
    assert len(hvr["entities"]) == 522 and len(hvr["interfaces"]) == 7 and len(hvr["links"]) == 1039
    assert (cam["shared"], cam["refcount"], cam["driver"]) == (False, None, "uvcvideo")
    assert {m["name"]: m["refcnt"] for m in doc["modules"]}["au0828"] == 1


def test_dump_json_mid_lifecycle(tmp_path: Path) -> None:
    p = tmp_path / "s.txt"
    p.write_text(
        "modprobe au0828\nmodprobe snd_usb_audio\nplug hvr950q\nopen /dev/video0 tvheadend\nopen /dev/media0\n"
        "unbind au0828 1-1:1.0\n"
    )
    _rc, out = run("dump", "--script", str(p), "--format", "json")
    doc = json.loads(out)
    jsonschema.validate(doc, SCHEMA)
    [dev] = doc["media_devices"]
    assert dev["refcount"] == 2
    assert {h["driver"]: h["state"] for h in dev["holders"]} == {"au0828": "deferred", "snd-usb-audio": "bound"}
    deferred = next(h for h in dev["holders"] if h["state"] == "deferred")
    video = {"pid": 1000, "comm": "tvheadend", "user": "user", "fd": 3, "node": "/dev/video0 (deleted)", "mode": "rw"}
    media = {"pid": 1001, "comm": "sh", "user": "user", "fd": 4, "node": "/dev/media0", "mode": "rw"}
    assert [{k: f[k] for k in video} for f in deferred["kept_by"]] == [video]
    assert [{k: f[k] for k in video} for f in dev["open_files"]] == [video, media]
    assert dev["hidden_openers"] == 0 and deferred["unbound_at"] > deferred["kept_by"][0]["since"]
    bound = next(h for h in dev["holders"] if h["state"] == "bound")
    assert "kept_by" not in bound
    with pytest.raises(jsonschema.ValidationError):  # the schema holds open files to their shape
        dev["open_files"][0]["mode"] = "rwx"
        jsonschema.validate(doc, SCHEMA)


def test_dump_dot_parses_with_graphvizs_grammar() -> None:
    for extra in ([], ["--interfaces"]):
        rc, out = run("dump", "--format", "dot", *extra)
        assert rc == 0
        graphs = pydot.graph_from_dot_data(out)
        assert graphs is not None and len(graphs) == 2
        hvr = graphs[0]
        nodes = {n.get_name() for n in hvr.get_nodes()}
        assert "n00000001" in nodes
        edges = hvr.get_edges()
        assert any(e.get_source() == "n00000005:port1" and e.get("style") == "dashed" for e in edges)
        if extra:
            assert any(n.startswith("intf_devnode_") for n in nodes)
            assert any(e.get("color") == '"orange"' for e in edges)


def test_dump_text_media_ctl_style_and_allocator_state() -> None:
    rc, out = run("dump", "--device", "media0")
    assert rc == 0
    assert "refcount          2" in out
    assert "owner module      au0828 (refcnt 1, 1 from sharers)" in out
    assert "- entity 1: au8522 0-0047 (3 pads, 6 links)\n            type V4L2 subdev subtype Decoder flags 0\n" in out
    assert '\t\t-> "USB Mixer":0 [ENABLED]' in out
    assert "device node name /dev/video0" in out
    assert "device node name /dev/dvb" not in out  # mainline's dvbdev.c leaves info.dev 0:0
    rc, _ = run("dump", "--device", "media9")
    assert rc == 1


def test_watch_lines_for_a_lifecycle(script: str) -> None:
    rc, out = run("watch", "--source", "sim", "--script", script)
    assert rc == 1  # the script's rmmod was refused
    lines = out.splitlines()
    allocator = [ln.split(None, 3)[3] for ln in lines if ln.split()[1] == "allocator"]
    assert allocator == [
        "media0 allocated by au0828, refcount 2 (1-1 plugged)",
        "media0 owner au0828 refcnt 1→2 (open /dev/video0)",
        "media0 refcount 2→1 (snd-usb-audio unbound 1-1:1.1)",
        "media0 owner au0828 refcnt 2→1 (snd-usb-audio unbound 1-1:1.1)",
        "media0 released (close /dev/video0)",
    ]
    assert any("rmmod: ERROR: Module au0828 is in use [EBUSY]" in ln for ln in lines)


def test_watch_one_line_per_owner_module_change(tmp_path: Path) -> None:
    """Two sticks on one owner module: a bind changes au0828's refcnt once, and the log says
    so once, naming both devices (not a line per device)."""
    p = tmp_path / "two.txt"
    p.write_text("modprobe au0828\nmodprobe snd_usb_audio\nplug hvr950q\nplug hvr950q\nunbind snd-usb-audio 1-1:1.1\n")
    rc, out = run("watch", "--source", "sim", "--script", str(p))
    assert rc == 0
    owner_lines = [ln.split(None, 3)[3] for ln in out.splitlines() if ln.split()[1] == "allocator" and "owner" in ln]
    assert owner_lines[-1] == "media0, media1 owner au0828 refcnt 2→1 (snd-usb-audio unbound 1-1:1.1)"
    assert sum("unbound" in ln for ln in owner_lines) == 1


def test_watch_json_lines(script: str) -> None:
    rc, out = run("watch", "--json", "--script", script)
    assert rc == 1
    records = [json.loads(line) for line in out.splitlines()]
    assert {r["kind"] for r in records} == {"uevent", "module", "trace", "error", "allocator"}
    assert all({"time", "kind", "device", "text"} <= r.keys() for r in records)
    assert [r["text"] for r in records if r["kind"] == "error"] == ["rmmod: ERROR: Module au0828 is in use [EBUSY]"]


def test_malformed_script_is_refused_with_its_line_number(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = tmp_path / "bad.txt"
    p.write_text("modprobe au0828\n\nbind au0828\n")
    rc, out = run("watch", "--script", str(p))
    assert rc == 2 and out == ""
    assert f"mdtui: {p}:3: usage: bind DRIVER INTF" in capsys.readouterr().err
    rc, _ = run("dump", "--script", str(tmp_path / "missing.txt"))
    assert rc == 2


def test_watch_exits_cleanly_on_ctrl_c() -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "mdtui", "watch", "--source", "sim"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    deadline = time.monotonic() + 20
    first = proc.stdout.readline()  # the default world's setup is printed, then it follows
    assert "module" in first and time.monotonic() < deadline
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "Traceback" not in err


def test_refused_steps_are_named_on_stderr_and_change_the_exit_status(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    p = tmp_path / "refused.txt"
    p.write_text("modprobe au0828\nplug nosuchdevice\nplug hvr950q\n")
    for command in ("dump", "watch"):
        rc, out = run(command, "--script", str(p))
        assert rc == 1 and "media0" in out  # the rest of the script ran
        err = capsys.readouterr().err.splitlines()
        assert err == [f"mdtui: {p}:2: plug nosuchdevice: refused: ENOENT: plug: no catalog device 'nosuchdevice' "
                       "(known: c270, hvr850, hvr950q)"]
    p.write_text("modprobe au0828\nplug hvr950q\n")
    assert run("dump", "--script", str(p))[0] == 0


def test_watch_stamps_every_line_with_the_sources_clock(tmp_path: Path) -> None:
    """An ``open`` sends no event: its allocator line is stamped by the source's clock,
    not the machine's uptime (no injected clock here: the real ones)."""
    p = tmp_path / "open.txt"
    p.write_text("modprobe au0828\nplug hvr950q\nopen /dev/video0\nunbind au0828 1-1:1.0\n")
    out = io.StringIO()
    assert main(["watch", "--source", "sim", "--script", str(p)], stdout=out) == 0
    times = [float(line.split()[0]) for line in out.getvalue().splitlines()]
    assert any("(open /dev/video0)" in line for line in out.getvalue().splitlines())
    assert times == sorted(times) and times[-1] < 60


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "not a text file (NUL byte)"),  # /dev/zero
        (b"modprobe au0828\n\xff\xfe\n", "not UTF-8 text"),
        (b"# " + b"x" * 300_000 + b"\n", "too long: a script is at most 256 KiB"),
    ],
)
def test_hostile_script_files_are_refused_unread(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes | None, message: str
) -> None:
    path = "/dev/zero"
    if content is not None:
        path = str(tmp_path / "hostile.txt")
        Path(path).write_bytes(content)
    rc, out = run("dump", "--script", path)
    assert rc == 2 and out == ""
    assert message in capsys.readouterr().err


def test_a_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    p = tmp_path / "bom.txt"
    p.write_bytes(b"\xef\xbb\xbfmodprobe au0828\nplug hvr950q\n")
    rc, out = run("dump", "--script", str(p))
    assert rc == 0 and "WinTV HVR-950Q" in out


def test_refused_steps_are_in_the_json_dump(tmp_path: Path) -> None:
    p = tmp_path / "refused.txt"
    p.write_text("modprobe au0828\nmodprobe snd_usb_audio\nplug hvr950q\nrmmod au0828\n")
    rc, out = run("dump", "--format", "json", "--script", str(p))
    doc = json.loads(out)
    jsonschema.validate(doc, SCHEMA)
    assert rc == 1
    assert doc["refused_steps"] == [
        {"line": 4, "step": "rmmod au0828", "errno": 16, "errno_name": "EBUSY",
         "message": "rmmod: ERROR: Module au0828 is in use"}
    ]
    assert json.loads(run("dump", "--format", "json")[1])["refused_steps"] == []


@pytest.mark.parametrize(
    "argv",
    [("dump",), ("dump", "--format", "json"), ("watch", "--script", "-")],
    ids=["dump-text", "dump-json", "watch"],
)
def test_output_that_goes_away_ends_quietly(tmp_path: Path, argv: tuple[str, ...]) -> None:
    """``| head`` that has already gone: the status of a SIGPIPE death, no traceback;
    ``> /dev/full``: the errno named, status 1."""
    script = tmp_path / "s.txt"
    script.write_text("modprobe au0828\nplug hvr950q\n")
    args = [a if a != "-" else str(script) for a in argv]
    cmd = [sys.executable, "-m", "mdtui", *args[:1], "--source", "sim", *args[1:]]
    read, write = os.pipe()
    os.close(read)
    proc = subprocess.run(cmd, stdout=write, stderr=subprocess.PIPE, text=True, timeout=60)
    os.close(write)
    assert (proc.returncode, proc.stderr) == (128 + signal.SIGPIPE, "")
    with open("/dev/full", "w") as full:
        proc = subprocess.run(cmd, stdout=full, stderr=subprocess.PIPE, text=True, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr == f"mdtui {args[0]}: cannot write the output: No space left on device (ENOSPC)\n"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_watch_ends_cleanly_on_sigterm_and_sighup(signum: int) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "mdtui", "watch", "--source", "sim"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert "module" in proc.stdout.readline()
    time.sleep(0.3)
    proc.send_signal(signum)
    _out, err = proc.communicate(timeout=20)
    assert proc.returncode == 128 + signum and err == ""


#: ``python -m mdtui ARGV...``, and at interpreter exit (after mdtui's own exit handlers, which
#: run first) status 99 naming them if any Textual module was imported on the way
NO_TEXTUAL = """\
import atexit, os, runpy, sys

def check():
    loaded = sorted(m for m in sys.modules if m == "textual" or m.startswith("textual."))
    if loaded:
        sys.stdout.flush()
        print("textual imported:", *loaded[:5], file=sys.stderr, flush=True)
        os._exit(99)  # sys.exit() in an exit handler would not change the status

atexit.register(check)
sys.argv = ["mdtui", *sys.argv[1:]]
runpy.run_module("mdtui", run_name="__main__", alter_sys=True)
"""


@pytest.mark.parametrize(
    "argv",
    [
        ("dump", "--source", "sim"),
        ("dump", "--source", "sim", "--format", "json"),
        ("dump", "--source", "sim", "--format", "dot", "--interfaces"),
        ("dump", "--source", "live", "--format", "json"),
        ("watch", "--script", "-"),
        ("watch", "--json", "--script", "-"),
    ],
    ids=["dump-text", "dump-json", "dump-dot", "dump-live", "watch", "watch-json"],
)
def test_dump_and_watch_never_import_textual(tmp_path: Path, argv: tuple[str, ...]) -> None:
    """``mdtui dump`` and ``mdtui watch`` sit beside the UI: Textual is the TUI's alone (and
    its import time too)."""
    script = tmp_path / "s.txt"
    script.write_text("modprobe au0828\nmodprobe snd_usb_audio\nplug hvr950q\nunbind au0828 1-1:1.0\n")
    args = [a if a != "-" else str(script) for a in argv]
    proc = subprocess.run([sys.executable, "-c", NO_TEXTUAL, *args], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout


def test_a_closed_standard_output_is_named() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "mdtui", "dump", "--source", "sim"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        text=True, timeout=60, preexec_fn=lambda: os.close(1),
    )
    assert (proc.returncode, proc.stderr) == (1, "mdtui dump: no standard output to write to (EBADF)\n")


def test_watch_never_writes_a_control_character_to_the_terminal() -> None:
    """A process names itself (prctl PR_SET_NAME) with escapes: the live source's close line
    carries its comm, and watch prints it in caret notation (C1 controls as \\x9b)."""
    from mdtui.watch import Printer

    out = io.StringIO()
    Printer(out, False, True).line(1.0, "trace", "x\x1b[2J", "closed /dev/video0 (pid 7 \x1b]0;PWN\x07\x9b31m)")
    text = out.getvalue()
    assert "^[]0;PWN^G\\x9b31m" in text and "x^[[2J" in text
    assert not any(ord(c) < 32 and c not in "\n\x1b" for c in text)
    assert "\x1b]" not in text and "\x9b" not in text and "\x1b[2J" not in text  # styled: only rich's own SGR

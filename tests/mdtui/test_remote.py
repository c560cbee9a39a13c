"""The remote source without a network: the agent run here through a stand-in for ssh
(``MDTUI_SSH`` names a program that runs the remote command locally), the wire's patches,
hostile agents, and several machines as one source.  The real OpenSSH server and the rig's
devices: tests/rig/test_ssh.py."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mdtui.changes import cause_of, diff
from mdtui.cli import main
from mdtui.model import HostView, MediaDeviceView, SystemSnapshot, Unread
from mdtui.remote import pack, wire
from mdtui.sources.multi import MultiSource
from mdtui.sources.remote import NO_PYTHON, RemoteSource, Target, why
from mdtui.sources.sim import build
from mdtui.step import Step

from ..pythons import oldest_python

FAST = (0.05, 0.2)  # backoff: first, most


def fake_ssh(tmp_path: Path, body: str = 'exec sh -c "$last"') -> list[str]:
    """A program standing in for ssh: ``$last`` is the remote command line."""
    path = tmp_path / "fake-ssh"
    path.write_text(f'#!/bin/sh\nfor last; do :; done\n{body}\n')
    path.chmod(0o755)
    return [str(path)]


def wait(predicate, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


# -- the agent: the standard library only, on the oldest Python it supports ----------------


def run_importer(python: str, code: str) -> subprocess.CompletedProcess[str]:
    """``code`` after the agent's importer, in ``python -I -S``, outside the checkout."""
    return subprocess.run(
        [python, "-I", "-S", "-"], input=pack.importer() + code, capture_output=True, text=True, cwd="/", timeout=60
    )


def test_the_agent_imports_nothing_outside_the_standard_library() -> None:
    code = "import json, sys\nimport mdtui.remote.agent\nprint(json.dumps(sorted(sys.modules)))\n"
    done = run_importer(sys.executable, code)
    assert done.returncode == 0, done.stderr
    loaded = set(json.loads(done.stdout))
    ours = {m for m in loaded if m.split(".")[0] in ("mdtui", "allocator")}
    assert ours <= set(pack.MODULES)
    assert "mdtui.sources.live" in ours and "mdtui.live.netlink" in ours
    others = {m.split(".")[0] for m in loaded - ours}
    assert others <= set(sys.stdlib_module_names) | {"__main__"}, sorted(others - set(sys.stdlib_module_names))
    assert not {"textual", "rich", "pyudev", "prometheus_client"} & others


@pytest.mark.parametrize("module", pack.MODULES)
def test_every_packed_module_imports_on_the_oldest_python(module: str) -> None:
    done = run_importer(oldest_python(), f"import {module}\n")
    assert done.returncode == 0, done.stderr


def test_the_agent_runs_on_the_oldest_python_and_ends_with_its_input(tmp_path: Path) -> None:
    body = pack.payload({})
    command = pack.command(len(body), oldest_python())
    proc = subprocess.Popen(["sh", "-c", command], stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd="/")
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(body)
    proc.stdin.flush()
    hello = wire.parse(proc.stdout.readline())
    assert hello["t"] == "hello" and hello["python"].startswith("3.8")
    first = wire.parse(proc.stdout.readline())
    assert first["t"] == "update" and "snapshot" in first
    proc.stdin.write(wire.request(1, "perform", command="plug", args=["hvr950q"]))
    proc.stdin.flush()
    reply = wire.parse(proc.stdout.readline())
    assert reply == {"v": 1, "t": "reply", "id": 1, "error": reply["error"]}
    assert reply["error"][0] == errno.EPERM and "only the simulated kernel" in reply["error"][1]
    proc.stdin.close()
    assert proc.wait(10) == 0


def test_a_python_too_old_is_named(tmp_path: Path) -> None:
    old = tmp_path / "python3"
    old.write_text("#!/bin/sh\nexec python3 -c 'import sys; sys.version_info = (3, 7, 9); exec(sys.argv[1])' \"$5\"\n")
    # stage1 checks sys.version_info: run it as a 3.7 would see itself
    stage1 = pack.stage1(10).replace("sys.version_info < (3, 8)", "(3, 7, 9) < (3, 8)")
    done = subprocess.run([sys.executable, "-c", stage1], capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert done.returncode == 3
    fatal = wire.parse(done.stdout.encode())
    assert fatal["t"] == "fatal" and "needs 3.8 or newer" in fatal["text"]


# -- the wire ---------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None)
@given(json_values, json_values)
def test_a_patch_makes_the_old_into_the_new(old: object, new: object) -> None:
    patch = wire.diff(old, new)
    if old == new:
        assert patch is None
    else:
        sent = json.loads(json.dumps(patch))  # what crosses the wire
        assert wire.apply(old, sent) == new


def test_a_refcount_change_sends_a_few_hundred_bytes_not_the_graph() -> None:
    from mdtui import persist

    source, _ = build()
    before = wire.keyed(persist.plain(source.snapshot()))
    source.perform(Step(0, "unbind", ("au0828", "1-1:1.0")))
    after = wire.keyed(persist.plain(source.snapshot()))
    patch = wire.diff(before, after)
    assert wire.apply(before, patch) == after
    whole, sent = len(json.dumps(before)), len(json.dumps(patch))
    assert sent * 20 < whole, (sent, whole)


@pytest.mark.parametrize(
    "raw",
    [b"", b"garbage", b"[1,2]", b'{"v": 2, "t": "hello"}', b"\xff\xfe", b'{"t": "hello"}', b"9" * 5000],
)
def test_a_line_that_is_not_the_protocol_is_refused(raw: bytes) -> None:
    with pytest.raises(wire.ProtocolError):
        wire.parse(raw)


# -- targets and reasons ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "user", "host", "port"),
    [
        ("board", None, "board", None),
        ("pi@board.lab", "pi", "board.lab", None),
        ("root@10.0.0.5:2222", "root", "10.0.0.5", "2222"),
        ("[::1]:22", None, "::1", "22"),
        ("me@[fe80::1]", "me", "fe80::1", None),
    ],
)
def test_targets(text: str, user: str | None, host: str, port: str | None) -> None:
    t = Target(text)
    assert (t.user, t.host, t.port) == (user, host, port)
    assert t.ssh_args()[-2:] == ["--", host]


@pytest.mark.parametrize(
    "bad",
    ["", "a b", "-oProxyCommand=x", "h:0", "h:70000", "u@", "@h", "h/x", "a@b@c", "a;b", "$(id)", "u`x`@h", "h%n"],
)
def test_a_target_that_ssh_could_take_as_an_option_is_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        Target(bad)


def test_ssh_failures_are_said_in_the_users_terms() -> None:
    assert why(255, "ssh: connect to host b port 22: Connection refused\n", None).startswith("host unreachable (ssh:")
    assert why(255, "ssh: Could not resolve hostname nowhere: Name or service not known", None).startswith(
        "host unreachable"
    )
    assert why(255, "root@b: Permission denied (publickey).", None).startswith("authentication failed")
    assert why(255, "Host key verification failed.", None).startswith("authentication failed")
    assert why(127, "sh: 1: python3: not found", None) == NO_PYTHON
    too_old = "python3 is 3.6.9; the agent needs 3.8 or newer"
    assert why(1, "", too_old) == too_old


# -- the source, with a stand-in for ssh ------------------------------------------------------


def test_the_source_connects_and_shows_the_machine(tmp_path: Path) -> None:
    source = RemoteSource("board-a", ssh=fake_ssh(tmp_path), backoff=FAST)
    try:
        assert source.ready(30) == []
        snap = source.snapshot()
        assert snap.hosts == (HostView("board-a", "connected"),)
        assert any(n.startswith("board-a: events: kernel uevents (netlink)") for n in snap.notes)
        for _ in range(50):  # a graph tab asks every second: the replies nobody waits for are not kept
            source.reread_media("1-1")
        source.call("reread", key="1-1")  # after those, in order
        assert source._replies == {} and source._waiting == set()
    finally:
        source.stop()
    assert source._proc is None  # ssh ended with the source


def test_a_missing_python3_is_named_with_the_host(tmp_path: Path) -> None:
    source = RemoteSource("board-a", ssh=fake_ssh(tmp_path), python="python3-that-is-not-there", backoff=FAST)
    try:
        assert source.ready(30) == [f"board-a: {NO_PYTHON}"]
        assert source.snapshot().hosts[0].state == "disconnected"
        assert "trying again in" in source.snapshot().hosts[0].detail
        with pytest.raises(OSError) as refused:
            source.perform(Step(0, "unbind", ("au0828", "1-1:1.0")))
        assert refused.value.errno == errno.ENOTCONN and "board-a" in str(refused.value)
    finally:
        source.stop()


def test_an_unreachable_host_is_named(tmp_path: Path) -> None:
    ssh = fake_ssh(tmp_path, 'echo "ssh: connect to host board-a port 22: Connection refused" >&2; exit 255')
    source = RemoteSource("board-a", ssh=ssh, backoff=FAST)
    try:
        (reason,) = source.ready(30)
        assert reason == "board-a: host unreachable (ssh: connect to host board-a port 22: Connection refused)"
    finally:
        source.stop()


@pytest.mark.parametrize(
    ("agent", "said"),
    [
        ("printf 'garbage\\n'; sleep 5", "cannot read"),
        ("head -c 20000000 /dev/zero; sleep 5", "longer than 16 MiB"),
        ("printf '{\"v\": 1, \"t\": \"update\", \"patch\": {\"~\": 3}}\\n'; sleep 5", "before any snapshot"),
        ("printf '{\"v\": 1, \"t\": \"update\", \"snapshot\": {\"source\": 3}}\\n'; sleep 5", "cannot read"),
        ("kill -9 $$", "exit status"),
    ],
)
def test_a_hostile_agent_never_crashes_or_hangs_the_source(tmp_path: Path, agent: str, said: str) -> None:
    source = RemoteSource("board-a", ssh=fake_ssh(tmp_path, f"cat >/dev/null & {agent}"), backoff=FAST)
    try:
        reasons = source.ready(3)
        assert len(reasons) == 1 and said in reasons[0], reasons
        assert source.snapshot().media_devices == ()
    finally:
        source.stop()


def test_a_target_that_never_reads_holds_nothing_up(tmp_path: Path) -> None:
    """A shell that never starts python3 and never reads: the 65 KB agent does not fit in the
    pipe, yet neither the reader, nor a re-read asked on the event loop, nor stop() waits."""
    source = RemoteSource("board-a", ssh=fake_ssh(tmp_path, "exec sleep 30"), backoff=FAST)
    try:
        assert source.ready(1) == ["board-a: no answer in 1 s"]
        started = time.monotonic()
        for _ in range(2000):
            source.reread_media("1-1")
        assert time.monotonic() - started < 1
    finally:
        started = time.monotonic()
        source.stop()
    assert time.monotonic() - started < 3
    assert source._proc is None


def test_a_denied_node_is_named_with_the_group_to_join() -> None:
    source = RemoteSource("pi@board-a", ssh=["true"])
    dev = MediaDeviceView(
        "1-1", "1-1", "/dev/media0", build()[0].snapshot().media_devices[0].info, True, None, None, None, (),
        build()[0].snapshot().media_devices[0].topology, (), {},
        unread=Unread("denied", "permission denied: /dev/media0 (EACCES on open)", "EACCES"),
    )
    shown = source._shown(SystemSnapshot("live", 0, (dev,), (), ()))
    assert "pi@board-a: permission denied on /dev/media0: add pi to the 'video' group there" in shown.notes


# -- several machines -------------------------------------------------------------------------


def test_several_machines_are_told_apart_and_steps_go_to_theirs() -> None:
    a, b = build()[0], build()[0]
    multi = MultiSource([("lab-a", a), ("lab-b", b)])
    events = []
    multi.subscribe(events.append)
    snap = multi.snapshot()
    assert [d.key for d in snap.media_devices][:1] == ["lab-a/1-1"]
    assert {d.host for d in snap.media_devices} == {"lab-a", "lab-b"}
    assert snap.owner_refcnt(snap.device("lab-b/1-1")) == snap.module("au0828", "lab-b").refcnt
    multi.perform(Step(0, "unbind", ("au0828", "1-1:1.0"), host="lab-b"))
    after = multi.snapshot()
    changes = diff(snap, after, cause_of(events, snap))
    assert [c.text for c in changes if "refcount" in c.text] == [
        "lab-b/media0 refcount 2→1 (au0828 unbound lab-b/1-1:1.0)"
    ]
    assert after.device("lab-a/1-1").refcount == 2 and after.device("lab-b/1-1").refcount == 1
    assert events and all(e.device.startswith("lab-b/") for e in events)
    assert after.seq == events[-1].seq  # every event of the step is in the snapshot
    with pytest.raises(OSError) as refused:
        multi.perform(Step(0, "unbind", ("au0828", "1-1:1.0"), host="lab-c"))
    assert refused.value.errno == errno.EINVAL and "lab-a, lab-b" in str(refused.value)


def test_a_snapshot_excludes_what_one_machine_has_not_shown_yet() -> None:
    a, b = build()[0], build()[0]
    multi = MultiSource([("lab-a", a), ("lab-b", b)])
    first = multi.snapshot()
    stale = b.snapshot()
    b.perform(Step(0, "unbind", ("au0828", "1-1:1.0")))
    b.snapshot = lambda: stale  # type: ignore[method-assign]  # lab-b has not read itself again
    assert multi.snapshot().seq == first.seq  # its events wait for the snapshot that includes them


def test_dump_of_two_sources_names_each_machine(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    ssh = fake_ssh(tmp_path, 'echo "ssh: connect to host x port 22: Connection refused" >&2; exit 255')
    os.environ["MDTUI_SSH"] = ssh[0]
    try:
        status = main(["dump", "--source", "sim", "--source", "ssh:gone"])
    finally:
        del os.environ["MDTUI_SSH"]
    out, err = capsys.readouterr()
    assert status == 1
    assert "mdtui dump: gone: host unreachable (ssh: connect to host x port 22: Connection refused)" in err
    assert "=== sim: /dev/media0: WinTV HVR-950Q ===" in out
    assert "# host gone: disconnected: host unreachable" in out


def test_the_same_source_twice_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dump", "--source", "sim", "--source", "sim"]) == 2
    assert "--source sim is given twice" in capsys.readouterr().err


@pytest.mark.asyncio
async def test_a_machine_that_cannot_be_reached_is_shown_and_the_others_work(tmp_path: Path) -> None:
    from mdtui.app import MdtuiApp
    from mdtui.scenarios import settle
    from mdtui.widgets.device_list import DeviceList

    ssh = fake_ssh(tmp_path, 'echo "ssh: connect to host gone port 22: Connection refused" >&2; exit 255')
    gone = RemoteSource("gone", ssh=ssh, backoff=FAST)
    app = MdtuiApp(MultiSource([("sim", build()[0]), ("gone", gone)]))
    async with app.run_test(size=(120, 40)) as pilot:
        for _ in range(200):
            await settle(app)
            if app.snapshot.hosts[1].state == "disconnected":
                break
            await pilot.pause(0.01)
        rows = [str(row) for row in app.query_one(DeviceList).rows]
        assert any("gone" in r and "disconnected" in r and "host unreachable" in r for r in rows), rows
        assert app.snapshot.device("sim/1-1").refcount == 2
        await pilot.press("u", "enter", "y")  # unbind au0828 on the sim machine (asked first: not all are simulated)
        await settle(app)
        assert app.snapshot.device("sim/1-1").refcount == 1
    gone.stop()


# -- an agent that answers wrongly (the hostile review's findings) -----------------------------


def scripted_agent(tmp_path: Path, reply: object, hello_clock: float = 1.0, event_time: float = 1.0) -> list[str]:
    """A stand-in for ssh whose 'agent' says hello, sends an empty state with one event, then
    answers every request with ``reply`` (JSON written as Python's json writes it: NaN too)."""
    from mdtui import persist
    from mdtui.sources.remote import EMPTY

    state = wire.keyed(persist.plain(EMPTY))
    lines = [
        {"v": 1, "t": "hello", "host": "x", "clock": hello_clock, "user": "u"},
        {"v": 1, "t": "update", "events": [[1, event_time, "trace", "info", "x", "hello", {}]], "snapshot": state},
    ]
    script = tmp_path / "agent.py"
    script.write_text(
        "import json, os, sys\n"
        f"for line in {json.dumps([json.dumps(x) for x in lines])}:\n"
        "    os.write(1, line.encode() + b'\\n')\n"
        "buf = b''\n"
        "while True:\n"
        "    data = os.read(0, 65536)\n"
        "    if not data:\n"
        "        break\n"
        "    buf += data\n"
        "    *lines, buf = buf.split(b'\\n')\n"
        "    for raw in lines:\n"
        "        if b'{\"v\"' in raw:  # a request (after the agent's bytes, which it never runs)\n"
        "            ident = json.loads(raw[raw.index(b'{\"v\"'):])['id']\n"
        f"            answer = {{'v': 1, 't': 'reply', 'id': ident, 'error': {reply!r}}}\n"
        "            os.write(1, json.dumps(answer).encode() + b'\\n')\n"
    )
    return fake_ssh(tmp_path, f"exec {sys.executable} {script}")


@pytest.mark.parametrize("error", [[1, 2], "boom", {}, ["EIO", "bad", None], [5, "x", 3]])
def test_a_reply_of_the_wrong_shape_ends_the_connection_not_the_caller(tmp_path: Path, error: object) -> None:
    source = RemoteSource("board-a", ssh=scripted_agent(tmp_path, error), backoff=FAST)
    said: list[str] = []
    source.subscribe(lambda e: said.append(e.text))
    try:
        assert source.ready(10) == []
        with pytest.raises(OSError) as refused:  # an OSError, whatever the agent said: the app shows it
            source.perform(Step(0, "unbind", ("au0828", "1-1:1.0")))
        assert refused.value.errno == errno.ENOTCONN
        wait(lambda: any("the agent sent what this mdtui cannot read (a reply is" in t for t in said))
        wait(lambda: source.connections >= 2)  # and it is tried again
    finally:
        source.stop()


@pytest.mark.parametrize(("clock", "when"), [(float("nan"), 1.0), (float("inf"), 1.0), (1.0, float("nan"))])
def test_times_that_are_no_numbers_are_refused(tmp_path: Path, clock: float, when: float) -> None:
    source = RemoteSource("board-a", ssh=scripted_agent(tmp_path, None, clock, when), backoff=FAST)
    try:
        (reason,) = source.ready(10)
        assert "cannot read" in reason and "number" in reason
    finally:
        source.stop()


def test_options_before_the_subcommand_are_kept(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    ssh = fake_ssh(tmp_path, 'echo "ssh: connect to host gone port 22: Connection refused" >&2; exit 255')
    os.environ["MDTUI_SSH"] = ssh[0]
    try:
        assert main(["--source", "ssh:gone", "dump"]) == 1  # not the simulated kernel
    finally:
        del os.environ["MDTUI_SSH"]
    assert "mdtui dump: gone: host unreachable" in capsys.readouterr().err
    assert main(["--source", "sim", "--variant", "v10", "dump", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["notes"][0].endswith("(allocator: v10)")


def test_the_agent_answers_a_malformed_request_and_goes_on() -> None:
    body = pack.payload({})
    proc = subprocess.Popen(
        ["sh", "-c", pack.command(len(body), oldest_python())], stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd="/"
    )
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(body)
    for request in (
        wire.request(1, "perform", command="bind", args=["a", "b", "c"]),
        wire.request(2, "perform", command="unbind", args=[]),
        wire.request(3, "machine", method="__init__", args=[]),
        wire.request(4, "nonsense"),
    ):
        proc.stdin.write(request)
    proc.stdin.flush()
    replies = {}
    while len(replies) < 4:
        msg = wire.parse(proc.stdout.readline())
        if msg["t"] == "reply":
            replies[msg["id"]] = msg["error"][0]
    assert replies == {1: errno.EINVAL, 2: errno.EINVAL, 3: errno.EINVAL, 4: errno.EINVAL}
    proc.stdin.close()
    assert proc.wait(10) == 0  # alive until its input ended

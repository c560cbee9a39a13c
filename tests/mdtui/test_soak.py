"""``mdtui soak`` on the simulation: each design's verdict from its evidence, the output
formats (table, JSON, JUnit XML read back with ElementTree), the refusals, the rig's
command line, the kernel log's reports.  Each soak here is bounded to a second or so."""

from __future__ import annotations

import argparse
import errno
import io
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mdtui import soak
from mdtui.cli import main
from mdtui.soak import machine, progress, scenarios
from mdtui.soak.report import Report, junit
from mdtui.soak.scenarios import DEVICE_TEST, REGRESSION, SCENARIOS, Failure, Options, ScenarioResult

ALLOCATOR_SH = "media_dev_allocator.sh"


def run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    rc = main(["soak", *argv], stdout=out)
    return rc, out.getvalue()


def verdict(*argv: str) -> tuple[int, dict]:
    rc, out = run(*argv, "--json")
    return rc, json.loads(out)


def scenario(doc: dict, name: str) -> dict:
    return next(s for s in doc["scenarios"] if s["name"] == name)


# -- each design's verdict -----------------------------------------------------------------


def test_fixed_passes_every_scenario() -> None:
    rc, doc = verdict("--variant", "fixed", "--loops", "30")
    assert rc == 0 and doc["result"] == "pass" and doc["exit_status"] == 0
    assert (doc["source"], doc["design"]) == ("sim", "fixed")
    assert [s["name"] for s in doc["scenarios"]] == list(SCENARIOS)
    assert all(s["result"] == "pass" and s["failures"] == [] for s in doc["scenarios"])
    assert doc["device"]["node"] == "/dev/media0" and doc["device"]["usb_device"] == "1-1"
    assert [d["driver"] for d in doc["device"]["drivers"]] == ["au0828", "snd-usb-audio"]
    reg = scenario(doc, REGRESSION)
    assert reg["loops"] == 30 and reg["opens"] > 0  # the open loops did run beside the bind/unbind loop
    assert scenario(doc, ALLOCATOR_SH)["steps"] == 9  # the start and the script's eight steps, each asserted


def test_fixed_passes_with_the_race_window_too() -> None:
    """The window is in mainline's release; the fix takes the 1 -> 0 transition under the lock."""
    rc, doc = verdict("--variant", "fixed", "--race-window", "20", "--loops", "40")
    assert rc == 0, [f for s in doc["scenarios"] for f in s["failures"]]


def test_mainline_with_a_race_window_fails_with_the_use_after_free() -> None:
    rc, doc = verdict("--variant", "mainline", "--race-window", "20", "--loops", "200")
    assert rc == 1 and doc["result"] == "fail" and doc["design"] == "mainline"
    assert doc["bounds"]["race_window_ms"] == 20
    reg = scenario(doc, REGRESSION)
    assert reg["result"] == "fail"
    first = reg["failures"][0]
    assert first["kind"] == "refcount_t"
    assert first["evidence"].startswith("WARNING: refcount_t: addition on 0; use-after-free.")
    assert isinstance(first["loop"], int) and first["loop"] >= 1  # the loop it was hit in...
    assert first["step"].startswith("bind ")  # ...and the step: a probe's allocate took the dying device
    assert reg["loops"] < 200  # it stops at the first evidence
    texts = [f["evidence"] for f in reg["failures"]]
    assert any("holds a released media device" in t for t in texts)  # check(): the use-after-free itself
    assert scenario(doc, ALLOCATOR_SH)["result"] == scenario(doc, DEVICE_TEST)["result"] == "pass"


def test_v3_fails_on_rmmod_while_shared() -> None:
    rc, doc = verdict("--variant", "v3", "--loops", "5")
    assert rc == 1
    reg = scenario(doc, REGRESSION)
    # the stick's node then: media0, or the next free number if an open loop held media0's minor
    # when the bind/unbind loop brought it back
    [rmmod] = [f for f in reg["failures"] if f["step"] == "rmmod au0828 (shared)"]
    assert re.match(r"rmmod au0828 succeeded while snd-usb-audio shares /dev/media\d ", rmmod["evidence"])
    oops = [f for f in reg["failures"] if f["kind"] == "oops"]
    assert len(oops) == 1 and re.fullmatch(r"open /dev/media\d after rmmod au0828", oops[0]["step"])
    assert oops[0]["evidence"].startswith("BUG: unable to handle kernel paging request")
    assert "cdev owner au0828 was unloaded" in oops[0]["evidence"]
    # the cause, at every start: the sharer takes no reference on the owner module
    for s in doc["scenarios"]:
        assert s["failures"][0]["step"] == "start"
        assert "the sharer holds no reference on the owner module" in s["failures"][0]["evidence"]


def test_v4_reports_the_lockdep_splat() -> None:
    rc, doc = verdict("--variant", "v4", "--loops", "5")
    assert rc == 1
    for s in doc["scenarios"]:
        assert s["result"] == "fail"
        first = s["failures"][0]
        assert first["kind"] == "lockdep"
        assert "at kernel/module.c:262 module_assert_mutex+0x20/0x30" in first["evidence"]
        assert "without module_mutex" in first["evidence"]


def test_summary_table_names_the_design_and_each_scenario() -> None:
    rc, out = run("--variant", "mainline", "--race-window", "20", "--loops", "200")
    assert rc == 1
    lines = out.splitlines()
    assert lines[0] == "mdtui soak on simulated kernel 6.12.0, allocator design: mainline"
    assert lines[1].startswith("device: /dev/media0 WinTV HVR-950Q (usb-0000:00:14.0-1, USB 1-1)")
    header = next(i for i, line in enumerate(lines) if line.startswith("scenario"))
    assert lines[header].split() == ["scenario", "loops", "result", "first", "evidence"]
    rows = {line.split()[0]: line.split(maxsplit=3) for line in lines[header + 1 : header + 4]}
    assert rows[ALLOCATOR_SH][2] == "pass" and rows[DEVICE_TEST][2] == "pass"
    assert rows[REGRESSION][2] == "FAIL" and "refcount_t: addition on 0; use-after-free." in rows[REGRESSION][3]
    assert rows[REGRESSION][3].startswith("loop ")
    assert lines[-1].startswith("FAIL: 1 of 3 scenarios failed (design mainline")
    assert "\x1b" not in out  # no progress bar, no colour: this is no terminal


# -- JUnit XML -----------------------------------------------------------------------------


def parse_junit(path: Path) -> ET.Element:
    """The schema-relevant shape (Jenkins' junit-10.xsd, junitparser): <testsuites> with one
    <testsuite> whose counts are integers that agree with its testcases, times decimals."""
    root = ET.parse(path).getroot()
    assert root.tag == "testsuites"
    [suite] = root.findall("testsuite")
    cases = suite.findall("testcase")
    for attr in ("tests", "failures", "errors", "skipped"):
        assert int(suite.get(attr)) == int(root.get(attr))
    assert int(suite.get("tests")) == len(cases)
    assert int(suite.get("failures")) == sum(1 for c in cases if c.find("failure") is not None)
    assert int(suite.get("errors")) == sum(1 for c in cases if c.find("error") is not None)
    assert float(suite.get("time")) >= 0 and suite.get("name") and suite.get("timestamp")
    for case in cases:
        assert case.get("classname") and case.get("name")
        assert float(case.get("time")) >= 0
        for child in case:
            assert child.tag in ("failure", "error", "skipped", "system-out", "system-err")
    return suite


def test_junit_of_a_failing_soak(tmp_path: Path) -> None:
    path = tmp_path / "soak.xml"
    rc, _ = run("--variant", "mainline", "--race-window", "20", "--loops", "200", "--junit", str(path))
    assert rc == 1
    suite = parse_junit(path)
    assert suite.get("name") == "mdtui soak (sim, design mainline)"
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("3", "1", "0")
    cases = {c.get("name"): c for c in suite.findall("testcase")}
    assert list(cases) == list(SCENARIOS)
    assert {c.get("classname") for c in cases.values()} == {"mdtui.soak.sim.mainline"}
    failure = cases[REGRESSION].find("failure")
    assert failure is not None and failure.get("type") == "refcount_t"
    assert "refcount_t: addition on 0; use-after-free." in failure.get("message")
    assert failure.get("message") in failure.text
    assert cases[ALLOCATOR_SH].find("failure") is None
    props = {p.get("name"): p.get("value") for p in suite.find("properties")}
    assert props["design"] == "mainline" and props["race_window_ms"] == "20"


def test_junit_of_a_passing_soak_and_of_one_that_could_not_run(tmp_path: Path) -> None:
    good, bad = tmp_path / "good.xml", tmp_path / "bad.xml"
    assert run("--variant", "fixed", "--loops", "5", "--junit", str(good))[0] == 0
    suite = parse_junit(good)
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("3", "0", "0")
    assert run("--device", "nothing-here", "--junit", str(bad))[0] == 2
    suite = parse_junit(bad)
    [case] = suite.findall("testcase")
    assert case.find("error").get("message").startswith("no media device matches 'nothing-here'")


@settings(max_examples=40, deadline=None)
@given(st.text(max_size=60), st.text(max_size=20), st.integers(min_value=0, max_value=3))
def test_junit_carries_any_evidence_text(evidence: str, step: str, failures: int) -> None:
    """Kernel log lines may hold anything (control characters, quotes, markup): the XML stays
    well formed and says what XML can carry of it."""
    results = [ScenarioResult(name) for name in SCENARIOS]
    for n in range(failures):
        results[1].failures.append(Failure(REGRESSION, step, n, "warn", evidence, n + 1))
    if failures:
        results[1].result = "fail"
    report = Report("sim", "mainline", "simulated kernel", Options(), results=results)
    root = ET.fromstring(junit(report))
    [suite] = root.findall("testsuite")
    assert suite.get("failures") == ("1" if failures else "0")
    failure = suite.find("testcase[@name='regression_test.txt']/failure")
    assert (failure is not None) == bool(failures)
    if failures:
        assert failure.get("message") == "".join(c if _xml_char(c) else "\ufffd" for c in f"loop 0, {step}: {evidence}")


def _xml_char(c: str) -> bool:
    n = ord(c)
    return c in "\t\n\r" or 0x20 <= n <= 0xD7FF or 0xE000 <= n <= 0xFFFD or n >= 0x10000


# -- a kernel that misbehaves otherwise -------------------------------------------------------


class Lying(machine.SimMachine):
    """The simulation with one lie told through the machine's interface."""

    def __init__(self, lie: str) -> None:
        super().__init__("fixed")
        self.lie = lie
        self.opened: list[int] = []

    def device_info(self, fd: int) -> str:
        if self.lie == "answers after unregistration":
            return "au0828"
        file = self.k.files.lookup(fd)
        if self.lie == "EFAULT" and file.task.comm.startswith("open_loop") and file.path == "/dev/media0":
            raise OSError(errno.EFAULT, "Bad address")
        return super().device_info(fd)

    def media_nodes(self) -> list[str]:
        return [*super().media_nodes(), *(["/dev/media7"] if self.lie == "stale node" else [])]

    def open(self, path: str, comm: str) -> int:
        fd = super().open(path, comm)
        if comm == "media_device_test":
            self.opened.append(fd)
        return fd

    def close(self, fd: int) -> None:
        if self.lie == "leaked fd" and self.opened[1:2] == [fd]:
            return  # the second file media_device_test opens is never released
        super().close(fd)

    def rmmod(self, module: str) -> None:
        if self.lie == "rmmod refused" and module == "snd_usb_audio":
            raise OSError(errno.EBUSY, f"rmmod: ERROR: Module {module} is in use")
        super().rmmod(module)


def lying_soak(lie: str) -> dict[str, ScenarioResult]:
    first = Lying(lie)
    s = scenarios.Soak(lambda: Lying(lie), Options(loops=3))
    s.find(first)
    return {r.name: r for r in s.run(first)}


@pytest.mark.parametrize(
    ("lie", "failing", "step", "evidence"),
    [
        (
            "answers after unregistration",
            {DEVICE_TEST},
            "MEDIA_IOC_DEVICE_INFO #1 on /dev/media0 kept across the unregistration",
            "answered (driver 'au0828') for a device that is unregistered: expected EIO",
        ),
        ("stale node", set(SCENARIOS), "start", "/dev/media7 exists with no registered media device behind it"),
        (
            "EFAULT",
            {REGRESSION},
            "open loop 0 (/dev/media0)",
            "MEDIA_IOC_DEVICE_INFO on /dev/media0: EFAULT: Bad address",
        ),
        (
            "rmmod refused",
            {REGRESSION},
            "rmmod snd_usb_audio",
            "refused: EBUSY: rmmod: ERROR: Module snd_usb_audio is in use",
        ),
        ("leaked fd", {DEVICE_TEST}, "end", "/sys/module/mc/refcnt 5 before, 6 after"),
    ],
)
def test_each_kind_of_evidence_fails_its_scenario(lie: str, failing: set[str], step: str, evidence: str) -> None:
    results = lying_soak(lie)
    assert {name for name, r in results.items() if r.result == "fail"} == failing
    found = [(f.step, f.evidence) for name in failing for f in results[name].failures]
    assert (step, evidence) in found, found


# -- refusals (exit 2) ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "why"),
    [
        (["--source", "live", "--race-window", "5"], "--race-window widens a window inside the simulated kernel"),
        (["--source", "rig", "--race-window", "5"], "--race-window widens a window inside the simulated kernel"),
        (["--source", "live", "--read-only"], "--read-only: the soak binds and unbinds drivers"),
        (["--source", "rig", "--read-only"], "--read-only: the soak binds and unbinds drivers"),
        (["--source", "live", "--variant", "fixed"], "--variant picks a simulated design"),
        (["--device", "media1"], "(uvcvideo) is its driver's alone"),
        (["--device", "nothing-here"], "no media device matches 'nothing-here'"),
    ],
)
def test_refused_with_exit_status_2(
    argv: list[str], why: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from mdtui.rig import launch

    monkeypatch.delenv("MDTUI_RIG_CONTROL", raising=False)
    monkeypatch.setattr(launch, "run", lambda *_: pytest.fail("the rig was started"))
    rc, out = run(*argv)
    assert rc == 2 and out == ""
    assert why in capsys.readouterr().err


def test_live_needs_root(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MDTUI_RIG_CONTROL", raising=False)
    monkeypatch.setattr(soak.os, "geteuid", lambda: 1000)
    assert run("--source", "live", "--yes") == (2, "")
    assert "needs root" in capsys.readouterr().err


def target() -> scenarios.Target:
    m = machine.SimMachine("fixed")
    return scenarios.find_target(m.snapshot(), None)


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_live_asks_first_and_only_on_a_terminal() -> None:
    m, t = machine.SimMachine("fixed"), target()
    err = io.StringIO()
    assert soak.confirm(m, t, stdin=io.StringIO("y\n"), stderr=err) is False  # no terminal: no
    assert "pass --yes to run it without asking" in err.getvalue()
    for answer, go in (("y\n", True), ("yes\n", True), ("\n", False), ("n\n", False), ("", False)):
        err = Terminal()
        assert soak.confirm(m, t, stdin=Terminal(answer), stderr=err) is go
        assert err.getvalue().endswith("Go on? [y/N] ")
        assert "unbind and bind au0828 and snd-usb-audio on USB 1-1" in err.getvalue()


def test_source_rig_runs_the_live_soak_inside_the_rig(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from mdtui.rig import launch

    calls = []
    monkeypatch.setattr(launch, "run", lambda command, script, variant: calls.append((command, script, variant)) or 7)
    rc, _ = run("--source", "rig", "--variant", "v4", "--loops", "3", "--json", "--junit", str(tmp_path / "j.xml"))
    assert rc == 2  # the rig execs, its status is the soak's; it returns only when it cannot start
    [(command, script, variant)] = calls
    assert variant == "v4" and script is None
    assert command == [
        "mdtui", "soak", "--source", "live", "--yes", "--loops", "3", "--json", "--junit", str(tmp_path / "j.xml")
    ]  # fmt: skip


def test_rig_variant_is_read_from_the_rig_servers_command_line(tmp_path: Path) -> None:
    """A client of the rig cannot ask it which design runs; its server's arguments say."""
    proc = tmp_path / "proc"
    chain = {
        300: (200, ["/usr/bin/python3", "-m", "pytest"]),
        200: (100, ["/usr/bin/python3", "-m", "mdtui.rig.server", "--variant", "v10", "--", "pytest"]),
        100: (1, ["init"]),
    }
    for pid, (ppid, argv) in chain.items():
        (proc / str(pid)).mkdir(parents=True)
        (proc / str(pid) / "stat").write_text(f"{pid} (x y) S {ppid} 0 0\n")
        (proc / str(pid) / "cmdline").write_bytes(b"\0".join(a.encode() for a in argv) + b"\0")
    assert machine.rig_variant(proc, pid=300) == "v10"
    (proc / "200" / "cmdline").write_bytes(b"python3\0-m\0mdtui.rig.server\0--\0mdtui\0--variant\0x\0")
    assert machine.rig_variant(proc, pid=300) == "mainline"  # the server's default; COMMAND's words do not count
    assert machine.rig_variant(proc, pid=100) is None


# -- the pieces ----------------------------------------------------------------------------


def test_kernel_log_reports_count_once_each() -> None:
    """A report is its headline; its body (RIP, the trace, Oops after BUG) is not counted again."""
    log = [
        "usb 1-1: new high-speed USB device number 2 using xhci_hcd",
        "------------[ cut here ]------------",
        "WARNING: CPU: 0 PID: 1000 at kernel/module.c:262 module_assert_mutex+0x20/0x30",
        "Modules linked in: au0828(+) dvb_core videodev mc",
        "CPU: 0 PID: 1000 Comm: modprobe Not tainted 6.12.0 #1",
        "RIP: 0010:module_assert_mutex+0x20/0x30",
        "Call Trace:",
        " find_module+0x9/0x20",
        "---[ end trace 0000000000000000 ]---",
        "refcount_t: addition on 0; use-after-free.",
        "==================================================================",
        "BUG: KASAN: use-after-free in media_device_usb_allocate+0x2c/0x170 [mc]",
        "Read of size 4 at addr ffff888003d5c018 by task modprobe/1201",
        "==================================================================",
        "BUG: unable to handle kernel paging request at ffffffffa039b280",
        "IP: try_module_get",
        "Oops: 0000 [#1] SMP",
        "---[ end trace 0000000000000000 ]---",
        "general protection fault, probably for non-canonical address 0xdead000000000100: 0000 [#2] SMP",
        "WARNING: possible circular locking dependency detected",
        "au0828 1-1:1.0: au0828_usb_disconnect()",
    ]
    reports = machine.Reports()
    found = reports.feed(log[:5]) + reports.feed(log[5:])  # a report may span two reads
    assert [e.kind for e in found] == ["lockdep", "refcount_t", "kasan", "oops", "gpf", "lockdep"]
    assert found[0].text == log[2] and found[3].text == log[14]


def test_ioctl_errnos_the_kernel_may_return_during_an_unbind() -> None:
    assert {errno.EIO, errno.ENODEV, errno.ENXIO} == machine.ALLOWED_IOCTL
    assert errno.ENOENT in machine.ALLOWED_OPEN and errno.EFAULT not in machine.ALLOWED_OPEN


def test_progress_is_drawn_on_a_terminal_only() -> None:
    assert type(progress.for_stream(io.StringIO())) is scenarios.Progress
    term = Terminal()
    bar = progress.for_stream(term)
    assert isinstance(bar, progress.Bar)
    bar.start(REGRESSION, 10)
    bar.update(REGRESSION, 4, 1)
    bar.finish(REGRESSION, ScenarioResult(REGRESSION, loops=4))
    bar.stop()
    assert "regression_test.txt" in term.getvalue()


def test_options_defaults_and_bounds() -> None:
    def options(*argv: str) -> Options:
        p = argparse.ArgumentParser()
        soak.add_arguments(p)
        return soak.options_from(p.parse_args(list(argv)))

    assert (options().loops, options().duration) == (200, None)
    assert (options("--source", "live").loops, options("--source", "live").jitter) == (20, 0.0)
    assert (options("--duration", "3").loops, options("--duration", "3").duration) == (None, 3.0)
    with pytest.raises(SystemExit):
        options("--loops", "0")


def test_a_junit_parser_reads_the_report(tmp_path: Path) -> None:
    """What CI systems read: junitparser (the JUnit schema's reading) accepts the file, with
    the failing scenario's failure and the passing ones passed."""
    import junitparser

    path = tmp_path / "soak.xml"
    assert run("--variant", "v4", "--loops", "5", "--junit", str(path))[0] == 1
    xml = junitparser.JUnitXml.fromfile(str(path))
    suites = list(xml) if isinstance(xml, junitparser.JUnitXml) else [xml]
    [suite] = suites
    cases = list(suite)
    assert [c.name for c in cases] == list(SCENARIOS)
    results = {c.name: c.result for c in cases}
    failures = [r for rs in results.values() for r in rs if isinstance(r, junitparser.Failure)]
    assert failures and all("module_assert_mutex" in (f.message or "") for f in failures)
    assert suite.tests == 3 and suite.failures == len([rs for rs in results.values() if rs])

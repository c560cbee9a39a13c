"""What a soak says: the header, the summary table, JSON for machines, JUnit XML for CI.

JUnit: one ``<testsuite>`` (inside ``<testsuites>``, as Jenkins, GitLab and junitparser read
it) named after the design that ran, a ``<testcase>`` per scenario, ``<failure message=...
type=KIND>`` with the first evidence as its message and every failure in its text,
``<error>`` for a scenario that could not run; counts and times as the schema's attributes.
"""

from __future__ import annotations

import json
import os
import re
import socket
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from .scenarios import Options, ScenarioResult, Target

#: what XML 1.0 cannot carry (control characters a kernel log line may hold)
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
#: failures listed under the table, per scenario
SHOWN = 10


@dataclass
class Report:
    source: str  # sim | live | rig (live, inside the rig) | ssh:HOST, ssh:HOST (rig) (the target is a rig)
    design: str
    kernel: str
    options: Options
    race_window: float = 0.0
    target: Target | None = None
    results: list[ScenarioResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    started: datetime = field(default_factory=lambda: datetime.now(UTC))
    seconds: float = 0.0
    reason: str | None = None  # the whole soak could not run: why

    @property
    def status(self) -> int:
        """0 every scenario passed, 1 one failed, 2 the soak (or a scenario) could not run."""
        if any(r.result == "fail" for r in self.results):
            return 1
        if self.reason is not None or not self.results or any(r.result == "error" for r in self.results):
            return 2
        return 0

    @property
    def verdict(self) -> str:
        return {0: "pass", 1: "fail", 2: "error"}[self.status]

    @property
    def loops(self) -> int:
        return sum(r.loops for r in self.results)


def header(report: Report) -> str:
    o = report.options
    bound = [f"{o.loops} bind/unbind loops" if o.loops is not None else "bind/unbind loops without a count"]
    if o.duration is not None:
        bound.append(f"at most {o.duration:g} s of them")
    window = f"; race window {report.race_window:g} ms (release:before_lock)" if report.race_window else ""
    lines = [f"mdtui soak on {report.kernel}, allocator design: {report.design}"]
    if report.target is not None:
        lines.append(f"device: {report.target.describe()}")
    lines.append(f"bounds: {', '.join(bound)}{window}")
    return "\n".join(lines) + "\n"


def summary(report: Report) -> str:
    """The table (scenario, loops, result, first evidence), then the failures and notes, then
    the verdict line naming the design."""
    rows = [("scenario", "loops", "result", "first evidence")]
    for r in report.results:
        first = r.first
        evidence = first.line() if first is not None else (r.reason or "-")
        rows.append((r.name, str(r.loops), r.result.upper() if r.result != "pass" else "pass", evidence))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    out = [""]
    for name, loops, result, evidence in rows:
        out.append(f"{name:<{widths[0]}}  {loops:>{widths[1]}}  {result:<{widths[2]}}  {evidence}".rstrip())
    failing = [r for r in report.results if r.failures]
    if failing:
        out += ["", f"failures (design {report.design}):"]
        for r in failing:
            ordered = sorted(r.failures, key=lambda f: f.seq)
            out += [f"  {r.name}: {f.line()}" for f in ordered[:SHOWN]]
            more = len(ordered) - SHOWN + r.dropped
            if more > 0:
                out.append(f"  {r.name}: ... and {more} more")
    notes = [f"{r.name}: {n}" for r in report.results for n in r.notes] + report.notes
    if notes:
        out += ["", "notes:"] + [f"  {n}" for n in notes]
    failed = sum(r.result == "fail" for r in report.results)
    errors = sum(r.result == "error" for r in report.results)
    n = len(report.results)
    where = f"design {report.design}, {report.kernel}"
    if report.status == 1:
        verdict = f"FAIL: {failed} of {n} scenarios failed ({where})"
    elif report.status == 2:
        verdict = f"COULD NOT RUN: {errors} of {n} scenarios could not run ({where})"
    else:
        verdict = f"PASS: {n} of {n} scenarios passed ({where}) in {report.seconds:.1f} s"
    out += ["", verdict]
    return "\n".join(out) + "\n"


def as_json(report: Report) -> dict[str, object]:
    o = report.options
    return {
        "format": "mdtui-soak",
        "version": 1,
        "source": report.source,
        "design": report.design,
        "kernel": report.kernel,
        "device": report.target.as_json() if report.target is not None else None,
        "bounds": {"loops": o.loops, "duration": o.duration, "race_window_ms": report.race_window},
        "started": report.started.isoformat(timespec="seconds"),
        "seconds": round(report.seconds, 3),
        "result": report.verdict,
        "exit_status": report.status,
        "reason": report.reason,
        "scenarios": [
            {
                "name": r.name,
                "title": r.title,
                "result": r.result,
                "loops": r.loops,
                "steps": r.steps,
                "opens": r.opens,
                "seconds": round(r.seconds, 3),
                "reason": r.reason,
                "failures": [
                    {"step": f.step, "loop": f.loop, "kind": f.kind, "evidence": f.evidence}
                    for f in sorted(r.failures, key=lambda f: f.seq)
                ],
                "more_failures": r.dropped,
                "notes": r.notes,
            }
            for r in report.results
        ],
        "notes": report.notes,
    }


def render_json(report: Report) -> str:
    return json.dumps(as_json(report), indent=2) + "\n"


def _x(text: str) -> str:
    return _NOT_XML.sub("\ufffd", text)


def junit(report: Report) -> bytes:
    """The JUnit XML of a soak: one testsuite, a testcase per scenario."""
    failures = sum(r.result == "fail" for r in report.results)
    errors = sum(r.result == "error" for r in report.results) + (report.reason is not None)
    skipped = sum(r.result == "skipped" for r in report.results)
    tests = len(report.results) + (report.reason is not None)
    counts = {
        "tests": str(tests),
        "failures": str(failures),
        "errors": str(errors),
        "skipped": str(skipped),
        "time": f"{report.seconds:.3f}",
    }
    root = ET.Element("testsuites", {"name": "mdtui soak", **counts})
    suite = ET.SubElement(
        root,
        "testsuite",
        {
            "name": _x(f"mdtui soak ({report.source}, design {report.design})"),
            **counts,
            "timestamp": report.started.strftime("%Y-%m-%dT%H:%M:%S"),
            "hostname": _x(socket.gethostname() or "localhost"),
        },
    )
    props = ET.SubElement(suite, "properties")
    values = {"source": report.source, "design": report.design, "kernel": report.kernel}
    if report.target is not None:
        values.update(device=report.target.node, usb_device=report.target.usb, bus_info=report.target.bus_info)
    values.update(
        loops="" if report.options.loops is None else str(report.options.loops),
        duration="" if report.options.duration is None else f"{report.options.duration:g}",
        race_window_ms=f"{report.race_window:g}",
    )
    for name, value in values.items():
        ET.SubElement(props, "property", {"name": name, "value": _x(value)})
    source, design = (re.sub(r"[^A-Za-z0-9_]+", "_", s).strip("_") for s in (report.source, report.design))
    classname = f"mdtui.soak.{source}.{design}"  # ssh:board-a (rig): mdtui.soak.ssh_board_a_rig
    if report.reason is not None:
        case = ET.SubElement(suite, "testcase", {"classname": classname, "name": "setup", "time": "0.000"})
        ET.SubElement(case, "error", {"message": _x(report.reason), "type": "could-not-run"}).text = _x(report.reason)
    for r in report.results:
        case = ET.SubElement(suite, "testcase", {"classname": classname, "name": r.name, "time": f"{r.seconds:.3f}"})
        first = r.first
        if r.result == "fail" and first is not None:
            body = "\n".join(f.line() for f in sorted(r.failures, key=lambda f: f.seq))
            if r.dropped:
                body += f"\n... and {r.dropped} more"
            ET.SubElement(case, "failure", {"message": _x(first.line()), "type": first.kind}).text = _x(body)
        elif r.result == "error":
            why = r.reason or "could not run"
            ET.SubElement(case, "error", {"message": _x(why), "type": "could-not-run"}).text = _x(why)
        elif r.result == "skipped":
            ET.SubElement(case, "skipped", {"message": _x(r.reason or "not run")})
        out = [f"{r.title}; {r.loops} loops, {r.steps} checked steps, {r.opens} opens", *r.notes]
        ET.SubElement(case, "system-out").text = _x("\n".join(out))
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"


def write_junit(path: str, report: Report) -> None:
    """Write the JUnit XML to ``path`` (a temporary file renamed over it: a CI never reads half
    of one)."""
    data = junit(report)
    target = Path(path)
    if target.exists() and not target.is_file():  # /dev/stdout, a FIFO: written straight
        target.write_bytes(data)
        return
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        temporary.write_bytes(data)
        os.replace(temporary, target)
    finally:
        if temporary.exists():
            temporary.unlink()

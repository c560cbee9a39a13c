"""``mdtui soak --source live`` inside the rig: the live code path (sysfs writes, open() and
ioctl() on threads, rmmod/modprobe/unplug through the rig's control socket, the rig's
/dev/kmsg as the kernel log) earns the verdict of the design the rig runs.

Run it on the fixed design with ``mdtui rig --variant fixed -- .venv/bin/python -m pytest
tests/rig/test_soak.py``; ``make test`` runs the rig tier on mainline.  The rig's design is
read from its server's command line (``mdtui.soak.machine.rig_variant``)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from mdtui.soak.machine import rig_variant

#: the exit status each design earns in the rig.  The rig runs every call into the simulated
#: kernel under its one lock, so mainline's release race (an allocate inside the window of
#: another thread's release) cannot happen here, and mainline passes as v10 does; v3 and v4
#: fail on what their design does on every run (rmmod while shared; find_module() without
#: module_mutex)
EXPECTED = {"fixed": 0, "mainline": 0, "v10": 0, "v3": 1, "v4": 1}
DRIVERS = Path("/sys/bus/usb/drivers")


def soak(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mdtui", "soak", "--source", "live", "--yes", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_soak_earns_the_verdict_of_the_rigs_design(tmp_path: Path) -> None:
    variant = rig_variant()
    assert variant in EXPECTED, f"not inside mdtui rig, or an unknown design: {variant}"
    junit = tmp_path / "soak.xml"
    done = soak("--loops", "2", "--junit", str(junit))
    lines = done.stdout.splitlines()
    assert lines[0] == f"mdtui soak on the rig (the simulated kernel behind umockdev), allocator design: {variant}"
    assert done.returncode == EXPECTED[variant], done.stdout + done.stderr
    [suite] = ET.parse(junit).getroot().findall("testsuite")
    assert suite.get("name") == f"mdtui soak (rig, design {variant})" and suite.get("tests") == "3"
    cases = {c.get("name"): c for c in suite.findall("testcase")}
    if EXPECTED[variant] == 0:
        assert lines[-1].startswith(f"PASS: 3 of 3 scenarios passed (design {variant}, the rig")
        assert suite.get("failures") == suite.get("errors") == "0"
        assert any("open+DEVICE_INFO+close on /dev/media0" in line for line in lines)  # the loops ran
    elif variant == "v4":  # the lockdep WARN, read from /dev/kmsg
        for case in cases.values():
            failure = case.find("failure")
            assert failure is not None and failure.get("type") == "lockdep"
            assert "at kernel/module.c:262 module_assert_mutex+0x20/0x30" in failure.get("message")
    else:  # v3: rmmod of the owner allowed while shared, then the oops of the next open
        text = cases["regression_test.txt"].find("failure").text
        # (under whichever number the stick has then: an open loop's fd may have held media0's minor)
        assert re.search(r"rmmod au0828 succeeded while snd-usb-audio shares /dev/media\d", text)
        assert "BUG: unable to handle kernel paging request" in text
    # each scenario leaves the stick as it found it
    assert (DRIVERS / "au0828" / "1-1:1.0").is_symlink()
    assert (DRIVERS / "snd-usb-audio" / "1-1:1.1").is_symlink()


def test_a_report_in_the_kernel_log_fails_the_soak() -> None:
    """The verdict reads /dev/kmsg from the soak's start: a KASAN report logged meanwhile (here
    written to /dev/kmsg, as devkmsg_write() logs it) fails the scenario that was running."""
    line = "BUG: KASAN: use-after-free in media_device_release+0x2c/0x90 [mc]"

    def report_later() -> None:
        time.sleep(2.0)  # media_dev_allocator.sh is running (it takes several seconds in the rig)
        fd = os.open("/dev/kmsg", os.O_WRONLY)
        try:
            os.write(fd, f"<3>{line}".encode())
        finally:
            os.close(fd)

    writer = threading.Thread(target=report_later)
    writer.start()
    try:
        done = soak("--loops", "1", "--json")
    finally:
        writer.join()
    assert done.returncode == 1, done.stdout + done.stderr
    doc = json.loads(done.stdout)
    [failure] = [f for s in doc["scenarios"] for f in s["failures"] if f["kind"] == "kasan"]
    assert failure["evidence"] == line and failure["step"]  # named after the step it came in

"""The media subsystem's own conformance suite on the simulated kernel: ``v4l2-compliance -M``
on every registered /dev/mediaN, for every catalog device, in the default world and after each
lifecycle step (unbind/bind of either sharer, unplug/plug).  Totals are printed at the end of
the run (``COMPLIANCE`` in conftest)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from allocator import CATALOG

from .conftest import COMPLIANCE, control

#: each state the machine is taken through, from the default world (the HVR-950Q on 1-1,
#: the C270 on 1-2), with the HVR-850 plugged on 1-3 first
STEPS = (
    "plug hvr850",
    "unbind snd-usb-audio 1-1:1.1",
    "bind snd-usb-audio 1-1:1.1",
    "unbind au0828 1-1:1.0",
    "bind au0828 1-1:1.0",
    "unbind uvcvideo 1-2:1.0",
    "bind uvcvideo 1-2:1.0",
    "unplug 1-1",
    "plug hvr950q",
)
TOTAL = re.compile(r"^Total for (\S+) device (\S+): (\d+), Succeeded: (\d+), Failed: (\d+), Warnings: (\d+)$", re.M)


def media_nodes() -> list[str]:
    """The registered media devices, as the tools find them (/sys/bus/media/devices)."""
    return sorted(f"/dev/{p.name}" for p in Path("/sys/bus/media/devices").iterdir())


def compliance(node: str) -> tuple[str, int, int, int, int]:
    done = subprocess.run(["v4l2-compliance", "-M", node], capture_output=True, text=True, timeout=120)
    found = TOTAL.search(done.stdout)
    assert found, f"v4l2-compliance -M {node} printed no totals (status {done.returncode}):\n{done.stdout[-2000:]}"
    driver, _, total, ok, failed, warnings = found.groups()
    fails = [ln for ln in done.stdout.splitlines() if "FAIL" in ln or "fail:" in ln]
    assert int(failed) == 0 and done.returncode == 0, f"{node} ({driver}): " + "\n".join(fails)
    return driver, int(total), int(ok), int(failed), int(warnings)


def test_every_catalog_device_passes_in_every_state() -> None:
    drivers_seen: set[str] = set()
    for step in ("", *STEPS):
        if step:
            assert control(step) == "ok", step
        nodes = media_nodes()
        assert nodes, f"no media device after {step!r}"
        for node in nodes:
            driver, total, ok, failed, warnings = compliance(node)
            drivers_seen.add(driver)
            state = step or "default world"
            COMPLIANCE.append(f"{state:<30} {node}: {driver}, {total} tests, {ok} OK, {failed} failed, {warnings} warn")
    assert drivers_seen == {"au0828", "uvcvideo"}
    # every catalog device was in the machine: a device added to the catalog must be added here
    plugged = {"hvr950q", "c270"} | {step.split()[1] for step in STEPS if step.startswith("plug ")}
    assert plugged == set(CATALOG)

"""``--device`` as the media tools name a device: node, bus_info, driver, model; ambiguous
input lists the candidates and exits 2; a replug to a new /dev/mediaN is found by bus_info."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stderr
from pathlib import Path

import pytest

from mdtui.cli import main
from mdtui.commands import Step
from mdtui.selection import Ambiguous, NoSuchDevice, select
from mdtui.sources.sim import build

from ..conftest import fake_clock

TWO_STICKS = [Step(0, "modprobe", (m,)) for m in ("au0828", "snd_usb_audio", "uvcvideo")] + [
    Step(0, "plug", ("hvr950q", "1-1")),
    Step(0, "plug", ("c270", "1-2")),
    Step(0, "plug", ("hvr950q", "1-3")),
]


def snap_of(steps: list[Step]):
    source, failed = build(steps)
    assert not failed
    return source.snapshot()


@pytest.mark.parametrize(
    ("spec", "node"),
    [
        ("media0", "/dev/media0"),
        ("/dev/media2", "/dev/media2"),
        ("usb-0000:00:14.0-3", "/dev/media2"),  # bus_info, as media-ctl -d and v4l2-compliance -z
        ("uvcvideo", "/dev/media1"),  # a driver only one device has
        ("camera (046D", "/dev/media1"),  # a piece of the model, any case
    ],
)
def test_each_way_of_naming_a_device(spec: str, node: str) -> None:
    assert select(snap_of(TWO_STICKS), spec).devnode == node


@pytest.mark.parametrize(("spec", "how"), [("au0828", "driver"), ("hvr-950q", "model")])
def test_a_name_of_several_devices_is_ambiguous(spec: str, how: str) -> None:
    with pytest.raises(Ambiguous) as err:
        select(snap_of(TWO_STICKS), spec)
    assert how in str(err.value) and [d.devnode for d in err.value.candidates] == ["/dev/media0", "/dev/media2"]


@pytest.mark.parametrize("spec", ["media9", "", " ", "/dev/\0media0", "x" * 10_000])
def test_nothing_matches(spec: str) -> None:
    with pytest.raises(NoSuchDevice):
        select(snap_of(TWO_STICKS), spec)


def run(tmp_path: Path, lines: str, *argv: str) -> tuple[int, str, str]:
    script = tmp_path / "machine.txt"
    script.write_text(lines)
    out, err = io.StringIO(), io.StringIO()
    with redirect_stderr(err):
        rc = main(["dump", "--source", "sim", "--script", str(script), *argv], clock=fake_clock(), stdout=out)
    return rc, out.getvalue(), err.getvalue()


WORLD = "".join(f"{step.command} {' '.join(step.args)}\n" for step in TWO_STICKS)


def test_dump_lists_the_candidates_and_exits_2(tmp_path: Path) -> None:
    rc, out, err = run(tmp_path, WORLD, "--device", "au0828")
    assert (rc, out) == (2, "")
    assert "matches 2 media devices by driver" in err
    assert "/dev/media0  usb-0000:00:14.0-1  au0828  WinTV HVR-950Q" in err
    assert "/dev/media2  usb-0000:00:14.0-3  au0828  WinTV HVR-950Q" in err


def test_a_replugged_stick_is_found_by_bus_info_at_its_new_number(tmp_path: Path) -> None:
    # unplug the stick on port 1 and let another device take media0 first: it comes back as media3
    lines = WORLD + "unplug 1-1\nplug c270 1-4\nplug hvr950q 1-1\n"
    rc, out, _ = run(tmp_path, lines, "--device", "usb-0000:00:14.0-1", "--format", "json")
    assert rc == 0
    assert [d["devnode"] for d in json.loads(out)["media_devices"]] == ["/dev/media3"]

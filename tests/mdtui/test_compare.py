"""``mdtui compare``: one script, each allocator design, step by step (issue #13)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from mdtui.cli import main
from mdtui.commands import Step
from mdtui.compare import compare, render_text
from mdtui.script import parse

#: the steps that tell the designs apart: v4 splats on every find_module(), v3 lets the
#: owner go while shared and the next open of /dev/media0 oopses
LIFE = """\
modprobe au0828
modprobe snd_usb_audio
plug hvr950q
rmmod au0828
unbind au0828 1-1:1.0
open /dev/media0 media-ctl
unplug 1-1
"""


@pytest.fixture
def steps() -> list[Step]:
    return parse(LIFE)


def test_each_design_differs_where_its_seed_says(steps: list[Step]) -> None:
    runs = {r.variant: r for r in compare(steps, ["v3", "v4", "v10", "mainline", "fixed"])}
    plug, rmmod, _unbind, open_media, _unplug = 2, 3, 4, 5, 6
    # v4: find_module() without module_mutex, lockdep's WARN at every allocate and delete
    assert any("module_assert_mutex+0x20/0x30" in p for p in runs["v4"].cells[plug].problems)
    assert not any(runs[v].cells[plug].problems for v in ("v3", "v10", "mainline", "fixed"))
    # v3: no owner-module reference, so rmmod of the owner succeeds while shared...
    assert runs["v3"].cells[rmmod].refused is None and runs["v3"].cells[rmmod].refcount == 1
    for v in ("v4", "v10", "mainline", "fixed"):
        assert (runs[v].cells[rmmod].refused or "").startswith("EBUSY: rmmod: ERROR: Module au0828 is in use")
    # ...and the next access to /dev/media0 is the "kernel paging error", naming the process
    [oops] = runs["v3"].cells[open_media].problems
    assert "BUG: unable to handle kernel paging request" in oops and "media-ctl[" in oops
    assert [v for v, r in runs.items() if r.passed] == ["v10", "mainline", "fixed"]


def test_the_followed_device_is_read_after_every_step(steps: list[Step]) -> None:
    [run] = compare(steps, ["mainline"])
    assert [(c.refcount, c.owner_refcnt, c.devnode) for c in run.cells] == [
        (None, None, None),  # no device yet
        (None, None, None),
        (2, 1, "/dev/media0"),  # au0828 and snd-usb-audio; au0828's refcnt held by the sharer
        (2, 1, "/dev/media0"),  # rmmod refused
        (1, 1, "/dev/media0"),
        (1, 2, "/dev/media0"),  # the open pins the devnode's owner module
        (None, None, None),  # unplugged: released
    ]


def test_the_table(steps: list[Step], snapshot: object) -> None:
    assert render_text(steps, compare(steps, ["v3", "v4", "mainline"]), width=140) == snapshot


def test_json_and_the_cli(tmp_path: Path) -> None:
    script = tmp_path / "life.txt"
    script.write_text(LIFE)
    out = io.StringIO()
    assert main(["compare", "--script", str(script), "--variants", "v3,fixed", "--format", "json"], stdout=out) == 0
    doc = json.loads(out.getvalue())
    assert doc["variants"] == ["v3", "fixed"]
    assert [s["step"] for s in doc["steps"]][3] == "rmmod au0828"
    assert doc["steps"][3]["results"]["v3"]["refused"] is None
    assert doc["verdict"]["fixed"] == {"passed": True, "problems": []}
    assert doc["verdict"]["v3"]["passed"] is False


def test_usage_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    script = tmp_path / "life.txt"
    script.write_text(LIFE)
    with pytest.raises(SystemExit) as exit_:
        main(["compare", "--script", str(script), "--variants", "v5"])
    assert exit_.value.code == 2
    assert "unknown design v5 (known: v3, v4, v10, mainline, fixed)" in capsys.readouterr().err
    (tmp_path / "bad.txt").write_text("frobnicate\n")
    assert main(["compare", "--script", str(tmp_path / "bad.txt")]) == 2
    assert "bad.txt:1: unknown command 'frobnicate'" in capsys.readouterr().err

"""``mdtui compare``: one lifecycle script run on each allocator design, step by step (#13).

Each design (``allocator.mc_dev_allocator.VARIANTS``: the 2016 patch's v3 and v4, the 2019
v10, mainline, fixed) gets its own simulated machine, built by the script from empty, on the
same clock; after every step the shared media device's kref count, its owner module's refcnt
and its /dev node are read, with what went wrong in that step: a step the kernel refused (its
errno), a kernel WARN or oops, an invariant ``check()`` finds broken.  The last row is the
verdict: a design passes when nothing went wrong in any step.

The device followed is the first shared one (allocated through ``media_device_usb_allocate``)
that the script makes, by its key USB device (``1-1``), or ``--device``.
"""

from __future__ import annotations

import argparse
import errno
import json
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import IO, Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from allocator.graph_refs import stale_graph_references
from allocator.mc_dev_allocator import VARIANTS

from .commands import Step
from .script import ScriptError, load
from .sources.sim import SimSource, build, fake_clock

DESCRIPTION = """\
Run one lifecycle script on each design of the Media Device Allocator API the simulation
models, step by step, and show side by side what each design holds after every step: the
shared media device's refcount, its owner module's refcnt, its /dev node, and what went wrong
(a refused step with its errno, a kernel WARN or oops, a broken invariant).  The last row is
each design's verdict.  Designs: v3 and v4 (the 2016 patch), v10 (2019), mainline, fixed.

examples:
  mdtui compare --script lifecycle.txt
  mdtui compare --script lifecycle.txt --variants v3,mainline --format json
"""


def variant_list(text: str) -> tuple[str, ...]:
    """``v3,mainline`` → the designs, in the order given; an unknown one is a usage error."""
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in VARIANTS]
    if unknown or not names:
        known = ", ".join(VARIANTS)
        raise argparse.ArgumentTypeError(f"unknown design {', '.join(unknown) or repr(text)} (known: {known})")
    return tuple(dict.fromkeys(names))


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--script", required=True, metavar="FILE", help="the lifecycle script to run on each design")
    p.add_argument(
        "--variants",
        type=variant_list,
        default=tuple(VARIANTS),
        metavar="LIST",
        help=f"designs to compare, comma-separated (default: all: {','.join(VARIANTS)})",
    )
    p.add_argument(
        "--format",
        choices=("text", "json"),
        default="text",
        help="text: a table (styled on a terminal); json: a document for machines",
    )
    p.add_argument("--device", metavar="USB", help="the key USB device to follow (default: the first shared one)")


@dataclass(frozen=True, slots=True)
class Cell:
    """One design after one step."""

    refcount: int | None  # None: no shared media device (yet, or any more)
    owner: str | None
    owner_refcnt: int | None
    devnode: str | None
    refused: str | None  # the errno name when the kernel refused the step
    problems: tuple[str, ...]  # what went wrong in this step


@dataclass(frozen=True, slots=True)
class Run:
    variant: str
    cells: tuple[Cell, ...]  # one per step
    problems: tuple[str, ...]  # everything that went wrong, in order

    @property
    def passed(self) -> bool:
        return not self.problems


def run_design(variant: str, steps: Sequence[Step], device: str | None) -> Run:
    """The script on a fresh simulated machine of one design."""
    source, _ = build([], variant=variant, clock=fake_clock())
    seen: Counter[str] = Counter()
    followed = device
    cells, problems = [], []
    for step in steps:
        refused = None
        try:
            source.perform(step)
        except OSError as exc:
            refused = exc.strerror and f"{_errno(exc)}: {exc.strerror}"
        now = Counter(_problems(source))
        new = list((now - seen).elements())
        seen = now
        followed = followed or _first_shared(source)
        cells.append(_cell(source, followed, refused, tuple(new)))
        problems += [f"{step}: {p}" for p in new]
    return Run(variant, tuple(cells), tuple(problems))


def _problems(source: SimSource) -> list[str]:
    """What is wrong now: the kernel's WARNs and oopses, broken invariants, and references into
    the graph that outlived their target (the hazard Sakari Ailus predicted in review)."""
    k = source.kernel
    out = [f"{v.kind}: {v.device}: {v.message}" for v in k.check()]
    return out + [
        f"stale graph reference: {r.holder}.{r.field} -> {r.target} ({r.why})" for r in stale_graph_references(k)
    ]


def _errno(exc: OSError) -> str:
    return errno.errorcode.get(exc.errno or 0, str(exc.errno))


def _first_shared(source: SimSource) -> str | None:
    for state in source.kernel.view.media_devices():
        dev = state.mdev.dev
        if state.shared and dev is not None:
            return dev.name
    return None


def _cell(source: SimSource, device: str | None, refused: str | None, problems: tuple[str, ...]) -> Cell:
    for state in source.kernel.view.media_devices():
        if state.shared and state.mdev.dev is not None and state.mdev.dev.name == device:
            return Cell(state.refcount, state.owner, state.owner_refcnt, state.mdev.devnode_name, refused, problems)
    return Cell(None, None, None, None, refused, problems)


def compare(steps: Sequence[Step], variants: Sequence[str], device: str | None = None) -> list[Run]:
    return [run_design(v, steps, device) for v in variants]


# -- output ------------------------------------------------------------------------------


def to_dict(script: str, steps: Sequence[Step], runs: Sequence[Run]) -> dict[str, Any]:
    return {
        "script": script,
        "variants": [r.variant for r in runs],
        "steps": [
            {"line": step.line, "step": str(step), "results": {r.variant: asdict(r.cells[n]) for r in runs}}
            for n, step in enumerate(steps)
        ],
        "verdict": {r.variant: {"passed": r.passed, "problems": list(r.problems)} for r in runs},
    }


def table(steps: Sequence[Step], runs: Sequence[Run]) -> Table:
    t = Table(title="one script, each design", title_justify="left", show_lines=True)
    t.add_column("step", no_wrap=True)
    for r in runs:
        t.add_column(r.variant)
    for n, step in enumerate(steps):
        t.add_row(f"{step.line:>3} {step}", *(_cell_text(r.cells[n]) for r in runs))
    verdicts = [
        Text("pass", style="bold green") if r.passed else Text(f"FAIL: {len(r.problems)} problem(s)", style="bold red")
        for r in runs
    ]
    t.add_row(Text("verdict", style="bold"), *verdicts)
    return t


def _cell_text(c: Cell) -> Text:
    if c.refcount is None:
        out = Text("no shared device", style="dim")
    else:
        owner = f"{c.owner} {c.owner_refcnt if c.owner_refcnt is not None else '-'}" if c.owner else "no owner ref"
        out = Text(f"ref {c.refcount} · {owner} · {(c.devnode or 'unregistered').removeprefix('/dev/')}")
    if c.refused:
        out.append(f"\nrefused: {c.refused}", style="yellow")
    for p in c.problems:
        out.append(f"\n{p}", style="red")
    return out


def render_text(steps: Sequence[Step], runs: Sequence[Run], width: int = 160, color: bool = False) -> str:
    console = Console(width=width, record=True, color_system="standard" if color else None, file=_Null())
    console.print(table(steps, runs))
    return console.export_text(styles=color)


class _Null:
    def write(self, _text: str) -> int:
        return 0

    def flush(self) -> None:
        pass


def run(args: argparse.Namespace, out: IO[str]) -> int:
    try:
        steps = load(args.script)
    except ScriptError as exc:
        print(f"mdtui compare: {exc}", file=sys.stderr)
        return 2
    runs = compare(steps, args.variants, args.device)
    if args.format == "json":
        out.write(json.dumps(to_dict(args.script, steps, runs), indent=1) + "\n")
    elif out.isatty():
        Console(file=out).print(table(steps, runs))
    else:
        out.write(render_text(steps, runs))
    return 0

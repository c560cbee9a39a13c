"""Apps on deterministic simulated machines, for pilot and snapshot tests."""

from __future__ import annotations

from pathlib import Path

from mdtui.app import MdtuiApp
from mdtui.script import Step, parse
from mdtui.sources.sim import build

from .conftest import fake_clock


def make_app(script: str | None = None, export_dir: Path | None = None) -> MdtuiApp:
    """The default world (or the machine ``script`` builds) with a fake clock."""
    steps = parse(script) if script is not None else None
    source, _ = build(steps, clock=fake_clock())
    return MdtuiApp(source, export_dir=export_dir)


def step(text: str) -> Step:
    [s] = parse(text)
    return s

"""Apps on deterministic simulated machines, for pilot tests."""

from __future__ import annotations

from mdtui.scenarios import make_app
from mdtui.script import Step, parse

__all__ = ["make_app", "step"]


def step(text: str) -> Step:
    [s] = parse(text)
    return s

"""The mdtui tier's fixtures: the app on the default world (a clock ticking 1 ms per
reading), driven by a pilot, once everything it started has settled."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio
from textual.pilot import Pilot

from mdtui.commands import Step
from mdtui.scenarios import make_app, settle
from mdtui.script import parse


def step(text: str) -> Step:
    """One lifecycle step, as a script line."""
    [s] = parse(text)
    return s


@pytest_asyncio.fixture
async def pilot(tmp_path: Path) -> AsyncIterator[Pilot]:
    app = make_app(export_dir=tmp_path)
    async with app.run_test(size=(120, 40)) as driver:
        await settle(app)
        yield driver

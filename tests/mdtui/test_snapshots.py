"""Snapshot tests of the main screens (pytest-textual-snapshot), one per scenario in
mdtui/scenarios.py; the README's screenshots/ are made from the same scenarios."""

from __future__ import annotations

import pytest

from mdtui.scenarios import SCENARIOS, Scenario, make_app, run_before


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_screen(snap_compare, scenario: Scenario) -> None:
    assert snap_compare(make_app(theme=scenario.theme), terminal_size=scenario.size, run_before=run_before(scenario))

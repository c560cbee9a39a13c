"""The TUI's theme (mdtui/theme.py): --theme, the palette's choice remembered, a file that
names no theme ignored, and the CLI's list of names equal to Textual's."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.theme import BUILTIN_THEMES

from mdtui import theme
from mdtui.cli import THEMES, main
from mdtui.scenarios import make_app, settle


@pytest.fixture(autouse=True)
def own_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test remembers into a state directory of its own."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))


def test_the_cli_names_textual_s_themes() -> None:
    assert tuple(sorted(BUILTIN_THEMES)) == THEMES


def test_an_unknown_theme_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--theme", "no-such-theme"])
    assert exit_.value.code == 2
    assert "invalid choice: 'no-such-theme'" in capsys.readouterr().err


def test_choose_prefers_the_option_then_the_remembered_then_the_default() -> None:
    assert theme.choose(None) == theme.DEFAULT  # nothing remembered
    theme.remember("nord")
    assert theme.choose(None) == "nord"
    assert theme.choose("dracula") == "dracula"
    theme.remembered_path().write_text("not-a-theme\n")  # edited, or of another Textual
    assert theme.choose(None) == theme.DEFAULT


@pytest.mark.asyncio
async def test_a_theme_chosen_in_the_app_is_remembered_and_one_given_is_not() -> None:
    app = make_app(theme="gruvbox")
    async with app.run_test() as pilot:
        await settle(app)
        assert app.theme == "gruvbox"
        assert theme.remembered() is None  # --theme is for this run
        app.theme = "textual-light"  # what the palette's "Change theme" does
        await pilot.pause()
    assert theme.remembered() == "textual-light"

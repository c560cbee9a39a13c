"""The TUI's theme (mdtui/theme.py): --theme, the palette's choice remembered, a file that
names no theme ignored, and the CLI's list of names equal to Textual's."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.theme import BUILTIN_THEMES

from mdtui import theme
from mdtui.cli import THEMES, main
from mdtui.scenarios import make_app, settle
from mdtui.watch import Printer


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


@pytest.mark.parametrize("no_color", [False, True])
def test_watch_takes_no_colour_under_no_color(monkeypatch: pytest.MonkeyPatch, no_color: bool) -> None:
    """https://no-color.org: styles (bold, dim) may stay, colours go."""
    if no_color:
        monkeypatch.setenv("NO_COLOR", "1")
    else:
        monkeypatch.delenv("NO_COLOR", raising=False)
    out = io.StringIO()
    Printer(out, False, True).line(1.0, "uevent", "media0", "add /devices/...")  # as on a terminal
    coloured = re.compile(r"\x1b\[([0-9]+;)*(3[0-7]|9[0-7])(;[0-9]+)*m")
    assert bool(coloured.search(out.getvalue())) is not no_color, repr(out.getvalue())


def test_dump_text_is_never_styled(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dump", "--source", "sim"]) == 0
    assert "\x1b[" not in capsys.readouterr().out


def test_switching_the_theme_in_the_palette(snap_compare) -> None:
    """The palette's "Change theme", as a person does it: the whole screen in the new theme."""

    async def switch(pilot: Pilot[None]) -> None:
        app = pilot.app
        await settle(app)  # type: ignore[arg-type]
        await pilot.press("ctrl+p", *"theme", "enter")
        await pilot.pause()
        await pilot.press(*"textual-light", "enter")
        await settle(app)  # type: ignore[arg-type]
        assert app.theme == "textual-light"

    assert snap_compare(make_app(), run_before=switch, terminal_size=(120, 40))
    assert theme.remembered() == "textual-light"

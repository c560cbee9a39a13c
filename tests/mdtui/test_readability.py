"""Every screen readable: in Textual's dark and light themes (truecolor), and on a terminal
of 16 colours (TERM=xterm), where mdtui's default is an ANSI theme.

Each scenario's screen is rendered as Textual renders it, and every cell of text (a letter or
a digit) is measured: the WCAG contrast ratio of its colour on its background must be at
least 3:1.  For 16 colours, each colour is first rounded to the terminal's 16 as Textual's
output does (rich's ``downgrade``) and measured in rich's standard palette; a cell in the
terminal's default colours is the terminal's own pairing and is not measured.  Under a
modal screen (help, the palette) only the dialog is measured: what it dims behind it is
meant to recede."""

from __future__ import annotations

import pytest
from rich._palettes import STANDARD_PALETTE
from rich.cells import cell_len
from rich.color import Color, ColorSystem
from rich.style import Style
from textual.geometry import Region
from textual.screen import ModalScreen, Screen
from textual.strip import Strip

from mdtui import theme
from mdtui.scenarios import SCENARIOS, Scenario, make_app, run_before

LEAST = 3.0


def luminance(rgb: tuple[int, int, int]) -> float:
    def channel(value: int) -> float:
        v = value / 255
        return v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4

    r, g, b = rgb
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)


def contrast(a: tuple[int, int, int], b: tuple[int, int, int]) -> float:
    la, lb = luminance(a), luminance(b)
    return (max(la, lb) + 0.05) / (min(la, lb) + 0.05)


def rgb(color: Color, colours: int) -> tuple[int, int, int] | None:
    """The colour as the terminal shows it; None for the terminal's default colour."""
    if colours == 16:
        color = color.downgrade(ColorSystem.STANDARD)
        return None if color.number is None else tuple(STANDARD_PALETTE[color.number])  # type: ignore[return-value]
    return None if color.is_default else tuple(color.get_truecolor())  # type: ignore[return-value]


def measured_region(screen: Screen[object]) -> Region:
    if isinstance(screen, ModalScreen) or type(screen).__name__ == "CommandPalette":
        return Region.from_union([child.region for child in screen.children])
    return screen.region


#: the themes measured: (name, colours: 0 for truecolor, 16 for a terminal of 16)
THEMES = [("textual-dark", 0), ("textual-light", 0), ("ansi-dark", 16), ("ansi-light", 16)]


async def unreadable(scenario: Scenario, themes: list[tuple[str, int]]) -> dict[str, list[tuple[float, str]]]:
    """Per theme, the text cells under ``LEAST``: (ratio, the cell).  One app per
    scenario, its theme switched under it (as the palette's "Change theme" does)."""
    found = {}
    app = make_app(theme=themes[0][0])
    async with app.run_test(size=scenario.size) as pilot:
        await run_before(scenario)(pilot)
        for name, colours in themes:
            app.theme = name
            await pilot.pause()
            region = measured_region(app.screen)
            update = app.screen._compositor.render_update(full=True, screen_stack=app._background_screens)
            found[name] = measure(update.strips, region, colours)  # type: ignore[attr-defined]
    return found


def measure(lines: list[list[Strip]], region: Region, colours: int) -> list[tuple[float, str]]:
    # the screen as the terminal shows it, cell by cell (wide characters take two)
    cells: dict[tuple[int, int], tuple[str, Style]] = {}
    for y, chops in enumerate(lines):
        x = 0
        for segment in (segment for chop in chops for segment in chop):
            for char in segment.text:
                if segment.style is not None:
                    cells[x, y] = (char, segment.style)
                x += cell_len(char)
    bad: list[tuple[float, str]] = []
    for (x, y), (char, style) in sorted(cells.items(), key=lambda kv: kv[0][::-1]):
        if char.isalnum() and region.contains(x, y) and style.color is not None and style.bgcolor is not None:
            fg, bg = (style.bgcolor, style.color) if style.reverse else (style.color, style.bgcolor)
            a, b = rgb(fg, colours), rgb(bg, colours)
            if a is not None and b is not None and (ratio := contrast(a, b)) < LEAST:
                bad.append((round(ratio, 2), f"{char!r} at {x},{y}"))
    return bad


@pytest.mark.asyncio
@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
async def test_every_text_cell_is_readable(scenario: Scenario) -> None:
    assert await unreadable(scenario, THEMES) == {name: [] for name, _ in THEMES}


@pytest.mark.asyncio
async def test_the_measure_finds_what_a_16_colour_terminal_made_unreadable() -> None:
    """textual-dark's colours rounded to 16: the footer's orange keys become red on grey."""
    bad = await unreadable(SCENARIOS[0], [("textual-dark", 16)])
    assert (2.37, "'q' at 1,39") in bad["textual-dark"]


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"TERM": "xterm"}, "ansi-dark"),
        ({"TERM": "linux"}, "ansi-dark"),
        ({"TERM": "xterm-256color"}, "textual-dark"),
        ({"TERM": "xterm", "COLORTERM": "truecolor"}, "textual-dark"),
        ({"TERM": "xterm-256color", "TEXTUAL_COLOR_SYSTEM": "standard"}, "ansi-dark"),
    ],
)
def test_a_16_colour_terminal_gets_an_ansi_theme_by_default(environ: dict[str, str], expected: str) -> None:
    assert theme.default(environ)[0] == expected

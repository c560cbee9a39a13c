"""The TUI fuzzer: random key sequences, bursts, palette input and resizes, driven through
Textual's Pilot on the default world and on an emptied machine.  After every run the app
is alive (or quit cleanly with ``q``), no worker raised, and the simulated kernel's
invariants hold.

Bounded for ``make test``; ``MDTUI_SOAK=1`` runs many more examples (bench/RESULTS.md).
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from textual import events

from mdtui.app import MdtuiApp
from mdtui.scenarios import fake_clock, settle
from mdtui.sources.sim import build

SOAK = bool(os.environ.get("MDTUI_SOAK"))
EXAMPLES = 400 if SOAK else 12

#: every key the app binds, and the ones that move around dialogs, lists, tabs and inputs
BOUND = sorted({key for b in MdtuiApp.BINDINGS for key in b.key.split(",")})
KEYS = [
    *BOUND,
    *("enter", "escape", "tab", "shift+tab", "up", "down", "left", "right", "pageup", "pagedown"),
    *("home", "end", "space", "backspace", "ctrl+p", "a", "z", "9", "slash"),
]


@dataclass(frozen=True)
class Press:
    key: str


@dataclass(frozen=True)
class Burst:
    """Keys delivered at once, as a terminal delivers keys typed faster than a frame."""

    keys: tuple[str, ...]


@dataclass(frozen=True)
class Type:
    """Text typed into whatever has focus (the palette, the filter, a dialog)."""

    text: str


@dataclass(frozen=True)
class Resize:
    width: int
    height: int


OPS = st.one_of(
    st.sampled_from(KEYS).map(Press),
    st.lists(st.sampled_from(KEYS), min_size=2, max_size=5).map(lambda k: Burst(tuple(k))),
    st.text(alphabet="aubindplgcmor0123 :-/[]", min_size=1, max_size=8).map(Type),
    st.builds(Resize, st.integers(20, 200), st.integers(8, 60)),
)


def _key_event(key: str) -> events.Key:
    characters = {"enter": "\r", "space": " ", "slash": "/", "question_mark": "?", "tab": "\t"}
    return events.Key(key, characters.get(key, key if len(key) == 1 else None))


async def _drive(app: MdtuiApp, ops: list[object]) -> None:
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app)
        for op in ops:
            if app.return_code is not None:  # `q` quit it: nothing more to drive
                break
            if isinstance(op, Press):
                await pilot.press(op.key)
            elif isinstance(op, Burst):
                for key in op.keys:
                    app.post_message(_key_event(key))
                await pilot.pause()
            elif isinstance(op, Type):
                await pilot.press(*(" " if c == " " else c for c in op.text))
            elif isinstance(op, Resize):
                await pilot.resize_terminal(op.width, op.height)
            await settle(app)
        await pilot.pause()
    # leaving run_test re-raises any exception the app or a worker hit


@settings(max_examples=EXAMPLES, deadline=None, derandomize=not SOAK, suppress_health_check=list(HealthCheck))
@given(empty=st.booleans(), ops=st.lists(OPS, max_size=20))
def test_random_keys_never_crash_the_tui(tmp_path_factory, empty: bool, ops: list[object]) -> None:
    source, _ = build([] if empty else None, clock=fake_clock())
    app = MdtuiApp(source, export_dir=tmp_path_factory.mktemp("exports"))
    asyncio.run(_drive(app, ops))
    assert app.return_code in (None, 0)  # alive, or quit with q
    assert source.kernel.check() == []
    assert source.kernel.events.subscriber_errors == []


def test_found_palette_opened_and_paged_in_one_frame() -> None:
    """Found by this fuzzer: Textual's OptionList paged before its first layout (KeyError)."""
    source, _ = build(clock=fake_clock())
    app = MdtuiApp(source)
    asyncio.run(_drive(app, [Press("1"), Burst(("1", "ctrl+p", "pageup"))]))
    assert app.return_code is None


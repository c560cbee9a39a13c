"""Workarounds for crashes in the pinned Textual (8.2.8), found by tests/test_tui_fuzz.py.

Each is the smallest guard that keeps the app alive; remove one when the pinned Textual no
longer needs it (its regression test in tests/test_tui_fuzz.py says whether it does).

* ``OptionList`` page up/down before the list has been laid out (the command palette opened
  and ``pageup`` pressed in the same frame) looks up the line of the highlighted option in a
  line map that is still empty: ``KeyError``.  With no region there is no page to move by,
  so the key does nothing, as it would on an empty list.
"""

from __future__ import annotations

from collections.abc import Callable

from textual.widgets import OptionList

_PageAction = Callable[[OptionList], None]


def _laid_out_only(action: _PageAction) -> _PageAction:
    def guarded(self: OptionList) -> None:
        if self.highlighted is not None and not self.scrollable_content_region:
            return
        action(self)

    guarded.__doc__ = action.__doc__
    guarded.__wrapped__ = action  # type: ignore[attr-defined]
    return guarded


def apply() -> None:
    """Install the guards (idempotent)."""
    for name in ("action_page_up", "action_page_down"):
        action = getattr(OptionList, name)
        if not hasattr(action, "__wrapped__"):
            setattr(OptionList, name, _laid_out_only(action))

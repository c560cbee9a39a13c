"""Workarounds for crashes in the pinned Textual (8.2.8), found by tests/test_tui_fuzz.py.

Each is the smallest guard that keeps the app alive; remove one when the pinned Textual no
longer needs it (its regression test in tests/test_tui_fuzz.py says whether it does).

* ``Screen.dismiss()`` twice (enter twice, faster than the screen is popped: a choice, the
  command palette) pops the screen *below* it, and calls the caller's callback again; with
  the main screen gone, ``ScreenStackError``.  A dismiss of a screen that is no longer the
  active one is ignored.
* ``OptionList`` page up/down before the list has been laid out (the command palette opened
  and ``pageup`` pressed in the same frame) looks up the line of the highlighted option in a
  line map that is still empty: ``KeyError``.  With no region there is no page to move by,
  so the key does nothing, as it would on an empty list.
"""

from __future__ import annotations

from collections.abc import Callable

from textual.await_complete import AwaitComplete
from textual.screen import Screen
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


def _active_only(dismiss: Callable[..., AwaitComplete]) -> Callable[..., AwaitComplete]:
    def guarded(self: Screen, result: object = None) -> AwaitComplete:
        if self is not self.app.screen:
            return AwaitComplete()  # answered already: nothing to pop, nobody to call back
        return dismiss(self, result)

    guarded.__doc__ = dismiss.__doc__
    guarded.__wrapped__ = dismiss  # type: ignore[attr-defined]
    return guarded


def apply() -> None:
    """Install the guards (idempotent)."""
    if not hasattr(Screen.dismiss, "__wrapped__"):
        Screen.dismiss = _active_only(Screen.dismiss)  # type: ignore[method-assign]
    for name in ("action_page_up", "action_page_down"):
        action = getattr(OptionList, name)
        if not hasattr(action, "__wrapped__"):
            setattr(OptionList, name, _laid_out_only(action))

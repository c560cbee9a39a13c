"""The one way a modal screen of ours ends."""

from __future__ import annotations

from typing import TypeVar

from textual.screen import ModalScreen

T = TypeVar("T")


class Dialog(ModalScreen[T]):
    """A modal screen that answers once.

    Keys typed faster than the screen is popped (enter twice, esc twice) all reach it; a
    second ``dismiss()`` would pop the screen underneath, and run the caller's callback
    again.  Everything after the first answer is ignored.
    """

    _answered = False

    def answer(self, result: T | None) -> None:
        if self._answered:
            return
        self._answered = True
        self.dismiss(result)

"""The command palette: every action by name, computed from the current snapshot."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

from textual.command import DiscoveryHit, Hit, Hits, Provider

from . import actions

if TYPE_CHECKING:
    from .app import MdtuiApp


class ActionCommands(Provider):
    def _commands(self) -> list[tuple[str, Callable[[], object], str]]:
        app: MdtuiApp = self.app  # type: ignore[assignment]

        def where(c: actions.Choice) -> str:
            return "simulated kernel" if c.step.command in actions.SIM_ONLY else "sysfs"

        out: list[tuple[str, Callable[[], object], str]] = [
            (c.label, partial(app.perform, c.step), where(c))
            for c in actions.everything(app.snapshot, app.selected_device, app.source.simulated)
        ]
        out += [
            ("Export the selected device as DOT", app.action_export_dot, "d"),
            ("Save an SVG screenshot", app.action_screenshot, "s"),
            ("Filter the event log", app.action_filter, "/"),
            ("Fold or unfold ts-outs in the drawing", app.action_toggle_folds, "e"),
            ("Help: keys and what the screen shows", app.action_help, "?"),
        ]
        return out

    async def discover(self) -> Hits:
        for text, callback, help_text in self._commands():
            yield DiscoveryHit(text, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for text, callback, help_text in self._commands():
            score = matcher.match(text)
            if score > 0:
                yield Hit(score, matcher.highlight(text), callback, help=help_text)

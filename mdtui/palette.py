"""The command palette: every action by name, the lifecycle steps computed from the current
snapshot.  A hit runs an app action (``perform``, ``export_dot``...), so this module knows
the app only through the actions it declares."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol

from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.markup import escape  # names come from sysfs, scripts and bundles: never markup

from .commands import COMMANDS, Step, available
from .model import MediaDeviceView, SystemSnapshot


class Inspector(Protocol):
    """What the palette reads from the app."""

    snapshot: SystemSnapshot
    keymap: Mapping[str, str]

    @property
    def selected_device(self) -> MediaDeviceView | None: ...

    @property
    def simulated(self) -> bool: ...

    @property
    def designs(self) -> list[str]: ...


class ActionCommands(Provider):
    """One per opening of the palette: it runs at most one action, however often enter is
    pressed before the palette has closed (the palette would call its hit each time)."""

    _chosen = False

    def _commands(self) -> list[tuple[str, Callable[[], object], str]]:
        app = self.app
        inspector: Inspector = app  # type: ignore[assignment]

        def run(action: str) -> Callable[[], object]:
            def once() -> None:
                if not self._chosen:
                    self._chosen = True
                    app.call_later(app.run_action, action)

            return once

        def where(step: Step) -> str:
            return "simulated kernel" if COMMANDS[step.command].sim_only else "sysfs"

        out = [
            (c.label, run(f"perform({str(c.step)!r})"), where(c.step))
            for c in available(inspector.snapshot, inspector.selected_device, inspector.simulated)
        ]
        out += [
            (f"Allocator design {v}: build this machine again on it", run(f"design({v!r})"), "simulated kernel")
            for v in inspector.designs
        ]
        out += [
            (c.help[0].upper() + c.help[1:], run(c.binding_action), c.shown_key(inspector.keymap))
            for c in COMMANDS.values()
            if not c.lifecycle and c.name != "quit"
        ]
        return out

    async def discover(self) -> Hits:
        for text, callback, help_text in self._commands():
            yield DiscoveryHit(escape(text), callback, help=escape(help_text))

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for text, callback, help_text in self._commands():
            score = matcher.match(text)
            if score > 0:
                yield Hit(score, matcher.highlight(escape(text)), callback, help=escape(help_text))

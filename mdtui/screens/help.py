"""``?``: what the screen shows and every key."""

from __future__ import annotations

from collections.abc import Mapping

from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Markdown

from ..commands import COMMANDS

HELP = """\
# mdtui

One media device (`/dev/mediaN`) can be shared by several drivers through the kernel's
**Media Device Allocator API**: the first driver's `media_device_usb_allocate()` allocates
it for the USB device, later drivers take a reference (and one on the owner's module), and
the last `media_device_delete()` unregisters and frees it.

**Devices** (top): `⇄` marks a shared device; *ref* is the allocator's refcount;
*held, not registered* means a driver still holds it but `/dev/mediaN` is gone.
**Allocator**: key USB device, owner module and its refcnt, and why each holder holds it.
**Graph**: entities by function with their pads and links; numbered runs (DVB ts-outs) are
folded, expand them with enter. **Drawing**: the data links, left to right; {toggle_folds} unfolds.
**Events** (bottom): uevents, module loads, kernel log lines, refused actions (red) and the
allocator changes they caused (yellow). {filter} filters (`kind:trace`, or any text).

{keys}

Errors are the kernel's own: `EBUSY` from a busy module, `ENODEV` from a bind that does not
match. On a live system, destructive actions ask first (the configuration's `confirm`).
"""


def code(key: str) -> str:
    """A key as Markdown code in a table cell: a backtick in it takes a longer fence, and a
    ``|`` would end the cell."""
    text = key.replace("|", "\\|")
    return f"`` {text} ``" if "`" in key else f"`{text}`"


def key_table(keymap: Mapping[str, str]) -> str:
    """The key table, from the one command registry (mdtui/commands.py) with the keymap's
    keys, and the palette's key, which is Textual's own."""
    rows = [(code(c.shown_key(keymap)), c.help) for c in COMMANDS.values()]
    rows.append((code("ctrl+p"), "command palette: every action, by name"))
    return "\n".join(["| key | action |", "|---|---|", *(f"| {key} | {text} |" for key, text in rows)])


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark", "close", "Close")]

    def __init__(self, keymap: Mapping[str, str]) -> None:
        super().__init__()
        self.keymap = keymap

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help"):
            keys = {name: code(command.shown_key(self.keymap)) for name, command in COMMANDS.items()}
            yield Markdown(HELP.format(keys=key_table(self.keymap), **keys))

    def on_key(self, event: events.Key) -> None:
        """The key that opened it closes it too, wherever the keymap put it."""
        keys = COMMANDS["help"].bound_keys(self.keymap)
        if event.key in keys or (event.character is not None and event.character in keys):
            event.stop()
            self.dismiss(None)

    def action_close(self) -> None:
        self.dismiss(None)

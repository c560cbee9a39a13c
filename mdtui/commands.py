"""Every action, declared once: the lifecycle commands a script, the palette, a key or the
sim source's dispatch can run, and the app's own actions (tabs, export, help...).

From this one table come the key bindings (with ``id=`` = the name, so a keymap can remap
them) and their footer titles, the dialogs' titles and choices, the command palette, the
help screen's key table, script parsing (word and usage) and the simulated kernel's
dispatch (a lifecycle command is the ``Kernel`` method of the same name).  Textual-free:
``dump`` and ``watch`` parse scripts with it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from allocator.catalog import CATALOG
from allocator.loader import MODULES

from .model import MediaDeviceView, SystemSnapshot, UsbDeviceView, opened_as
from .step import Step


@dataclass(frozen=True, slots=True)
class Choice:
    label: str
    step: Step


#: what a command offers now: the snapshot and the selected device in, the choices out
Chooser = Callable[[SystemSnapshot, MediaDeviceView | None], list[Choice]]


@dataclass(frozen=True, slots=True)
class Command:
    """A lifecycle command (``choices`` set) or an action of the app itself."""

    name: str  # the script word and the binding id; an app action's method is action_<name>
    key: str  # the binding's key(s), Textual names
    label: str  # the footer's title
    help: str  # one line in the help screen
    key_display: str | None = None
    action: str = ""  # an app action other than action_<name>, with its arguments
    usage: str = ""  # the arguments of a lifecycle command, as a script takes them
    arity: tuple[int, int] = (0, 0)  # the smallest and largest number of arguments
    title: str = ""  # the question its dialog asks
    choices: Chooser | None = None
    sim_only: bool = False  # only the simulated kernel can do it
    destructive: bool = False  # on a live system, asks first
    show: bool = True  # in the footer
    #: its key is taken when the app reads it, before the keys typed after it are passed on
    #: (a key that moves the focus: what is typed next goes where it moved)
    priority: bool = False

    def shown_key(self, keymap: Mapping[str, str]) -> str:
        """The key as the help screen and the palette name it: the keymap's, if it has one."""
        return keymap.get(self.name) or self.key_display or self.key

    def bound_keys(self, keymap: Mapping[str, str]) -> list[str]:
        """The keys its binding has, as written (``?`` or ``question_mark``)."""
        return [k.strip() for k in keymap.get(self.name, self.key).split(",")]

    @property
    def lifecycle(self) -> bool:
        return self.choices is not None

    def offers(self, snap: SystemSnapshot, dev: MediaDeviceView | None) -> list[Choice]:
        """The steps this command can take now (none for an app action)."""
        return self.choices(snap, dev) if self.choices is not None else []

    @property
    def binding_action(self) -> str:
        """What its key runs: a lifecycle command asks which step first (``choose``)."""
        return f"choose('{self.name}')" if self.lifecycle else self.action or self.name


def _step(command: str, *args: str, host: str = "") -> Step:
    return Step(0, command, args, host)


def _usb(snap: SystemSnapshot, dev: MediaDeviceView | None) -> UsbDeviceView | None:
    return snap.usb(dev.usb_device, dev.host) if dev is not None and dev.usb_device else None


def unbind_choices(snap: SystemSnapshot, dev: MediaDeviceView | None) -> list[Choice]:
    usb = _usb(snap, dev)
    if usb is None:
        return []
    return [
        Choice(f"unbind {i.driver} from {i.name}{_on(usb)}", _step("unbind", i.driver, i.name, host=usb.host))
        for i in usb.interfaces
        if i.driver
    ]


def bind_choices(snap: SystemSnapshot, dev: MediaDeviceView | None) -> list[Choice]:
    usb = _usb(snap, dev)
    if usb is None:
        return []
    return [
        Choice(f"bind {driver} to {i.name}{_on(usb)}", _step("bind", driver, i.name, host=usb.host))
        for i in usb.interfaces
        if not i.driver
        for driver in snap.usb_drivers
    ]


def _on(usb: UsbDeviceView) -> str:
    """`` on board-a`` for a device of one of several machines."""
    return f" on {usb.host}" if usb.host else ""


def _usb_label(vendor: int, product_id: int, *strings: str) -> str:
    """A USB device as its strings name it, or by its ids when it has none (a C270)."""
    return " ".join(s for s in strings if s) or f"{vendor:04x}:{product_id:04x}"


def plug_choices(snap: SystemSnapshot, dev: MediaDeviceView | None) -> list[Choice]:
    return [
        Choice(f"plug {name} ({_usb_label(d.vendor, d.product_id, d.manufacturer, d.product)})", _step("plug", name))
        for name, d in CATALOG.items()
    ]


def unplug_choices(snap: SystemSnapshot, dev: MediaDeviceView | None) -> list[Choice]:
    """Every USB device, the selected media device's first."""
    first = dev.usb_device if dev else None
    ordered = sorted(snap.usb_devices, key=lambda u: u.name != first)
    return [
        Choice(f"unplug {u.name} ({_usb_label(u.vendor, u.product_id, u.product)})", _step("unplug", u.name))
        for u in ordered
    ]


def modprobe_choices(snap: SystemSnapshot, dev: MediaDeviceView | None) -> list[Choice]:
    loaded = {m.name for m in snap.modules}
    return [Choice(f"modprobe {name}", _step("modprobe", name)) for name in MODULES if name not in loaded]


def rmmod_choices(snap: SystemSnapshot, dev: MediaDeviceView | None) -> list[Choice]:
    loaded = [m for m in snap.modules if m.refcnt is not None]
    return [Choice(f"rmmod {m.name} (refcnt {m.refcnt})", _step("rmmod", m.name)) for m in loaded]


def open_choices(snap: SystemSnapshot, dev: MediaDeviceView | None) -> list[Choice]:
    usb = _usb(snap, dev)
    nodes = [n for n in (usb.nodes if usb else ()) if not n.startswith("/dev/bus/")]
    return [Choice(f"open {n}", _step("open", n)) for n in nodes]


def close_choices(snap: SystemSnapshot, dev: MediaDeviceView | None) -> list[Choice]:
    """Each open file, closed by its node and the process holding it."""
    return [
        Choice(f"close {f.node} (fd {f.fd}, pid {f.pid} {f.comm})", _step("close", opened_as(f.node), f.comm))
        for f in snap.open_files
    ]

_SIM = "(simulated)"

COMMANDS: dict[str, Command] = {
    c.name: c
    for c in (
        Command("quit", "q", "Quit", "quit"),
        Command("help", "question_mark", "Help", "this help", key_display="?"),
        Command(
            "filter", "slash", "Filter", "filter the event log (`kind:error`, or any text; esc clears)", "/",
            priority=True,
        ),
        Command(
            "unbind", "u", "Unbind", "unbind a driver from the selected device's USB device",
            usage="DRIVER INTF", arity=(2, 2), title="Unbind which driver?", choices=unbind_choices,
            destructive=True,
        ),
        Command(
            "bind", "b", "Bind", "bind a driver to an interface of the selected device's USB device",
            usage="DRIVER INTF", arity=(2, 2), title="Bind which driver, to which interface?", choices=bind_choices,
        ),
        Command(
            "plug", "p", "Plug", f"plug a catalog device {_SIM}",
            usage="CATALOG-NAME [PORT]", arity=(1, 2), title="Plug which device?", choices=plug_choices, sim_only=True,
        ),
        Command(
            "unplug", "x", "Unplug", f"unplug a USB device, the selected device's first {_SIM}",
            usage="DEV", arity=(1, 1), title="Unplug which USB device?", choices=unplug_choices, sim_only=True,
            destructive=True,
        ),
        Command(
            "modprobe", "m", "Modprobe", f"load a module {_SIM}",
            usage="MODULE", arity=(1, 1), title="Load which module?", choices=modprobe_choices, sim_only=True,
        ),
        Command(
            "rmmod", "r", "Rmmod", f"unload a module {_SIM}",
            usage="MODULE", arity=(1, 1), title="Unload which module?", choices=rmmod_choices, sim_only=True,
            destructive=True,
        ),
        Command(
            "open", "o", "Open", f"open a device node {_SIM}",
            usage="NODE [PROCESS]", arity=(1, 2), title="Open which node?", choices=open_choices, sim_only=True,
        ),
        Command(
            "close", "c", "Close", f"close an open file {_SIM}",
            usage="NODE [PROCESS]", arity=(1, 2), title="Close which file?", choices=close_choices, sim_only=True,
        ),
        Command("toggle_folds", "e", "Unfold", "fold or unfold the numbered runs (DVB ts-outs) in the drawing"),
        Command("export_dot", "d", "DOT", "export the selected device as Graphviz DOT (`mdtui-media0.dot`)"),
        Command("screenshot", "s", "SVG", "save an SVG screenshot"),
        Command("tab_allocator", "1", "Allocator", "the Allocator tab", action="tab('tab-allocator')", show=False),
        Command("tab_graph", "2", "Graph", "the Graph tab", action="tab('tab-graph')", show=False),
        Command("tab_drawing", "3", "Drawing", "the Drawing tab", action="tab('tab-drawing')", show=False),
        Command("tab_interfaces", "4", "Interfaces", "the Interfaces tab", action="tab('tab-interfaces')", show=False),
    )
}

#: the lifecycle commands, in the order scripts and the palette list them
LIFECYCLE = tuple(c for c in COMMANDS.values() if c.lifecycle)


def available(snap: SystemSnapshot, dev: MediaDeviceView | None, simulated: bool) -> list[Choice]:
    """Every lifecycle step that makes sense now, for the command palette."""
    return [
        choice
        for command in LIFECYCLE
        if simulated or not command.sim_only
        for choice in command.offers(snap, dev)
    ]

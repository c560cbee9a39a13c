"""What a user can do from here, as lifecycle steps with a label: one list that the key
bindings' dialogs and the command palette both draw from."""

from __future__ import annotations

from typing import NamedTuple

from allocator.catalog import CATALOG
from allocator.loader import MODULES

from .model import MediaDeviceView, SystemSnapshot
from .script import Step

#: steps that change what the kernel holds: on a live system they ask first
DESTRUCTIVE = {"unbind", "unplug", "rmmod"}
#: steps only the simulated kernel can take
SIM_ONLY = {"plug", "unplug", "modprobe", "rmmod", "open", "close"}


class Choice(NamedTuple):
    label: str
    step: Step


def _step(command: str, *args: str) -> Step:
    return Step(0, command, args)


def unbind(snap: SystemSnapshot, dev: MediaDeviceView | None) -> list[Choice]:
    usb = snap.usb(dev.usb_device) if dev else None
    if usb is None:
        return []
    return [
        Choice(f"unbind {i.driver} from {i.name}", _step("unbind", i.driver, i.name))
        for i in usb.interfaces
        if i.driver
    ]


def bind(snap: SystemSnapshot, dev: MediaDeviceView | None) -> list[Choice]:
    usb = snap.usb(dev.usb_device) if dev else None
    if usb is None:
        return []
    return [
        Choice(f"bind {driver} to {i.name}", _step("bind", driver, i.name))
        for i in usb.interfaces
        if not i.driver
        for driver in snap.usb_drivers
    ]


def plug(snap: SystemSnapshot) -> list[Choice]:
    return [
        Choice(f"plug {name} ({d.manufacturer} {d.product})".replace("( ", "("), _step("plug", name))
        for name, d in CATALOG.items()
    ]


def unplug(snap: SystemSnapshot, dev: MediaDeviceView | None = None) -> list[Choice]:
    """Every USB device, the selected media device's first."""
    first = dev.usb_device if dev else None
    ordered = sorted(snap.usb_devices, key=lambda u: u.name != first)
    return [Choice(f"unplug {u.name} ({u.product})", _step("unplug", u.name)) for u in ordered]


def modprobe(snap: SystemSnapshot) -> list[Choice]:
    loaded = {m.name for m in snap.modules}
    return [Choice(f"modprobe {name}", _step("modprobe", name)) for name in MODULES if name not in loaded]


def rmmod(snap: SystemSnapshot) -> list[Choice]:
    loaded = [m for m in snap.modules if m.refcnt is not None]
    return [Choice(f"rmmod {m.name} (refcnt {m.refcnt})", _step("rmmod", m.name)) for m in loaded]


def open_node(snap: SystemSnapshot, dev: MediaDeviceView | None) -> list[Choice]:
    usb = snap.usb(dev.usb_device) if dev else None
    nodes = [n for n in (usb.nodes if usb else ()) if not n.startswith("/dev/bus/")]
    return [Choice(f"open {n}", _step("open", n)) for n in nodes]


def close_file(snap: SystemSnapshot) -> list[Choice]:
    return [Choice(f"close {path} (fd {fd})", _step("close", path)) for fd, path in snap.open_files]


def everything(snap: SystemSnapshot, dev: MediaDeviceView | None, simulated: bool) -> list[Choice]:
    """Every step that makes sense now, for the command palette."""
    out = unbind(snap, dev) + bind(snap, dev)
    if simulated:
        out += plug(snap) + unplug(snap, dev) + modprobe(snap) + rmmod(snap) + open_node(snap, dev) + close_file(snap)
    return out

"""What changed between two snapshots, in one line each, with the cause when known:
``media0 refcount 2→1 (au0828 unbound 1-1:1.0)``."""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from allocator import Event

from .model import MediaDeviceView, SystemSnapshot


class Change(NamedTuple):
    device: str
    text: str


def cause_of(events: Iterable[Event], before: SystemSnapshot | None = None) -> str:
    """The user-visible action behind a batch of events, from its uevents: a USB device
    plugged or unplugged, else the last bind/unbind of an interface, else a refused action.
    An unbind uevent carries no DRIVER (the kernel clears it first), so the driver is taken
    from the snapshot before the batch."""
    plug = bind = error = ""
    for e in events:
        f = e.fields
        action = f.get("ACTION")
        if e.kind == "error":
            error = f"{f.get('OP', '')} failed: {f.get('ERRNO', '')}".strip()
        elif e.kind != "uevent" or f.get("SUBSYSTEM") != "usb":
            continue
        elif f.get("DEVTYPE") == "usb_device" and action in ("add", "remove"):
            plug = f"{e.device} {'plugged' if action == 'add' else 'unplugged'}"
        elif f.get("DEVTYPE") == "usb_interface" and action in ("bind", "unbind"):
            driver = f.get("DRIVER") or _bound_driver(before, e.device)
            bind = f"{driver} {'bound' if action == 'bind' else 'unbound'} {e.device}".strip()
    return plug or bind or error


def _bound_driver(snap: SystemSnapshot | None, interface: str) -> str:
    usb = snap.usb(interface.split(":", 1)[0]) if snap else None
    found = next((i.driver for i in usb.interfaces if i.name == interface), None) if usb else None
    return found or ""


def _known(value: int | None) -> str:
    """A module refcnt that could not be read (/sys/module/NAME unreadable) is unknown, not "None"."""
    return "unknown" if value is None else str(value)


def _name(d: MediaDeviceView) -> str:
    return d.name


def diff(before: SystemSnapshot | None, after: SystemSnapshot, cause: str = "") -> list[Change]:
    why = f" ({cause})" if cause else ""
    old = {d.key: d for d in before.media_devices} if before else {}
    new = {d.key: d for d in after.media_devices}
    out: list[Change] = []
    for key, d in new.items():
        o = old.get(key)
        if o is None:
            driver = d.unread.unknown if d.unread is not None else d.info.driver
            what = f"allocated by {driver}, refcount {d.fact(d.refcount)}" if d.shared else f"created by {driver}"
            out.append(Change(_name(d), f"{_name(d)} {what}{why}"))
            continue
        if o.devnode != d.devnode:
            what = f"registered as {d.devnode}" if d.devnode else f"unregistered (was {o.devnode})"
            out.append(Change(_name(d), f"{_name(d)} {what}{why}"))
        if o.refcount != d.refcount:
            out.append(Change(_name(d), f"{_name(d)} refcount {o.fact(o.refcount)}→{d.fact(d.refcount)}{why}"))
        if o.owner_refcnt != d.owner_refcnt and d.owner:
            refcnt = f"{_known(o.owner_refcnt)}→{_known(d.owner_refcnt)}"
            out.append(Change(_name(d), f"{_name(d)} owner {d.owner} refcnt {refcnt}{why}"))
        for a in sorted(set(d.anomalies) - set(o.anomalies)):
            out.append(Change(_name(d), f"{_name(d)} ANOMALY {a}"))
    for key, o in old.items():
        if key not in new:
            out.append(Change(_name(o), f"{_name(o)} released{why}"))
    for a in sorted(set(after.anomalies) - set(before.anomalies if before else ())):
        out.append(Change("kernel", f"ANOMALY {a}"))
    return out

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
    plugged or unplugged, else the last bind/unbind of an interface, else a refused action,
    else the close of a file that kept a reference (no uevent says that).
    An unbind uevent carries no DRIVER (the kernel clears it first), so the driver is taken
    from the snapshot before the batch."""
    plug = bind = error = closed = ""
    for e in events:
        f = e.fields
        action = f.get("ACTION")
        if e.kind == "error":
            error = f"{f.get('OP', '')} failed: {f.get('ERRNO', '')}".strip()
        elif "CLOSED" in f:  # the live source saw a file that kept a reference closed
            closed = f"closed {f['CLOSED']}"
        elif e.kind != "uevent" or f.get("SUBSYSTEM") != "usb":
            continue
        elif f.get("DEVTYPE") == "usb_device" and action in ("add", "remove"):
            plug = f"{e.device} {'plugged' if action == 'add' else 'unplugged'}"
        elif f.get("DEVTYPE") == "usb_interface" and action in ("bind", "unbind"):
            driver = f.get("DRIVER") or _bound_driver(before, e.device)
            bind = f"{driver} {'bound' if action == 'bind' else 'unbound'} {e.device}".strip()
    return plug or bind or error or closed


def _bound_driver(snap: SystemSnapshot | None, device: str) -> str:
    """The driver bound to an interface (``1-1:1.0``; ``board-a/1-1:1.0`` with several machines)."""
    host, _, interface = device.rpartition("/")
    usb = snap.usb(interface.split(":", 1)[0], host) if snap else None
    found = next((i.driver for i in usb.interfaces if i.name == interface), None) if usb else None
    return found or ""


def _known(value: int | None) -> str:
    """A module refcnt that could not be read (/sys/module/NAME unreadable) is unknown, not "None"."""
    return "unknown" if value is None else str(value)


def _name(d: MediaDeviceView) -> str:
    """``media0``; ``board-a/media0`` with several machines."""
    return f"{d.host}/{d.name}" if d.host else d.name


def _names(names: list[str], shown: int = 3) -> str:
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def diff(before: SystemSnapshot | None, after: SystemSnapshot, cause: str = "") -> list[Change]:
    why = f" ({cause})" if cause else ""
    old = {d.key: d for d in before.media_devices} if before else {}
    new = {d.key: d for d in after.media_devices}
    out: list[Change] = []
    # an owner module's refcnt is the module's: one line for all the devices it owns
    # (16 sticks on one module must not log 16 lines per bind)
    owners: dict[tuple[str, str], tuple[int, list[str]]] = {}
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
        if d.owner and before is not None and (was := before.owner_refcnt(o)) != (now := after.owner_refcnt(d)):
            refcnt = f"{_known(was)}→{_known(now)}"
            if (d.owner, refcnt) not in owners:  # its line goes here, worded once all are known
                owners[(d.owner, refcnt)] = (len(out), [])
                out.append(Change(_name(d), ""))
            owners[(d.owner, refcnt)][1].append(_name(d))
        for a in sorted(set(d.anomalies) - set(o.anomalies)):
            out.append(Change(_name(d), f"{_name(d)} ANOMALY {a}"))
    for (owner, refcnt), (at, names) in owners.items():
        out[at] = Change(names[0], f"{_names(names)} owner {owner} refcnt {refcnt}{why}")
    for key, o in old.items():
        if key not in new:
            out.append(Change(_name(o), f"{_name(o)} released{why}"))
    for a in sorted(set(after.anomalies) - set(before.anomalies if before else ())):
        out.append(Change("kernel", f"ANOMALY {a}"))
    return out

"""Invariants of the simulated machine: ``Kernel.check()`` returns every violation it finds.

* every live allocator instance: refcount == the number of driver references on it, and the
  count is not saturated; nobody holds a released instance (use-after-free); a driver that
  says it holds one while bound really is bound (no reference leaked by a failed probe);
* every loaded module: refcnt == dependents + open files pinning it + sharers' owner
  references;
* no registered media device that nobody holds;
* no entity whose driver instance is gone;
* G_TOPOLOGY consistency, the rules v4l2-compliance applies: ids unique with the right type
  byte, pads exactly one of SINK/SOURCE and on a known entity, data links SOURCE -> SINK with
  both halves present, interface links interface -> entity, IMMUTABLE implies ENABLED;
* every WARN the kernel printed (refcount_t, module_put, lockdep's) since boot, and every
  oops (a design's media node opened after its owner module was freed: ``oops``).
"""

from __future__ import annotations

from collections import Counter
from operator import attrgetter, eq
from typing import TYPE_CHECKING, Any, NamedTuple

from .mc.device import MediaDevice
from .mc.entity import Entity, Interface, Pad
from .mc.uapi import (
    MEDIA_GRAPH_ENTITY,
    MEDIA_GRAPH_INTF_DEVNODE,
    MEDIA_GRAPH_LINK,
    MEDIA_GRAPH_PAD,
    MEDIA_LNK_FL_ENABLED,
    MEDIA_LNK_FL_IMMUTABLE,
    MEDIA_LNK_FL_INTERFACE_LINK,
    MEDIA_PAD_FL_SINK,
    MEDIA_PAD_FL_SOURCE,
)
from .mc_dev_allocator import InstanceMediaDevice

if TYPE_CHECKING:
    from .kernel import Kernel


class Violation(NamedTuple):
    kind: str
    device: str
    message: str


def check(k: Kernel) -> list[Violation]:
    out: list[Violation] = [Violation("warn", a.device, a.text) for a in k.anomalies]
    out += [Violation("oops", r.device, f"{r.text}: {r.cause}") for r in k.allocator.reports if r.kind == "oops"]
    holders = k.view.holders()
    instances = k.allocator.instances()
    for inst in instances:
        name = label(inst.mdev)
        if inst.mdev.cleaned_up:
            out.append(Violation("use-after-free", name, "media_device_cleanup() ran on a device still in the list"))
        held = [h for mdev, h in holders if mdev is inst.mdev]
        count = inst.refcount.refcount
        if count < 0:
            out.append(Violation("refcount", name, "refcount saturated (refcount_t WARNed: use-after-free)"))
        elif count != len(held):
            who = ", ".join(f"{h.driver} {h.interface}" for h in held) or "nobody"
            out.append(Violation("refcount", name, f"refcount {count} != {len(held)} holders ({who})"))
    bound = {i.name: i.driver for u in k.usb.devices() for i in u.interfaces}
    for mdev, h in holders:
        if h.state == "bound" and bound.get(h.interface) != h.driver:
            text = f"{h.driver} holds a media device but is not bound to {h.interface}"
            out.append(Violation("leak", h.interface, text))
        if isinstance(mdev, InstanceMediaDevice) and mdev.instance.released:
            out.append(Violation("use-after-free", h.interface, f"{h.driver} holds a released media device"))
    out += _module_refcounts(k, holders, instances)
    for mdev in list(k.media_bus.live.values()):
        name = label(mdev)
        if isinstance(mdev, InstanceMediaDevice) and (mdev.instance.released or mdev.instance.refcount.refcount <= 0):
            out.append(Violation("orphan", name, "registered media device whose instance is released"))
        elif not any(m is mdev for m, _ in holders):
            out.append(Violation("orphan", name, "registered media device that nobody holds"))
    for state in k.view.media_devices():
        out += _graph(state.mdev)
    return out


def _module_refcounts(k: Kernel, holders: list, instances: list) -> list[Violation]:
    expected: Counter[str] = Counter()
    for mod in k.modules.values():
        for dep in mod.deps:
            expected[dep] += 1
    for file in k.files.open_files():
        for pin in file.pins:
            if pin is not None:
                expected[pin.name] += 1
    for inst in instances:
        if inst.owner is None:
            continue
        for mdev, h in holders:
            if mdev is inst.mdev and h.module != inst.owner:
                expected[inst.owner] += 1
    return [
        Violation("module", name, f"refcnt {mod.refcnt} != {expected[name]} references held")
        for name, mod in k.modules.items()
        if mod.refcnt != expected[name]
    ]


def label(mdev: MediaDevice) -> str:
    """How violations name a media device: its node, or the device it hangs off."""
    if mdev.devnode_name:
        return mdev.devnode_name
    return f"media device of {mdev.dev.name}" if mdev.dev is not None else "media device"


def _graph(mdev: MediaDevice) -> list[Violation]:
    with mdev.graph_mutex:
        cached = mdev.__dict__.get("_checked")
        if cached is None or cached[0] != mdev.generation:
            owners: dict[int, tuple[object, str]] = {}
            for entity in mdev.entities.values():
                if entity.owner is not None and id(entity.owner) not in owners:
                    owners[id(entity.owner)] = (entity.owner, entity.name)
            bad_structure = () if _looks_sound(mdev) else tuple(_structure(mdev))
            cached = (mdev.generation, bad_structure, tuple(owners.values()))
            mdev.__dict__["_checked"] = cached
        bad = list(cached[1])
        for owner, example in cached[2]:  # an owner can go away without the graph changing
            if not getattr(owner, "alive", True):
                left = sum(1 for e in mdev.entities.values() if e.owner is owner)
                who = getattr(owner, "label", owner)
                bad.append(f"{left} entities (e.g. {example!r}) left behind by {who}, which is gone")
    name = label(mdev)
    return [Violation("graph", name, text) for text in bad]


_ID, _FLAGS, _ENTITY = attrgetter("id"), attrgetter("flags"), attrgetter("entity")
_SOURCE, _SINK, _REVERSE = attrgetter("source"), attrgetter("sink"), attrgetter("reverse")
_ONE_DIRECTION = (MEDIA_PAD_FL_SINK, MEDIA_PAD_FL_SOURCE)


def _tables(mdev: MediaDevice) -> tuple[tuple[int, dict[int, Any]], ...]:
    """Each object table with the type byte its ids must carry."""
    return (
        (MEDIA_GRAPH_ENTITY, mdev.entities),
        (MEDIA_GRAPH_PAD, mdev.pads),
        (MEDIA_GRAPH_LINK, mdev.links),
        (MEDIA_GRAPH_INTF_DEVNODE, mdev.interfaces),
    )


def _looks_sound(mdev: MediaDevice) -> bool:
    """The rules of ``_structure`` checked over sets of distinct values, mostly in C: a few
    hundred Python steps for a HVR-950Q's ~3,400 objects instead of one per object.  True
    means ``_structure`` would find nothing; on False it is run for the messages."""
    for gtype, table in _tables(mdev):  # the type byte right => no id shared across tables
        if table and not min(table) >> 24 == gtype == max(table) >> 24:
            return False
        if not all(map(eq, table, map(_ID, table.values()))):
            return False
    pads, entities, links = set(mdev.pads.values()), mdev.entities, mdev.links.values()
    if any(e.id not in entities or e.mdev is not mdev for e in set(map(_ENTITY, pads))):
        return False
    if any(f & (MEDIA_PAD_FL_SINK | MEDIA_PAD_FL_SOURCE) not in _ONE_DIRECTION for f in set(map(_FLAGS, pads))):
        return False
    if any(f & MEDIA_LNK_FL_IMMUTABLE and not f & MEDIA_LNK_FL_ENABLED for f in set(map(_FLAGS, links))):
        return False
    data = [ln for ln in links if not ln.flags & MEDIA_LNK_FL_INTERFACE_LINK]
    intf = [ln for ln in links if ln.flags & MEDIA_LNK_FL_INTERFACE_LINK]
    sources, sinks = set(map(_SOURCE, data)), set(map(_SINK, data))
    return (
        sources <= pads
        and sinks <= pads
        and all(p.flags & MEDIA_PAD_FL_SOURCE for p in sources)
        and all(p.flags & MEDIA_PAD_FL_SINK for p in sinks)
        and set(map(_REVERSE, data)) <= set(links)
        and set(map(_SOURCE, intf)) <= set(mdev.interfaces.values())
        and set(map(_SINK, intf)) <= set(entities.values())
    )


def _structure(mdev: MediaDevice) -> list[str]:
    """The G_TOPOLOGY rules, one object at a time, with a message for each breach; cached per
    ``generation`` (callers hold graph_mutex)."""
    bad: list[str] = []
    seen: set[int] = set()
    for gtype, table in _tables(mdev):
        for obj_id, obj in table.items():
            if obj_id >> 24 != gtype or obj.id != obj_id:
                bad.append(f"object {obj_id:#010x} has the wrong type or id")
            if obj_id in seen:
                bad.append(f"id {obj_id:#010x} used twice")
            seen.add(obj_id)
    for pad in mdev.pads.values():
        if pad.entity.id not in mdev.entities or pad.entity.mdev is not mdev:
            bad.append(f"pad {pad.id:#010x} belongs to no registered entity")
        if bin(pad.flags & (MEDIA_PAD_FL_SINK | MEDIA_PAD_FL_SOURCE)).count("1") != 1:
            bad.append(f"pad {pad.id:#010x} is not exactly one of SINK/SOURCE")
    for link in mdev.links.values():
        if link.flags & MEDIA_LNK_FL_IMMUTABLE and not link.flags & MEDIA_LNK_FL_ENABLED:
            bad.append(f"link {link.id:#010x} is IMMUTABLE but not ENABLED")
        if link.flags & MEDIA_LNK_FL_INTERFACE_LINK:
            if not (isinstance(link.source, Interface) and link.source.id in mdev.interfaces):
                bad.append(f"interface link {link.id:#010x} does not start at an interface")
            if not (isinstance(link.sink, Entity) and link.sink.id in mdev.entities):
                bad.append(f"interface link {link.id:#010x} does not end at an entity")
            continue
        src, snk = link.source, link.sink
        if not (isinstance(src, Pad) and src.id in mdev.pads and src.flags & MEDIA_PAD_FL_SOURCE):
            bad.append(f"link {link.id:#010x} does not start at a source pad")
        if not (isinstance(snk, Pad) and snk.id in mdev.pads and snk.flags & MEDIA_PAD_FL_SINK):
            bad.append(f"link {link.id:#010x} does not end at a sink pad")
        if link.reverse is None or link.reverse.id not in mdev.links:
            bad.append(f"link {link.id:#010x} has lost its other half")
    return bad

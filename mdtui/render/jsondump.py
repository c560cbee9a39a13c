"""``dump --format json``: the snapshot as documented by ``mdtui/dump.schema.json``.

Unknown is null, never a made-up 0 or empty list: a device that could not be read has
``unread`` set and null for what only its ioctls tell."""

from __future__ import annotations

import errno
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from allocator.mc import uapi
from allocator.mc.topology import TopoLink, Topology

from ..commands import Step
from ..model import HolderView, MediaDeviceView, OpenFileView, SystemSnapshot, Unread, link_kind

#: the JSON Schema this output follows (shipped with the package)
SCHEMA_PATH = Path(__file__).resolve().parent.parent / "dump.schema.json"
SCHEMA_VERSION = 1


def device(dev: MediaDeviceView, snap: SystemSnapshot) -> dict[str, Any]:
    """One media device; for one that could not be read, null wherever the ioctls would
    have told (and ``unread`` says why), with what sysfs still says."""
    out = {
        "devnode": dev.devnode,
        "key": dev.key,
        "host": dev.host or None,
        "usb_device": dev.usb_device,
        "parent": dev.parent_device,
        **_info(dev),
        "registered": dev.registered if dev.registered_known else None,
        "shared": dev.shared,
        "refcount": dev.refcount,
        "owner": dev.owner,
        "owner_refcnt": snap.owner_refcnt(dev),
        "owner_refs_from_sharers": dev.owner_refs_from_sharers,
        "holders": None if dev.unread is not None else [_holder(h) for h in dev.holders],
        "open_files": None if dev.open_files is None else [_open_file(f) for f in dev.open_files],
        "hidden_openers": dev.hidden_openers,
        **_graph(dev),
        "anomalies": list(dev.anomalies),
        "inferred": sorted(dev.inferred),
        "unread": _unread(dev.unread),
    }
    if dev.bound is not None and (dev.unread is not None or dev.usb_device is None):
        out["bound_drivers"] = [{"driver": b.driver, "module": b.module, "device": b.device} for b in dev.bound]
    return out


def _info(dev: MediaDeviceView) -> dict[str, Any]:
    i = dev.info
    if dev.unread is not None:  # only the model is known: sysfs has it
        return dict.fromkeys(("driver", "serial", "bus_info", "hw_revision", "media_version"), None) | {
            "model": i.model or None
        }
    return {
        "driver": i.driver,
        "model": i.model,
        "serial": i.serial,
        "bus_info": i.bus_info,
        "hw_revision": i.hw_revision,
        "media_version": i.media_version,
    }


def _holder(h: HolderView) -> dict[str, Any]:
    out = {"driver": h.driver, "module": h.module, "interface": h.interface, "state": h.state, "reason": h.reason}
    if h.state == "deferred":  # its reference outlives its driver's binding
        out["unbound_at"] = h.unbound_at
        out["kept_by"] = [_open_file(f) for f in h.kept_by]
    return out


def _open_file(f: OpenFileView) -> dict[str, Any]:
    return {"pid": f.pid, "comm": f.comm, "user": f.user, "fd": f.fd, "node": f.node, "mode": f.mode, "since": f.since}


def _unread(unread: Unread | None) -> dict[str, Any] | None:
    if unread is None:
        return None
    return {"state": unread.state, "reason": unread.reason, "errno": unread.errno}


def _graph(dev: MediaDeviceView) -> dict[str, Any]:
    if dev.unread is not None:
        return dict.fromkeys(("topology_version", "entities", "interfaces", "links"), None)
    t = dev.topology
    intf_nodes = {i.id: dev.devnames.get((i.major, i.minor)) for i in t.interfaces}
    endpoint = _endpoints(t, intf_nodes)
    pads_of: dict[int, list[dict[str, int]]] = {}
    for p in t.pads:
        pads_of.setdefault(p.entity_id, []).append({"id": p.id, "index": p.index, "flags": p.flags})
    return {
        "topology_version": t.topology_version,
        "entities": [
            {
                "id": e.id,
                "name": e.name,
                "function": uapi.function_name(e.function),
                "flags": e.flags,
                "pads": pads_of.get(e.id, []),
            }
            for e in t.entities
        ],
        "interfaces": [
            {
                "id": i.id,
                "type": uapi.interface_type_name(i.intf_type),
                "major": i.major,
                "minor": i.minor,
                "devnode": intf_nodes[i.id],
            }
            for i in t.interfaces
        ],
        "links": [_link(ln, endpoint) for ln in t.links],
    }


def _endpoints(t: Topology, intf_nodes: dict[int, str | None]) -> Callable[[int], dict[str, Any]]:
    """What a link's end is: a pad (of an entity, named if the graph has it), an interface,
    or an entity (an interface link's sink, both ends of an ancillary link)."""
    pads = {p.id: p for p in t.pads}
    names = {e.id: e.name for e in t.entities}

    def endpoint(obj_id: int) -> dict[str, Any]:
        if obj_id in pads:
            p = pads[obj_id]
            return {"entity": p.entity_id, "entity_name": names.get(p.entity_id), "pad": p.index}
        if obj_id in intf_nodes:
            return {"interface": obj_id}
        return {"entity": obj_id, "entity_name": names.get(obj_id)}

    return endpoint


def _link(ln: TopoLink, endpoint: Callable[[int], dict[str, Any]]) -> dict[str, Any]:
    """A link with its kind from the type field: data links join pads, interface links an
    interface to an entity, ancillary links two entities."""
    return {
        "id": ln.id,
        "kind": link_kind(ln.flags),
        "source": endpoint(ln.source_id),
        "sink": endpoint(ln.sink_id),
        "flags": ln.flags & ~uapi.MEDIA_LNK_FL_LINK_TYPE,
        "enabled": bool(ln.flags & uapi.MEDIA_LNK_FL_ENABLED),
        "immutable": bool(ln.flags & uapi.MEDIA_LNK_FL_IMMUTABLE),
    }


def refusal(step: Step, error: OSError) -> dict[str, Any]:
    """A script step the kernel refused: where, what, and the kernel's answer."""
    code = error.errno or 0
    name = errno.errorcode.get(code, "?")
    return {"line": step.line, "step": str(step), "errno": code, "errno_name": name, "message": error.strerror}


def to_dict(snap: SystemSnapshot, refused: Sequence[tuple[Step, OSError]] = ()) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "source": snap.source,
        "notes": list(snap.notes),
        "hosts": [{"name": h.name, "state": h.state, "detail": h.detail} for h in snap.hosts],
        "media_devices": [device(d, snap) for d in snap.media_devices],
        "modules": [
            {"name": m.name, "refcnt": m.refcnt, "used_by": sorted(m.used_by), "host": m.host or None}
            for m in snap.modules
        ],
        "anomalies": list(snap.anomalies),
        "refused_steps": [refusal(step, error) for step, error in refused],
    }


def render(snap: SystemSnapshot, refused: Sequence[tuple[Step, OSError]] = ()) -> str:
    return json.dumps(to_dict(snap, refused), indent=1) + "\n"

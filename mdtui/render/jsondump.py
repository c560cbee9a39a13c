"""``dump --format json``: the snapshot as documented by ``mdtui/dump.schema.json``."""

from __future__ import annotations

import json
from typing import Any

from allocator.mc import uapi

from ..model import MediaDeviceView, SystemSnapshot

SCHEMA_VERSION = 1


def device(dev: MediaDeviceView) -> dict[str, Any]:
    t = dev.topology
    pads = {p.id: p for p in t.pads}
    names = {e.id: e.name for e in t.entities}
    intf_nodes = {i.id: dev.devnames.get((i.major, i.minor)) for i in t.interfaces}

    def endpoint(obj_id: int) -> dict[str, Any]:
        if obj_id in pads:
            p = pads[obj_id]
            return {"entity": p.entity_id, "entity_name": names.get(p.entity_id), "pad": p.index}
        if obj_id in intf_nodes:
            return {"interface": obj_id}
        return {"entity": obj_id, "entity_name": names.get(obj_id)}

    return {
        "devnode": dev.devnode,
        "key": dev.key,
        "usb_device": dev.usb_device,
        "driver": dev.info.driver,
        "model": dev.info.model,
        "serial": dev.info.serial,
        "bus_info": dev.info.bus_info,
        "hw_revision": dev.info.hw_revision,
        "media_version": dev.info.media_version,
        "registered": dev.registered,
        "shared": dev.shared,
        "refcount": dev.refcount,
        "owner": dev.owner,
        "owner_refcnt": dev.owner_refcnt,
        "owner_refs_from_sharers": dev.owner_refs_from_sharers,
        "holders": [
            {"driver": h.driver, "module": h.module, "interface": h.interface, "state": h.state, "reason": h.reason}
            for h in dev.holders
        ],
        "topology_version": t.topology_version,
        "entities": [
            {
                "id": e.id,
                "name": e.name,
                "function": uapi.function_name(e.function),
                "flags": e.flags,
                "pads": [{"id": p.id, "index": p.index, "flags": p.flags} for p in t.pads if p.entity_id == e.id],
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
        "links": [
            {
                "id": ln.id,
                "kind": "interface" if ln.flags & uapi.MEDIA_LNK_FL_INTERFACE_LINK else "data",
                "source": endpoint(ln.source_id),
                "sink": endpoint(ln.sink_id),
                "flags": ln.flags & ~uapi.MEDIA_LNK_FL_LINK_TYPE,
                "enabled": bool(ln.flags & uapi.MEDIA_LNK_FL_ENABLED),
                "immutable": bool(ln.flags & uapi.MEDIA_LNK_FL_IMMUTABLE),
            }
            for ln in t.links
        ],
        "anomalies": list(dev.anomalies),
        "inferred": sorted(dev.inferred),
    }


def to_dict(snap: SystemSnapshot) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "source": snap.source,
        "notes": list(snap.notes),
        "media_devices": [device(d) for d in snap.media_devices],
        "modules": [{"name": m.name, "refcnt": m.refcnt, "used_by": sorted(m.used_by)} for m in snap.modules],
        "anomalies": list(snap.anomalies),
    }


def render(snap: SystemSnapshot) -> str:
    return json.dumps(to_dict(snap), indent=1) + "\n"

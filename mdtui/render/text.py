"""``dump --format text``: the allocator's view, then ``media-ctl -p`` for each device."""

from __future__ import annotations

from ..model import MediaDeviceView, SystemSnapshot
from . import legacy


def version(code: int) -> str:
    return f"{code >> 16}.{(code >> 8) & 0xFF}.{code & 0xFF}"


def link_flags(flags: int) -> str:
    names = [n for bit, n in ((1, "ENABLED"), (2, "IMMUTABLE"), (4, "DYNAMIC")) if flags & bit]
    extra = flags & ~0x7 & 0x0FFFFFFF
    if extra:
        names.append(f"0x{extra:x}")
    return ",".join(names)


def pad_type(flags: int) -> str:
    names = [n for bit, n in ((1, "Sink"), (2, "Source"), (4, "Must Connect")) if flags & bit]
    return ", ".join(names) or "Unknown"


def media_ctl_p(dev: MediaDeviceView) -> str:
    """What ``media-ctl -p -d /dev/mediaN`` prints for this device."""
    i = dev.info
    out = [
        f"Media controller API version {version(i.media_version)}",
        "",
        "Media device information",
        "------------------------",
        f"driver          {i.driver}",
        f"model           {i.model}",
        f"serial          {i.serial}",
        f"bus info        {i.bus_info}",
        f"hw revision     0x{i.hw_revision:x}",
        f"driver version  {version(i.driver_version)}",
        "",
        "Device topology",
    ]
    ents = legacy.build(dev)
    pad_flags = {(p.entity_id, p.index): p.flags for p in dev.topology.pads}
    for ent in ents.values():
        d = ent.desc
        head = f"- entity {d.id}: "
        pad = " " * len(head)
        nlinks = len(ent.links)
        out.append(
            f"{head}{d.name} ({d.pads} pad{'s' if d.pads > 1 else ''}, {nlinks} link{'s' if nlinks > 1 else ''})"
        )
        kind, sub = legacy.type_names(d.type)
        out.append(f"{pad}type {kind} subtype {sub} flags {d.flags:x}")
        if ent.devname:
            out.append(f"{pad}device node name {ent.devname}")
        for j in range(d.pads):
            out.append(f"\tpad{j}: {pad_type(pad_flags.get((d.id, j), 0))}")
            for ln in ent.links:
                if ln.source.entity == d.id and ln.source.index == j:
                    other = ents[ln.sink.entity].desc.name if ln.sink.entity in ents else "?"
                    out.append(f'\t\t-> "{other}":{ln.sink.index} [{link_flags(ln.flags)}]')
                elif ln.sink.entity == d.id and ln.sink.index == j:
                    other = ents[ln.source.entity].desc.name if ln.source.entity in ents else "?"
                    out.append(f'\t\t<- "{other}":{ln.source.index} [{link_flags(ln.flags)}]')
        out.append("")
    return "\n".join(out) + "\n"


def allocator_state(dev: MediaDeviceView, snap: SystemSnapshot) -> str:
    t = dev.topology
    lines = [f"=== {dev.devnode or 'media device (not registered)'}: {dev.info.model} ==="]
    usb = snap.usb(dev.usb_device)
    ident = f" ({usb.vendor:04x}:{usb.product_id:04x} {usb.product})" if usb else ""
    lines.append(f"key device        {dev.key}{ident}")
    if dev.shared:
        suffix = " (inferred)" if "refcount" in dev.inferred else ""
        lines.append(f"allocator         shared through media_device_usb_allocate(){suffix}")
        lines.append(f"refcount          {dev.refcount}")
        if dev.owner:
            lines.append(
                f"owner module      {dev.owner} (refcnt {dev.owner_refcnt}, {dev.owner_refs_from_sharers} from sharers)"
            )
        else:
            lines.append("owner module      built in (no module reference)")
    else:
        lines.append("allocator         not shared: the driver's own media device")
    for n, h in enumerate(dev.holders):
        lines.append(f"{'holders' if n == 0 else '':<18}{h.driver} {h.interface} ({h.reason})")
    if not dev.holders:
        lines.append("holders           none")
    lines.append(f"registered        {'yes, ' + dev.devnode if dev.devnode else 'no'}")
    lines.append(f"topology_version  {t.topology_version}")
    lines.append(
        f"counts            {len(t.entities)} entities, {len(t.interfaces)} interfaces, "
        f"{len(t.pads)} pads, {len(t.links)} links"
    )
    for a in dev.anomalies:
        lines.append(f"ANOMALY           {a}")
    return "\n".join(lines) + "\n"


def render(snap: SystemSnapshot) -> str:
    parts = [f"# {note}" for note in snap.notes]
    parts.append("")
    for dev in snap.media_devices:
        parts.append(allocator_state(dev, snap))
        if dev.registered:
            parts.append(media_ctl_p(dev))
        else:
            parts.append("(not registered: no /dev/media node to read)\n")
    if not snap.media_devices:
        parts.append("no media devices\n")
    parts.append("Modules")
    parts.append("-------")
    for m in snap.modules:
        refcnt = "built in" if m.refcnt is None else str(m.refcnt)
        used = f"  used by: {' '.join(m.used_by)}" if m.used_by else ""
        parts.append(f"{m.name:<16}{refcnt:>8}{used}")
    for a in snap.anomalies:
        parts.append(f"ANOMALY {a}")
    return "\n".join(parts) + "\n"

"""``dump --format text``: the allocator's view, then ``media-ctl -p`` for each device.

A device that could not be read says "unknown (why)" for everything the ioctls would have
told, and lists what sysfs still shows: its parent, the drivers bound there and their
modules' refcnt.  ``media-ctl -p`` shows no ancillary links (MEDIA_IOC_ENUM_LINKS does not
return them, and libmediactl knows no other); they are listed with the allocator's view.
"""

from __future__ import annotations

from ..model import ANCILLARY, BoundDriver, HolderView, MediaDeviceView, SystemSnapshot, links_of_kind
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
        by_pad: dict[int, list[str]] = {}  # each pad's lines, in the order of the entity's links
        for ln in ent.links:
            if ln.source.entity == d.id:
                other = ents[ln.sink.entity].desc.name if ln.sink.entity in ents else "?"
                line = f'\t\t-> "{other}":{ln.sink.index} [{link_flags(ln.flags)}]'
                by_pad.setdefault(ln.source.index, []).append(line)
            if ln.sink.entity == d.id and (ln.source.entity, ln.source.index) != (d.id, ln.sink.index):
                other = ents[ln.source.entity].desc.name if ln.source.entity in ents else "?"
                line = f'\t\t<- "{other}":{ln.source.index} [{link_flags(ln.flags)}]'
                by_pad.setdefault(ln.sink.index, []).append(line)
        for j in range(d.pads):
            out.append(f"\tpad{j}: {pad_type(pad_flags.get((d.id, j), 0))}")
            out.extend(by_pad.get(j, ()))
        out.append("")
    return "\n".join(out) + "\n"


def allocator_state(dev: MediaDeviceView, snap: SystemSnapshot) -> str:
    where = f"{dev.host}: " if dev.host else ""
    lines = [f"=== {where}{node_title(dev)}: {dev.info.model} ===", key_line(dev, snap)]
    lines += _allocator_lines(dev, snap)
    lines += _holder_lines(dev)
    lines += bound_lines(dev, snap)
    lines.append(f"registered        {registered_text(dev)}")
    lines += _graph_lines(dev)
    for a in dev.anomalies:
        lines.append(f"ANOMALY           {a}")
    return "\n".join(lines) + "\n"


def node_title(dev: MediaDeviceView) -> str:
    if dev.devnode:
        return dev.devnode
    if dev.unread is not None:
        return f"{dev.name} (/dev node unknown)"
    return "media device (not registered)"


def key_line(dev: MediaDeviceView, snap: SystemSnapshot) -> str:
    """The USB key device with its ids, or the real parent of any other media device."""
    if dev.usb_device is None:
        return f"parent            {dev.parent_device or 'none'}"
    usb = snap.usb(dev.usb_device, dev.host)
    ident = f" ({usb.vendor:04x}:{usb.product_id:04x} {usb.product}".rstrip() + ")" if usb else ""
    return f"key device        {dev.local_key}{ident}"


#: a shared device with no owner module: its driver is built in, or the design (v3) takes no
#: module reference at all
OWNERLESS = "none held (a built-in driver, or a design that takes no module reference)"


def _allocator_lines(dev: MediaDeviceView, snap: SystemSnapshot) -> list[str]:
    if not dev.shared:
        return ["allocator         not shared: the driver's own media device"]
    suffix = " (inferred)" if "refcount" in dev.inferred else ""
    lines = [
        f"allocator         shared through media_device_usb_allocate(){suffix}",
        f"refcount          {dev.fact(dev.refcount)}",
    ]
    if dev.owner:
        sharers = "" if dev.owner_refs_from_sharers is None else f", {dev.owner_refs_from_sharers} from sharers"
        owner_refcnt = snap.owner_refcnt(dev)
        owner_refcnt = "unknown" if owner_refcnt is None else owner_refcnt  # /sys/module/NAME unreadable
        lines.append(f"owner module      {dev.owner} (refcnt {owner_refcnt}{sharers})")
    elif dev.unread is not None:
        lines.append(f"owner module      {dev.unread.unknown}")
    else:
        lines.append(f"owner module      {OWNERLESS}")
    return lines


def _holder_lines(dev: MediaDeviceView) -> list[str]:
    if dev.unread is not None:
        return [f"holders           {dev.unread.unknown}"]
    lines = []
    for n, h in enumerate(dev.holders):
        lines.append(f"{'holders' if n == 0 else '':<18}{h.driver} {h.interface} ({h.reason})")
        lines += [f"{'':<20}{chain}" for chain in kept_chain(h, dev)]
    lines = lines or ["holders           none"]
    files = open_file_lines(dev)
    return lines + [f"{'open files' if n == 0 else '':<18}{line}" for n, line in enumerate(files)]


#: control characters in caret notation (as ``cat -v``), C1 ones (U+0080-U+009F: CSI is
#: U+009B) as ``\x9b``: a process may name itself with an escape sequence, a USB string may
#: hold one; neither may reach the terminal
VISIBLE = {c: f"^{chr(c + 64)}" for c in range(32)} | {127: "^?"} | {c: f"\\x{c:02x}" for c in range(0x80, 0xA0)}


def printable(text: str) -> str:
    return text.translate(VISIBLE)


def stamp(t: float) -> str:
    """A time on the clock the events carry, as the event log's column shows it."""
    return f"{t:.6f}"


def kept_chain(h: HolderView, dev: MediaDeviceView) -> list[str]:
    """Why a deferred reference is still held: ``au0828 unbound at T; reference kept by
    /dev/video0 (deleted), open in pid 4121 (tvheadend) since T``, a line per open file."""
    if h.state != "deferred":
        return []
    unbound = f"{h.driver} unbound at {stamp(h.unbound_at)}" if h.unbound_at is not None else f"{h.driver} unbound"
    if not h.kept_by:
        hidden = f": {dev.hidden_openers} hidden (permission)" if dev.hidden_openers else ""
        why = "no process found holding its nodes" if dev.open_files is not None else "open files not looked for"
        return [f"{unbound}; reference kept by an open file ({why}{hidden})"]
    return [
        f"{unbound}; reference kept by {printable(k.node)}, open in pid {k.pid} ({printable(k.comm)})"
        + (f" since {stamp(k.since)}" if k.since is not None else "")
        for k in h.kept_by
    ]


def open_file_lines(dev: MediaDeviceView) -> list[str]:
    """``pid 4121 tvheadend (user) fd 3 /dev/video0 rw``, a line per file, and the hidden."""
    if dev.open_files is None:
        return []
    lines = [
        f"pid {f.pid} {printable(f.comm)} ({printable(f.user)}) fd {f.fd} {printable(f.node)} {f.mode}"
        for f in dev.open_files
    ]
    if dev.hidden_openers:
        lines.append(f"{dev.hidden_openers} hidden (permission)")
    return lines or ["none"]


def bound_lines(dev: MediaDeviceView, snap: SystemSnapshot) -> list[str]:
    """What sysfs says is bound to the key device, where the holders cannot say it: the
    device could not be read, or its parent is no USB device."""
    if dev.bound is None or (dev.unread is None and dev.usb_device is not None):
        return []
    lines = [f"{'bound drivers' if n == 0 else '':<18}{bound_text(b, snap, dev.host)}" for n, b in enumerate(dev.bound)]
    return lines or ["bound drivers     none"]


def bound_text(b: BoundDriver, snap: SystemSnapshot, host: str = "") -> str:
    """``au0828 1-1:1.0 (module au0828, refcnt 1)``; the refcnt from /sys/module."""
    mod = snap.module(b.module, host) if b.module else None
    refcnt = f", refcnt {mod.refcnt}" if mod is not None and mod.refcnt is not None else ""
    where = f"module {b.module}{refcnt}" if b.module else "built in"
    return f"{b.driver} {b.device} ({where})"


def registered_text(dev: MediaDeviceView) -> str:
    if dev.devnode:
        return f"yes, {dev.devnode}"
    return "no" if dev.registered_known or dev.unread is None else dev.unread.unknown


def _graph_lines(dev: MediaDeviceView) -> list[str]:
    if dev.unread is not None:
        return [f"topology_version  {dev.unread.unknown}", f"counts            {dev.unread.unknown}"]
    t = dev.topology
    lines = [
        f"topology_version  {t.topology_version}",
        f"counts            {len(t.entities)} entities, {len(t.interfaces)} interfaces, "
        f"{len(t.pads)} pads, {len(t.links)} links",
    ]
    names = {e.id: e.name for e in t.entities}
    for n, ln in enumerate(links_of_kind(t.links, ANCILLARY)):
        primary, other = (names.get(i, f"? (entity {i})") for i in (ln.source_id, ln.sink_id))
        lines.append(f"{'ancillary links' if n == 0 else '':<18}{primary} <=> {other} [{link_flags(ln.flags)}]")
    return lines


def render(snap: SystemSnapshot) -> str:
    parts = [f"# {note}" for note in snap.notes]
    parts += [f"# host {h.name}: {h.state}{': ' + h.detail if h.detail else ''}" for h in snap.hosts]
    parts.append("")
    for dev in snap.media_devices:
        parts.append(allocator_state(dev, snap))
        if dev.unread is not None:
            parts.append(f"(media-ctl -p: {dev.unread.unknown})\n")
        elif dev.registered:
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
        where = f"  ({m.host})" if m.host else ""
        parts.append(f"{m.name:<16}{refcnt:>8}{used}{where}")
    for a in snap.anomalies:
        parts.append(f"ANOMALY {a}")
    return "\n".join(parts) + "\n"

"""The media ioctls as the kernel answers them, in the uapi's bytes (mc-devnode.c's
``media_ioctl()`` and mc-device.c's ``media_device_ioctl()``).

``media_ioctl(device, request, arg)`` returns what the kernel would: the bytes to copy back
into the argument (or None: nothing copied, as on any error), the bytes to write at the user
pointers the argument carries, and an errno; whoever stands for the caller's memory applies
the writes (the tests' ioctl seam with ``ctypes.memmove``, the rig through umockdev).
Semantics kept: counts and topology_version always computed, -ENOSPC (and no copy-back)
when a supplied array is too small, arrays after the first short one not written, no
backlinks; ENUM_ENTITIES exact id or MEDIA_ENT_ID_FLAG_NEXT, -EINVAL past the end;
ENUM_LINKS pads and outbound links; SETUP_LINK through ``media_device_setup_link`` (its errno,
nothing copied back on error); -EIO once the device is unregistered; -ENOTTY for any other
request.  ``pack_*`` lay the kernel's structs out as ``copy_to_user()`` hands them over.
"""

from __future__ import annotations

import bisect
import ctypes
import errno
import struct
from collections.abc import Iterable
from typing import NamedTuple, Protocol

from ..chrdev import strscpy
from ..errors import KernelError
from . import uapi_layout
from .topology import DeviceInfo, EntityDesc, LinkDesc, PadDesc, TopoEntity, TopoInterface, TopoLink, Topology, TopoPad
from .uapi import MEDIA_ENT_ID_FLAG_NEXT
from .uapi_layout import ENTITY, INTERFACE, LINK, PAD


class MediaSource(Protocol):
    """What the ioctls read of a media device: ``MediaDevice`` has it, a test's made-up graph
    can stand in for it."""

    @property
    def registered(self) -> bool: ...
    def device_info(self) -> DeviceInfo: ...
    def topology(self) -> Topology: ...
    def enum_entities(self) -> tuple[EntityDesc, ...]: ...
    def enum_links(self, entity_id: int) -> tuple[tuple[PadDesc, ...], tuple[LinkDesc, ...]]: ...
    def media_device_setup_link(self, source: tuple[int, int], sink: tuple[int, int], flags: int) -> None: ...


class Reply(NamedTuple):
    """What the kernel hands back: the errno (0: success), the argument, the array writes."""

    errno: int
    arg: bytes | None  # copied back into the ioctl argument when errno == 0
    writes: tuple[tuple[int, bytes], ...] = ()  # (user pointer, bytes) copied out


def media_ioctl(dev: MediaSource, request: int, arg: bytes) -> Reply:
    """One ioctl on an open ``/dev/mediaN`` of ``dev``, ``arg`` the bytes copied in."""
    if request not in uapi_layout.REQUESTS:
        return Reply(errno.ENOTTY, None)
    if not dev.registered:
        return Reply(errno.EIO, None)
    if request == uapi_layout.MEDIA_IOC_DEVICE_INFO:
        return Reply(0, pack_device_info(dev.device_info()))
    if request == uapi_layout.MEDIA_IOC_G_TOPOLOGY:
        return _g_topology(dev, arg)
    if request == uapi_layout.MEDIA_IOC_ENUM_ENTITIES:
        return _enum_entities(dev, arg)
    if request == uapi_layout.MEDIA_IOC_SETUP_LINK:
        return _setup_link(dev, arg)
    return _enum_links(dev, arg)


def _setup_link(dev: MediaSource, arg: bytes) -> Reply:
    """``media_device_setup_link()``: ``reserved`` zeroed, the argument copied back on success."""
    desc = uapi_layout.MediaLinkDesc.from_buffer_copy(arg[: ctypes.sizeof(uapi_layout.MediaLinkDesc)])
    desc.reserved[0] = desc.reserved[1] = 0
    try:
        dev.media_device_setup_link(
            (desc.source.entity, desc.source.index), (desc.sink.entity, desc.sink.index), desc.flags
        )
    except KernelError as exc:
        return Reply(exc.errno or errno.EINVAL, None)
    return Reply(0, bytes(desc))


_TOPOLOGY_CACHE: dict[int, tuple[object, int, tuple[tuple[str, int, bytes], ...]]] = {}


def _packed(dev: MediaSource) -> tuple[int, tuple[tuple[str, int, bytes], ...]]:
    """(topology_version, [(array name, count, kernel-layout bytes)]), packed once per graph
    generation: the kernel copies its lists out in C, and a reader asks twice per read."""
    key = getattr(dev, "generation", None)
    cached = _TOPOLOGY_CACHE.get(id(dev))
    if cached is None or key is None or cached[0] != key:
        topo = dev.topology()
        arrays = (
            ("entities", len(topo.entities), pack_entities(topo.entities)),
            ("interfaces", len(topo.interfaces), pack_interfaces(topo.interfaces)),
            ("pads", len(topo.pads), pack_pads(topo.pads)),
            ("links", len(topo.links), pack_links(topo.links)),
        )
        cached = (key, topo.topology_version, arrays)
        _TOPOLOGY_CACHE[id(dev)] = cached
    return cached[1], cached[2]


def _g_topology(dev: MediaSource, arg: bytes) -> Reply:
    head = uapi_layout.MediaV2Topology.from_buffer_copy(arg[: ctypes.sizeof(uapi_layout.MediaV2Topology)])
    version, arrays = _packed(dev)
    writes = []
    failed = 0
    for name, count, data in arrays:
        room, ptr = getattr(head, f"num_{name}"), getattr(head, f"ptr_{name}")
        setattr(head, f"num_{name}", count)
        if failed or not ptr:
            continue
        if count > room:
            failed = errno.ENOSPC
            continue
        writes.append((ptr, data))
    head.topology_version = version
    head.reserved1 = head.reserved2 = head.reserved3 = head.reserved4 = 0
    if failed:
        return Reply(failed, None, tuple(writes))
    return Reply(0, bytes(head), tuple(writes))


_ENUM_CACHE: dict[int, tuple[object, list[EntityDesc], list[int]]] = {}


def _sorted_descs(dev: MediaSource) -> tuple[list[EntityDesc], list[int]]:
    """ENUM_ENTITIES descs by id, cached per graph generation: media-ctl asks once per
    entity, and recomputing every time made a 522-entity walk quadratic."""
    key = getattr(dev, "generation", None)
    cached = _ENUM_CACHE.get(id(dev))
    if cached is None or key is None or cached[0] != key:
        descs = sorted(dev.enum_entities(), key=lambda d: d.id)
        cached = (key, descs, [d.id for d in descs])
        _ENUM_CACHE.clear()  # one device at a time is all a reader walks
        _ENUM_CACHE[id(dev)] = cached
    return cached[1], cached[2]


def _enum_entities(dev: MediaSource, arg: bytes) -> Reply:
    want = struct.unpack_from("<I", arg)[0]
    descs, ids = _sorted_descs(dev)
    if want & MEDIA_ENT_ID_FLAG_NEXT:
        n = bisect.bisect_right(ids, want & ~MEDIA_ENT_ID_FLAG_NEXT)
        found = descs[n] if n < len(descs) else None
    else:
        n = bisect.bisect_left(ids, want)
        found = descs[n] if n < len(ids) and ids[n] == want else None
    if found is None:
        return Reply(errno.EINVAL, None)
    return Reply(0, pack_entity_desc(*found))


def _enum_links(dev: MediaSource, arg: bytes) -> Reply:
    req = uapi_layout.MediaLinksEnum.from_buffer_copy(arg[: ctypes.sizeof(uapi_layout.MediaLinksEnum)])
    try:
        pads, links = dev.enum_links(req.entity)
    except OSError:
        return Reply(errno.EINVAL, None)
    writes = []
    pads_ptr = ctypes.cast(req.pads, ctypes.c_void_p).value
    links_ptr = ctypes.cast(req.links, ctypes.c_void_p).value
    if pads_ptr:
        writes.append((pads_ptr, b"".join(bytes(_pad(p)) for p in pads)))
    if links_ptr:
        out = []
        for ln in links:
            desc = uapi_layout.MediaLinkDesc()
            desc.source, desc.sink, desc.flags = _pad(ln.source), _pad(ln.sink), ln.flags
            out.append(bytes(desc))
        writes.append((links_ptr, b"".join(out)))
    ctypes.memset(ctypes.addressof(req.reserved), 0, ctypes.sizeof(req.reserved))  # as media_device_enum_links() does
    return Reply(0, bytes(req), tuple(writes))


def _pad(p: PadDesc) -> uapi_layout.MediaPadDesc:
    desc = uapi_layout.MediaPadDesc()
    desc.entity, desc.index, desc.flags = p.entity, p.index, p.flags
    return desc


# -- the kernel's structs, as copy_to_user() hands them over ----------------------------------


def pack_device_info(info: DeviceInfo) -> bytes:
    out = uapi_layout.MediaDeviceInfo()
    out.driver = strscpy(info.driver, 16)
    out.model = strscpy(info.model, 32)
    out.serial = strscpy(info.serial, 40)
    out.bus_info = strscpy(info.bus_info, 32)
    out.media_version, out.hw_revision, out.driver_version = info.media_version, info.hw_revision, info.driver_version
    return bytes(out)


def pack_entities(entities: Iterable[TopoEntity]) -> bytes:
    return b"".join(ENTITY.pack(e.id, strscpy(e.name, 64), e.function, e.flags) for e in entities)


def pack_interfaces(interfaces: Iterable[TopoInterface]) -> bytes:
    return b"".join(INTERFACE.pack(i.id, i.intf_type, i.flags, i.major, i.minor) for i in interfaces)


def pack_pads(pads: Iterable[TopoPad]) -> bytes:
    return b"".join(PAD.pack(p.id, p.entity_id, p.flags, p.index) for p in pads)


def pack_links(links: Iterable[TopoLink]) -> bytes:
    return b"".join(LINK.pack(ln.id, ln.source_id, ln.sink_id, ln.flags) for ln in links)


def pack_entity_desc(
    eid: int, name: str, etype: int, flags: int, pads: int, links: int, major: int, minor: int
) -> bytes:
    desc = uapi_layout.MediaEntityDesc()
    desc.id, desc.name, desc.type, desc.flags = eid, strscpy(name, 32), etype, flags
    desc.pads, desc.links = pads, links
    struct.pack_into("<II", desc.raw, 0, major, minor)
    return bytes(desc)

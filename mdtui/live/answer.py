"""The kernel's side of the media ioctls, answered from a simulated media device.

``respond(device, request, arg)`` returns what mc-device.c would: the bytes to copy back
into the argument (or None: nothing copied, as on any error), the bytes to write at the
user pointers the argument carries, and an errno.  The tests' ioctl seam applies the writes
with ``ctypes.memmove``; the rig applies them through umockdev.  Semantics kept: counts and
topology_version always computed, -ENOSPC (and no copy-back) when a supplied array is too
small, arrays after the first short one not written, no backlinks; ENUM_ENTITIES exact id or
MEDIA_ENT_ID_FLAG_NEXT, -EINVAL past the end; ENUM_LINKS pads and outbound links; -EIO once
the device is unregistered; -ENOTTY for any other request.
"""

from __future__ import annotations

import bisect
import ctypes
import errno
import os
import struct
from typing import NamedTuple, Protocol

from allocator.mc.topology import DeviceInfo, EntityDesc, LinkDesc, PadDesc, Topology

from . import uapi


class MediaSource(Protocol):
    @property
    def registered(self) -> bool: ...
    def device_info(self) -> DeviceInfo: ...
    def topology(self) -> Topology: ...
    def enum_entities(self) -> tuple[EntityDesc, ...]: ...
    def enum_links(self, entity_id: int) -> tuple[tuple[PadDesc, ...], tuple[LinkDesc, ...]]: ...


class Reply(NamedTuple):
    errno: int
    arg: bytes | None  # copied back into the ioctl argument when errno == 0
    writes: tuple[tuple[int, bytes], ...] = ()  # (user pointer, bytes) copied out


def respond(dev: MediaSource, request: int, arg: bytes) -> Reply:
    if request not in uapi.REQUESTS or request == uapi.MEDIA_IOC_SETUP_LINK:
        return Reply(errno.ENOTTY, None)
    if not dev.registered:
        return Reply(errno.EIO, None)
    if request == uapi.MEDIA_IOC_DEVICE_INFO:
        return Reply(0, uapi.pack_device_info(dev.device_info()))
    if request == uapi.MEDIA_IOC_G_TOPOLOGY:
        return _g_topology(dev, arg)
    if request == uapi.MEDIA_IOC_ENUM_ENTITIES:
        return _enum_entities(dev, arg)
    return _enum_links(dev, arg)


_TOPOLOGY_CACHE: dict[int, tuple[object, int, tuple[tuple[str, int, bytes], ...]]] = {}


def _packed(dev: MediaSource) -> tuple[int, tuple[tuple[str, int, bytes], ...]]:
    """(topology_version, [(array name, count, kernel-layout bytes)]), packed once per graph
    generation: the kernel copies its lists out in C, and a reader asks twice per read."""
    key = getattr(dev, "generation", None)
    cached = _TOPOLOGY_CACHE.get(id(dev))
    if cached is None or key is None or cached[0] != key:
        topo = dev.topology()
        arrays = (
            ("entities", len(topo.entities), uapi.pack_entities(topo.entities)),
            ("interfaces", len(topo.interfaces), uapi.pack_interfaces(topo.interfaces)),
            ("pads", len(topo.pads), uapi.pack_pads(topo.pads)),
            ("links", len(topo.links), uapi.pack_links(topo.links)),
        )
        cached = (key, topo.topology_version, arrays)
        _TOPOLOGY_CACHE[id(dev)] = cached
    return cached[1], cached[2]


def _g_topology(dev: MediaSource, arg: bytes) -> Reply:
    head = uapi.MediaV2Topology.from_buffer_copy(arg[: ctypes.sizeof(uapi.MediaV2Topology)])
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
    if want & uapi.MEDIA_ENT_ID_FLAG_NEXT:
        n = bisect.bisect_right(ids, want & ~uapi.MEDIA_ENT_ID_FLAG_NEXT)
        found = descs[n] if n < len(descs) else None
    else:
        n = bisect.bisect_left(ids, want)
        found = descs[n] if n < len(ids) and ids[n] == want else None
    if found is None:
        return Reply(errno.EINVAL, None)
    return Reply(0, uapi.pack_entity_desc(*found))


def _enum_links(dev: MediaSource, arg: bytes) -> Reply:
    req = uapi.MediaLinksEnum.from_buffer_copy(arg[: ctypes.sizeof(uapi.MediaLinksEnum)])
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
            desc = uapi.MediaLinkDesc()
            desc.source, desc.sink, desc.flags = _pad(ln.source), _pad(ln.sink), ln.flags
            out.append(bytes(desc))
        writes.append((links_ptr, b"".join(out)))
    return Reply(0, bytes(arg[: ctypes.sizeof(uapi.MediaLinksEnum)]), tuple(writes))


def _pad(p: PadDesc) -> uapi.MediaPadDesc:
    desc = uapi.MediaPadDesc()
    desc.entity, desc.index, desc.flags = p.entity, p.index, p.flags
    return desc


class FakeIoctl:
    """An ioctl seam that answers for the files in ``devices`` (path -> device), whatever
    file descriptor they were opened as; writes to user pointers go through
    ``ctypes.memmove``, like the kernel's copy_to_user."""

    def __init__(self, devices: dict[str, MediaSource] | None = None) -> None:
        self.devices = devices if devices is not None else {}
        self.calls: dict[str, int] = {}

    def __call__(self, fd: int, request: int, buf: object) -> object:
        path = os.readlink(f"/proc/self/fd/{fd}")
        self.calls[path] = self.calls.get(path, 0) + 1
        dev = self.devices.get(path)
        if dev is None:
            raise OSError(errno.ENOTTY, "Inappropriate ioctl for device")
        view = memoryview(buf).cast("B")  # type: ignore[arg-type]
        reply = respond(dev, request, bytes(view))
        for ptr, data in reply.writes:
            ctypes.memmove(ptr, data, len(data))
        if reply.errno:
            raise OSError(reply.errno, f"{uapi.REQUESTS.get(request, hex(request))}: errno {reply.errno}")
        if reply.arg is not None:
            view[: len(reply.arg)] = reply.arg
        return 0

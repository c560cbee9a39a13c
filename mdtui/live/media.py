"""Reading ``/dev/mediaN``: DEVICE_INFO, the two-call G_TOPOLOGY protocol, and what
ENUM_ENTITIES would add (each entity's legacy type and ``info.dev``, for the media-ctl view).

Every ioctl goes through one seam, ``ioctl(fd, request, buffer)`` (``fcntl.ioctl`` with a
mutable buffer, by default), so tests and the rig can answer with kernel-layout bytes.

G_TOPOLOGY: the first call (all pointers 0) returns the counts and ``topology_version``;
the second, with arrays a little larger than the counts, fills them.  When the version
changed between the calls, or the graph outgrew the arrays (ENOSPC, after which the kernel
copies nothing back), read again, at most ``RETRIES`` times.  Kernels before 4.19 leave
entity flags and pad indexes out; they are 0 and the order within the entity.

ENUM_ENTITIES's answer: from 4.19 (a complete G_TOPOLOGY) it is derived from G_TOPOLOGY
(``allocator.mc.legacy``, the rules the simulated kernel answers with), and ENUM_ENTITIES is
asked by id only for the entities whose type depends on what G_TOPOLOGY cannot show (is it a
V4L2 sub-device?): none on a HVR-950Q, two on a UVC webcam.  Before 4.19, the walk: one
ENUM_ENTITIES per entity (MEDIA_ENT_ID_FLAG_NEXT).  An entity seen in an earlier read (same
id, name and function) keeps the answer it had: it never changes while the entity exists.

Failures become a ``MediaReadError`` with a state a user can act on: ``gone`` (ENOENT,
ENXIO, ENODEV, EIO: the device went away between enumeration, open and ioctl), ``denied``
(EACCES, EPERM: not in the ``video`` group, the common case), ``unsupported`` (ENOTTY: not
a media device, or too old), ``unstable`` (the graph kept changing), ``error`` (the rest,
and a kernel whose answers make no sense).  Nothing the device answers can make the reader
loop or allocate without bound: counts past ``MAX_OBJECTS`` are refused, and the
ENUM_ENTITIES walk stops after as many entities as G_TOPOLOGY reported (plus slack).
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
from typing import Callable, NamedTuple

from allocator.mc import legacy as legacy_view
from allocator.mc import uapi, uapi_layout
from allocator.mc.topology import DeviceInfo, Topology

from ..model import Unread
from .decode import unpack_device_info, unpack_entities, unpack_interfaces, unpack_links, unpack_pads

Ioctl = Callable[[int, int, object], object]
RETRIES = 5
SLACK = 16  # extra array slots, so a graph that grows a little between the calls still fits
#: more objects than any media device has (ids are 24 bits): a count past it is garbage
MAX_OBJECTS = 1 << 20

ARRAYS = (uapi_layout.ENTITY, uapi_layout.INTERFACE, uapi_layout.PAD, uapi_layout.LINK)  # G_TOPOLOGY's, in its order

GONE = {errno.ENOENT, errno.ENXIO, errno.ENODEV, errno.EIO}
STATES = {errno.EACCES: "denied", errno.EPERM: "denied", errno.ENOTTY: "unsupported", errno.EAGAIN: "unstable"}


def kernel_ioctl(fd: int, request: int, buf: object) -> object:
    return fcntl.ioctl(fd, request, buf, True)  # type: ignore[call-overload]


class MediaReadError(OSError):
    def __init__(self, code: int, path: str, what: str) -> None:
        super().__init__(code, f"{what} on {path}: {os.strerror(code)}")
        self.path = path
        self.what = what
        self.state = "gone" if code in GONE else STATES.get(code, "error")

    @property
    def errname(self) -> str:
        code = self.errno or errno.EIO
        return errno.errorcode.get(code, str(code))

    def unread(self) -> Unread:
        """What the views say instead of the facts: "permission denied: /dev/media0
        (EACCES on open)"."""
        text = os.strerror(self.errno or errno.EIO)
        reason = f"{text[:1].lower()}{text[1:]}: {self.path} ({self.errname} on {self.what})"
        return Unread(self.state, reason, self.errname)


class MediaRead(NamedTuple):
    info: DeviceInfo
    topology: Topology
    legacy: dict[int, tuple[int, int, int]]  # entity id -> ENUM_ENTITIES type, info.dev major, minor
    retries: int


def read(path: str, ioctl: Ioctl = kernel_ioctl, known: MediaRead | None = None, links: bool = False) -> MediaRead:
    """Read a media device.  ``known`` is an earlier read of the same node, whose
    ENUM_ENTITIES answers are kept for the entities seen again, and whose graph is kept
    whole while the device says its topology_version is the same (the kernel bumps it when
    an object comes or goes), unless ``links`` asks for the graph again: a link's flags
    change with no new version."""
    try:  # O_NONBLOCK: a media node ignores it, and a FIFO in a garbage tree does not hang us
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError as exc:
        raise MediaReadError(exc.errno or errno.EIO, path, "open") from exc
    except ValueError as exc:  # a NUL in the name
        raise MediaReadError(errno.EINVAL, path, "open") from exc
    try:
        info = device_info(fd, path, ioctl)
        same = known if known is not None and not links and known.info == info else None
        topology, retries = g_topology(fd, path, ioctl, info.media_version, same.topology if same else None)
        if same is not None and topology is same.topology:
            return same
        seen = _seen(topology, known) if known is not None and info == known.info else {}
        if info.media_version >= uapi_layout.V2_FLAGS_AND_PAD_INDEX:
            legacy, unsettled = legacy_view.derive(topology)
            legacy.update((i, seen[i]) for i in unsettled if i in seen)
            legacy.update(enum_entity_ids(fd, path, ioctl, [i for i in unsettled if i not in seen]))
        elif len(seen) == len({e.id for e in topology.entities}):
            legacy = seen
        else:
            legacy = enum_entities(fd, path, ioctl, len(topology.entities) + SLACK)
        return MediaRead(info, topology, legacy, retries)
    finally:
        os.close(fd)


def _counts(topology: Topology) -> tuple[int, int, int, int]:
    return len(topology.entities), len(topology.interfaces), len(topology.pads), len(topology.links)


def _seen(topology: Topology, known: MediaRead) -> dict[int, tuple[int, int, int]]:
    """The earlier answers for this read's entities that are the same ones (id, name, function)."""
    before = {(e.id, e.name, e.function) for e in known.topology.entities}
    return {
        e.id: known.legacy[e.id]
        for e in topology.entities
        if (e.id, e.name, e.function) in before and e.id in known.legacy
    }


def _call(ioctl: Ioctl, fd: int, request: int, buf: object, path: str) -> None:
    try:
        ioctl(fd, request, buf)
    except OSError as exc:
        raise MediaReadError(exc.errno or errno.EIO, path, uapi_layout.REQUESTS.get(request, hex(request))) from exc


def device_info(fd: int, path: str, ioctl: Ioctl = kernel_ioctl) -> DeviceInfo:
    buf = uapi_layout.MediaDeviceInfo()
    _call(ioctl, fd, uapi_layout.MEDIA_IOC_DEVICE_INFO, buf, path)
    return unpack_device_info(bytes(buf))


def g_topology(
    fd: int, path: str, ioctl: Ioctl = kernel_ioctl, media_version: int = 0, known: Topology | None = None
) -> tuple[Topology, int]:
    """The graph, asked for twice (the counts, then the arrays), again while it changes
    between the two; ``known`` is returned as it is when the first answer has its version
    and counts."""
    modern = media_version >= uapi_layout.V2_FLAGS_AND_PAD_INDEX
    for attempt in range(RETRIES):
        head = uapi_layout.MediaV2Topology()
        _call(ioctl, fd, uapi_layout.MEDIA_IOC_G_TOPOLOGY, head, path)
        version = head.topology_version
        counts = (head.num_entities, head.num_interfaces, head.num_pads, head.num_links)
        if known is not None and known.topology_version == version and counts == _counts(known):
            return known, attempt
        if max(counts) > MAX_OBJECTS:
            raise MediaReadError(errno.EOVERFLOW, path, f"MEDIA_IOC_G_TOPOLOGY (implausible counts {counts})")
        caps = [n + SLACK for n in counts]
        arrays = [ctypes.create_string_buffer(max(1, cap * fmt.size)) for cap, fmt in zip(caps, ARRAYS)]
        full = uapi_layout.MediaV2Topology()
        full.num_entities, full.num_interfaces, full.num_pads, full.num_links = caps
        full.ptr_entities, full.ptr_interfaces, full.ptr_pads, full.ptr_links = (ctypes.addressof(a) for a in arrays)
        try:
            _call(ioctl, fd, uapi_layout.MEDIA_IOC_G_TOPOLOGY, full, path)
        except MediaReadError as exc:
            if exc.errno == errno.ENOSPC:  # it grew past the slack: ask again
                continue
            raise
        if full.topology_version != version:
            continue
        counts = [
            min(n, cap)
            for n, cap in zip((full.num_entities, full.num_interfaces, full.num_pads, full.num_links), caps)
        ]
        ents, intfs, pads, links = (a.raw for a in arrays)
        return Topology(
            full.topology_version,
            unpack_entities(ents, counts[0], modern),
            unpack_interfaces(intfs, counts[1]),
            unpack_pads(pads, counts[2], modern),
            unpack_links(links, counts[3]),
        ), attempt
    raise MediaReadError(errno.EAGAIN, path, f"MEDIA_IOC_G_TOPOLOGY (the graph changed on {RETRIES} reads)")


def enum_entities(
    fd: int, path: str, ioctl: Ioctl = kernel_ioctl, limit: int = MAX_OBJECTS
) -> dict[int, tuple[int, int, int]]:
    """Walk ENUM_ENTITIES with MEDIA_ENT_ID_FLAG_NEXT until EINVAL; ENOTTY means none.
    At most ``limit`` entities: a device that keeps answering with higher ids is lying."""
    out: dict[int, tuple[int, int, int]] = {}
    last = 0
    while len(out) < limit:
        desc = uapi_layout.MediaEntityDesc()
        desc.id = last | uapi.MEDIA_ENT_ID_FLAG_NEXT
        try:
            ioctl(fd, uapi_layout.MEDIA_IOC_ENUM_ENTITIES, desc)
        except OSError as exc:
            if exc.errno in (errno.EINVAL, errno.ENOTTY):
                return out
            raise MediaReadError(exc.errno or errno.EIO, path, "MEDIA_IOC_ENUM_ENTITIES") from exc
        if desc.id <= last:  # a device that does not advance would loop forever
            return out
        last = desc.id
        out[desc.id] = _answer(desc)
    return out


def enum_entity_ids(
    fd: int, path: str, ioctl: Ioctl = kernel_ioctl, ids: list[int] | tuple[int, ...] = ()
) -> dict[int, tuple[int, int, int]]:
    """ENUM_ENTITIES for these ids alone (exact id).  An entity gone since G_TOPOLOGY (EINVAL)
    has no answer; ENOTTY means none for any."""
    out: dict[int, tuple[int, int, int]] = {}
    for entity_id in ids:
        desc = uapi_layout.MediaEntityDesc()
        desc.id = entity_id
        try:
            ioctl(fd, uapi_layout.MEDIA_IOC_ENUM_ENTITIES, desc)
        except OSError as exc:
            if exc.errno == errno.EINVAL:
                continue
            if exc.errno == errno.ENOTTY:
                return out
            raise MediaReadError(exc.errno or errno.EIO, path, "MEDIA_IOC_ENUM_ENTITIES") from exc
        if desc.id == entity_id:  # a kernel answering for another entity is not believed
            out[entity_id] = _answer(desc)
    return out


def _answer(desc: uapi_layout.MediaEntityDesc) -> tuple[int, int, int]:
    """(type, info.dev major, minor) of an ENUM_ENTITIES answer."""
    raw = bytes(desc.raw[0:8])
    return desc.type, int.from_bytes(raw[0:4], "little"), int.from_bytes(raw[4:8], "little")

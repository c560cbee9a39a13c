"""include/uapi/linux/media.h as ctypes and struct layouts, and both directions of it.

Sizes and ioctl numbers are checked when this module is imported (x86_64 / LP64 values):
a layout that drifts fails loudly instead of decoding garbage.  ``unpack_*`` turn the
kernel's bytes into snapshot tuples; ``pack_*`` turn a simulated media device into the bytes
the kernel would copy out (used by the tests' ioctl seam and by the rig).
"""

from __future__ import annotations

import ctypes
import struct
from collections.abc import Iterable

from allocator.mc.topology import DeviceInfo, TopoEntity, TopoInterface, TopoLink, TopoPad

_IOC_WRITE, _IOC_READ = 1, 2


def _iowr(nr: int, size: int) -> int:
    return ((_IOC_READ | _IOC_WRITE) << 30) | (size << 16) | (ord("|") << 8) | nr


class MediaDeviceInfo(ctypes.Structure):
    _fields_ = (
        ("driver", ctypes.c_char * 16),
        ("model", ctypes.c_char * 32),
        ("serial", ctypes.c_char * 40),
        ("bus_info", ctypes.c_char * 32),
        ("media_version", ctypes.c_uint32),
        ("hw_revision", ctypes.c_uint32),
        ("driver_version", ctypes.c_uint32),
        ("reserved", ctypes.c_uint32 * 31),
    )


class MediaV2Topology(ctypes.Structure):
    _pack_ = 1
    _fields_ = (
        ("topology_version", ctypes.c_uint64),
        ("num_entities", ctypes.c_uint32),
        ("reserved1", ctypes.c_uint32),
        ("ptr_entities", ctypes.c_uint64),
        ("num_interfaces", ctypes.c_uint32),
        ("reserved2", ctypes.c_uint32),
        ("ptr_interfaces", ctypes.c_uint64),
        ("num_pads", ctypes.c_uint32),
        ("reserved3", ctypes.c_uint32),
        ("ptr_pads", ctypes.c_uint64),
        ("num_links", ctypes.c_uint32),
        ("reserved4", ctypes.c_uint32),
        ("ptr_links", ctypes.c_uint64),
    )


class MediaEntityDesc(ctypes.Structure):
    _fields_ = (
        ("id", ctypes.c_uint32),
        ("name", ctypes.c_char * 32),
        ("type", ctypes.c_uint32),
        ("revision", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
        ("group_id", ctypes.c_uint32),
        ("pads", ctypes.c_uint16),
        ("links", ctypes.c_uint16),
        ("reserved", ctypes.c_uint32 * 4),
        ("raw", ctypes.c_uint8 * 184),  # union: dev {major, minor} first
    )


class MediaPadDesc(ctypes.Structure):
    _fields_ = (
        ("entity", ctypes.c_uint32),
        ("index", ctypes.c_uint16),
        ("flags", ctypes.c_uint32),
        ("reserved", ctypes.c_uint32 * 2),
    )


class MediaLinkDesc(ctypes.Structure):
    _fields_ = (
        ("source", MediaPadDesc),
        ("sink", MediaPadDesc),
        ("flags", ctypes.c_uint32),
        ("reserved", ctypes.c_uint32 * 2),
    )


class MediaLinksEnum(ctypes.Structure):
    _fields_ = (
        ("entity", ctypes.c_uint32),
        ("pads", ctypes.POINTER(MediaPadDesc)),
        ("links", ctypes.POINTER(MediaLinkDesc)),
        ("reserved", ctypes.c_uint32 * 4),
    )


# the v2 arrays, little-endian and packed, as struct formats
ENTITY = struct.Struct("<I64sII20x")  # id, name, function, flags, reserved[5]
INTERFACE = struct.Struct("<III36xII56x")  # id, intf_type, flags, reserved[9], devnode major/minor, rest of raw[16]
PAD = struct.Struct("<IIII16x")  # id, entity_id, flags, index, reserved[4]
LINK = struct.Struct("<IIII24x")  # id, source_id, sink_id, flags, reserved[6]

MEDIA_IOC_DEVICE_INFO = _iowr(0x00, ctypes.sizeof(MediaDeviceInfo))
MEDIA_IOC_ENUM_ENTITIES = _iowr(0x01, ctypes.sizeof(MediaEntityDesc))
MEDIA_IOC_ENUM_LINKS = _iowr(0x02, ctypes.sizeof(MediaLinksEnum))
MEDIA_IOC_SETUP_LINK = _iowr(0x03, ctypes.sizeof(MediaLinkDesc))
MEDIA_IOC_G_TOPOLOGY = _iowr(0x04, ctypes.sizeof(MediaV2Topology))
MEDIA_ENT_ID_FLAG_NEXT = 1 << 31
V2_FLAGS_AND_PAD_INDEX = (4 << 16) | (19 << 8)  # MEDIA_V2_ENTITY_HAS_FLAGS / PAD_HAS_INDEX: 4.19

REQUESTS = {
    MEDIA_IOC_DEVICE_INFO: "MEDIA_IOC_DEVICE_INFO",
    MEDIA_IOC_ENUM_ENTITIES: "MEDIA_IOC_ENUM_ENTITIES",
    MEDIA_IOC_ENUM_LINKS: "MEDIA_IOC_ENUM_LINKS",
    MEDIA_IOC_SETUP_LINK: "MEDIA_IOC_SETUP_LINK",
    MEDIA_IOC_G_TOPOLOGY: "MEDIA_IOC_G_TOPOLOGY",
}


def _check_layouts() -> None:
    sizes = {
        MediaDeviceInfo: 256,
        MediaV2Topology: 72,
        MediaEntityDesc: 256,
        MediaPadDesc: 20,
        MediaLinkDesc: 52,
        MediaLinksEnum: 40,
    }
    for cls, size in sizes.items():
        if ctypes.sizeof(cls) != size:
            raise ImportError(f"struct {cls.__name__} is {ctypes.sizeof(cls)} bytes, media.h says {size}")
    for fmt, size in ((ENTITY, 96), (INTERFACE, 112), (PAD, 32), (LINK, 40)):
        if fmt.size != size:
            raise ImportError(f"v2 array element is {fmt.size} bytes, media.h says {size}")
    expected = (0xC1007C00, 0xC1007C01, 0xC0287C02, 0xC0347C03, 0xC0487C04)
    got = (
        MEDIA_IOC_DEVICE_INFO,
        MEDIA_IOC_ENUM_ENTITIES,
        MEDIA_IOC_ENUM_LINKS,
        MEDIA_IOC_SETUP_LINK,
        MEDIA_IOC_G_TOPOLOGY,
    )
    if got != expected:
        raise ImportError(f"ioctl numbers {[hex(g) for g in got]} differ from media.h's {[hex(e) for e in expected]}")


_check_layouts()


def _cstr(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace")


# -- kernel bytes -> snapshot tuples -------------------------------------------------------


def _records(buf: bytes, count: int, fmt: struct.Struct) -> bytes:
    """The first ``count`` records, or as many whole ones as the buffer holds."""
    count = max(0, min(count, len(buf) // fmt.size))
    return buf[: count * fmt.size]


def unpack_device_info(buf: bytes) -> DeviceInfo:
    size = ctypes.sizeof(MediaDeviceInfo)
    info = MediaDeviceInfo.from_buffer_copy(buf[:size].ljust(size, b"\0"))
    return DeviceInfo(
        _cstr(info.driver),
        _cstr(info.model),
        _cstr(info.serial),
        _cstr(info.bus_info),
        info.media_version,
        info.hw_revision,
        info.driver_version,
    )


def unpack_entities(buf: bytes, count: int, has_flags: bool = True) -> tuple[TopoEntity, ...]:
    return tuple(
        TopoEntity(i, _cstr(name), function, flags if has_flags else 0)
        for i, name, function, flags in ENTITY.iter_unpack(_records(buf, count, ENTITY))
    )


def unpack_interfaces(buf: bytes, count: int) -> tuple[TopoInterface, ...]:
    return tuple(TopoInterface(*t) for t in INTERFACE.iter_unpack(_records(buf, count, INTERFACE)))


def unpack_pads(buf: bytes, count: int, has_index: bool = True) -> tuple[TopoPad, ...]:
    pads = [TopoPad(*t) for t in PAD.iter_unpack(_records(buf, count, PAD))]
    if has_index:
        return tuple(pads)
    seen: dict[int, int] = {}  # before 4.19: index by order within the entity
    out = []
    for p in pads:
        n = seen.get(p.entity_id, 0)
        seen[p.entity_id] = n + 1
        out.append(p._replace(index=n))
    return tuple(out)


def unpack_links(buf: bytes, count: int) -> tuple[TopoLink, ...]:
    return tuple(TopoLink(*t) for t in LINK.iter_unpack(_records(buf, count, LINK)))


# -- snapshot tuples -> kernel bytes -------------------------------------------------------


def _fixed(text: str, size: int) -> bytes:
    """strscpy(): truncated to size - 1 bytes and NUL-terminated."""
    return text.encode()[: size - 1]


def pack_device_info(info: DeviceInfo) -> bytes:
    out = MediaDeviceInfo()
    out.driver = _fixed(info.driver, 16)
    out.model = _fixed(info.model, 32)
    out.serial = _fixed(info.serial, 40)
    out.bus_info = _fixed(info.bus_info, 32)
    out.media_version, out.hw_revision, out.driver_version = info.media_version, info.hw_revision, info.driver_version
    return bytes(out)


def pack_entities(entities: Iterable[TopoEntity]) -> bytes:
    return b"".join(ENTITY.pack(e.id, _fixed(e.name, 64), e.function, e.flags) for e in entities)


def pack_interfaces(interfaces: Iterable[TopoInterface]) -> bytes:
    return b"".join(INTERFACE.pack(i.id, i.intf_type, i.flags, i.major, i.minor) for i in interfaces)


def pack_pads(pads: Iterable[TopoPad]) -> bytes:
    return b"".join(PAD.pack(p.id, p.entity_id, p.flags, p.index) for p in pads)


def pack_links(links: Iterable[TopoLink]) -> bytes:
    return b"".join(LINK.pack(ln.id, ln.source_id, ln.sink_id, ln.flags) for ln in links)


def pack_entity_desc(
    eid: int, name: str, etype: int, flags: int, pads: int, links: int, major: int, minor: int
) -> bytes:
    desc = MediaEntityDesc()
    desc.id, desc.name, desc.type, desc.flags = eid, _fixed(name, 32), etype, flags
    desc.pads, desc.links = pads, links
    struct.pack_into("<II", desc.raw, 0, major, minor)
    return bytes(desc)

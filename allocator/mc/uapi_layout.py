"""include/uapi/linux/media.h's ioctls (layouts as on x86_64 / LP64): the argument structs as
ctypes, the G_TOPOLOGY array elements as struct formats, and the ioctl numbers.  Both sides
use it: the kernel's answers (``allocator.mc.ioctl``) and the reader of a real machine
(``mdtui.live``).  Apart from ``uapi`` (the constants the model itself uses) so that the
simulation alone never loads ctypes.

Sizes and ioctl numbers are checked when this module is imported: a layout that drifts fails
loudly instead of decoding garbage.
"""

from __future__ import annotations

import ctypes
import struct

from ..ioc import ioc


def _iowr(nr: int, size: int) -> int:
    return ioc("rw", "|", nr, size)


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

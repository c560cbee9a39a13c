"""The media uapi's bytes, as a real kernel copies them out, turned into snapshot tuples.

The layouts are include/uapi/linux/media.h's, from ``allocator.mc.uapi_layout``; kernels before 4.19
leave entity flags and pad indexes out (``has_flags``/``has_index`` False).  A buffer shorter
than its count says is read for the whole records it holds.
"""

from __future__ import annotations

import ctypes
import struct

from allocator.mc.topology import DeviceInfo, TopoEntity, TopoInterface, TopoLink, TopoPad
from allocator.mc.uapi_layout import ENTITY, INTERFACE, LINK, PAD, MediaDeviceInfo


def _cstr(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace")


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

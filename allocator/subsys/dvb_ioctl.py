"""The ioctls of a DVB frontend node in the uapi's bytes (include/uapi/linux/dvb/frontend.h and
version.h, x86_64 layout), as ``dvb_frontend_ioctl()`` and ``dvb_frontend_handle_ioctl()``
(drivers/media/dvb-core/dvb_frontend.c), through ``dvb_usercopy()``, answer them.

* EFAULT first when the argument cannot be read (``dvb_usercopy()`` copies it in), then
  ENODEV once the frontend is gone (``fe->exit == DVB_FE_DEVICE_REMOVED``);
* FE_GET_INFO: a zeroed ``dvb_frontend_info`` with the demodulator's name, symbol rates and
  caps, the step and frequency range the demodulator and tuner allow together, the DVBv3
  type of the cached delivery system, and CAN_INVERSION_AUTO (not in one-shot tune mode);
* FE_GET_PROPERTY: EINVAL for no property or more than ``DTV_IOCTL_MAX_MSGS``, EFAULT when the
  property array cannot be read, then each property from the cache: DTV_API_VERSION (5.12,
  Linux 6.12's), DTV_DELIVERY_SYSTEM, DTV_ENUM_DELSYS; the array is written back and the
  argument copied back.  The rest of the property cache (frequency, modulation, statistics...)
  is not modelled: such a property fails the call with EINVAL, as an unknown one does;
* anything else: ENOTTY.  (The kernel answers EPERM to a write-type request on a read-only
  open; the simulated file does not keep its open flags.)
"""

from __future__ import annotations

import ctypes
import errno
import struct

from ..chrdev import UserMemory, strscpy
from ..ioc import ioc
from ..mc.ioctl import Reply
from .dvb import DVBV3_TYPES, FE_CAN_INVERSION_AUTO, FE_OFDM, DvbFrontend

DVB_API_VERSION, DVB_API_VERSION_MINOR = 5, 12
DTV_IOCTL_MAX_MSGS = 64
DTV_DELIVERY_SYSTEM = 17
DTV_API_VERSION = 35
DTV_ENUM_DELSYS = 44


class DvbFrontendInfo(ctypes.Structure):
    """``struct dvb_frontend_info``."""

    _fields_ = (
        ("name", ctypes.c_char * 128),
        ("type", ctypes.c_uint32),
        ("frequency_min", ctypes.c_uint32),
        ("frequency_max", ctypes.c_uint32),
        ("frequency_stepsize", ctypes.c_uint32),
        ("frequency_tolerance", ctypes.c_uint32),
        ("symbol_rate_min", ctypes.c_uint32),
        ("symbol_rate_max", ctypes.c_uint32),
        ("symbol_rate_tolerance", ctypes.c_uint32),
        ("notifier_delay", ctypes.c_uint32),
        ("caps", ctypes.c_uint32),
    )


#: ``struct dtv_properties``: num, (padding), props
DTV_PROPERTIES = struct.Struct("<I4xQ")
#: ``struct dtv_property`` (packed, 76 bytes): cmd, reserved[3], the 56-byte union, result
DTV_PROPERTY = struct.Struct("<I12x56si")


FE_GET_INFO = ioc("r", "o", 61, ctypes.sizeof(DvbFrontendInfo))
FE_GET_PROPERTY = ioc("r", "o", 83, DTV_PROPERTIES.size)


def dvb_frontend_ioctl(fe: DvbFrontend, request: int, arg: bytes | None, user: UserMemory) -> Reply:
    """One ioctl on an open frontend node of ``fe``; ``arg`` the argument's bytes (None: they
    could not be read)."""
    if arg is None:
        return Reply(errno.EFAULT, None)
    if fe.removed:
        return Reply(errno.ENODEV, None)
    if request == FE_GET_INFO:
        return Reply(0, pack_frontend_info(fe))
    if request == FE_GET_PROPERTY:
        return _get_property(fe, arg, user)
    return Reply(errno.ENOTTY, None)


def pack_frontend_info(fe: DvbFrontend) -> bytes:
    ops = fe.ops
    info = DvbFrontendInfo()
    info.name = strscpy(ops.name, 128)
    info.symbol_rate_min, info.symbol_rate_max = ops.symbol_rate_min, ops.symbol_rate_max
    info.symbol_rate_tolerance = ops.symbol_rate_tolerance
    info.caps = ops.caps | FE_CAN_INVERSION_AUTO  # dropped only in FE_TUNE_MODE_ONESHOT, never set here
    info.frequency_stepsize = fe.stepsize()
    info.frequency_min, info.frequency_max, info.frequency_tolerance = fe.frequency_limits()
    info.type = DVBV3_TYPES.get(fe.delivery_system, FE_OFDM)
    return bytes(info)


def _get_property(fe: DvbFrontend, arg: bytes, user: UserMemory) -> Reply:
    num, props = DTV_PROPERTIES.unpack_from(arg)
    if not num or num > DTV_IOCTL_MAX_MSGS:
        return Reply(errno.EINVAL, None)
    raw = user.copy_from_user(props, num * DTV_PROPERTY.size)
    if raw is None:
        return Reply(errno.EFAULT, None)
    out = []
    for i in range(num):
        cmd, union, result = DTV_PROPERTY.unpack_from(raw, i * DTV_PROPERTY.size)
        value = dtv_property_process_get(fe, cmd, union)
        if value is None:
            return Reply(errno.EINVAL, None)  # "FE property %d doesn't exist"
        out.append(raw[i * DTV_PROPERTY.size : i * DTV_PROPERTY.size + 16] + value + struct.pack("<i", result))
    return Reply(0, arg[: DTV_PROPERTIES.size], ((props, b"".join(out)),))


def dtv_property_process_get(fe: DvbFrontend, cmd: int, union: bytes) -> bytes | None:
    """The property's 56-byte union as the kernel leaves it (only what the command sets is
    written over the caller's bytes), or None for a property this model does not keep."""
    if cmd == DTV_ENUM_DELSYS:  # u.buffer.data[0..n-1] and u.buffer.len
        delsys = bytes(fe.ops.delsys)
        return delsys + union[len(delsys) : 32] + struct.pack("<I", len(delsys)) + union[36:]
    if cmd == DTV_DELIVERY_SYSTEM:
        data = fe.delivery_system
    elif cmd == DTV_API_VERSION:
        data = (DVB_API_VERSION << 8) | DVB_API_VERSION_MINOR
    else:
        return None
    return struct.pack("<I", data) + union[4:]  # u.data


def _check_layouts() -> None:
    sizes = (ctypes.sizeof(DvbFrontendInfo), DTV_PROPERTY.size, DTV_PROPERTIES.size)
    if sizes != (168, 76, 16) or (FE_GET_INFO, FE_GET_PROPERTY) != (0x80A86F3D, 0x80106F53):
        raise ImportError("the frontend ioctls' layouts differ from frontend.h's")


_check_layouts()

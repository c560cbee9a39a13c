"""include/uapi/linux/videodev2.h's VIDIOC_QUERYCAP (x86_64 / LP64 layout): its argument
struct as ctypes and its ioctl number.  Both sides use it: the kernel's answer
(``allocator.subsys.v4l2_ioctl``) and the soak on a live machine (``mdtui.soak.machine``),
which the remote agent runs on a target's Python 3.8 with the standard library only: this
module imports nothing of the simulated kernel.

The size and the ioctl number are checked when this module is imported: a layout that
drifts fails loudly instead of decoding garbage.
"""

from __future__ import annotations

import ctypes

from ..ioc import ioc


class V4l2Capability(ctypes.Structure):
    """``struct v4l2_capability``."""

    _fields_ = (
        ("driver", ctypes.c_char * 16),
        ("card", ctypes.c_char * 32),
        ("bus_info", ctypes.c_char * 32),
        ("version", ctypes.c_uint32),
        ("capabilities", ctypes.c_uint32),
        ("device_caps", ctypes.c_uint32),
        ("reserved", ctypes.c_uint32 * 3),
    )


#: ``_IOR('V', 0, struct v4l2_capability)``
VIDIOC_QUERYCAP = ioc("r", "V", 0, ctypes.sizeof(V4l2Capability))


def _check_layout() -> None:
    if ctypes.sizeof(V4l2Capability) != 104 or VIDIOC_QUERYCAP != 0x80685600:
        raise ImportError("struct v4l2_capability / VIDIOC_QUERYCAP differ from videodev2.h's")


_check_layout()

"""The V4L2 ioctls of a video or VBI node in the uapi's bytes (include/uapi/linux/videodev2.h,
x86_64 layout), as ``v4l2_ioctl()`` (v4l2-dev.c) and ``video_usercopy()`` (v4l2-ioctl.c)
answer them.

ENODEV once the video device is unregistered, before anything else; EFAULT when an argument
the request passes in (``_IOC_WRITE``) cannot be read; VIDIOC_QUERYCAP through
``v4l_querycap`` (``allocator.subsys.v4l2``): the core's version and device caps completed by
the driver's ``vidioc_querycap``; ENOTTY for every other request (the model's video nodes
answer no other V4L2 ioctl), nothing copied back on an error.  The struct and the request
number are ``v4l2_uapi``'s.
"""

from __future__ import annotations

import errno

from ..chrdev import strscpy
from ..errors import KernelError
from ..files import File
from ..ioc import writes_in
from ..mc.ioctl import Reply
from .v4l2 import VideoDevice, v4l_querycap
from .v4l2_uapi import VIDIOC_QUERYCAP, V4l2Capability


def v4l2_ioctl(vdev: VideoDevice, file: File, request: int, arg: bytes | None) -> Reply:
    """One ioctl on an open video/VBI node of ``vdev``; ``arg`` the argument's bytes (None:
    they could not be read)."""
    if not vdev.registered:
        return Reply(errno.ENODEV, None)
    if arg is None and writes_in(request):
        return Reply(errno.EFAULT, None)  # video_get_user()
    if request != VIDIOC_QUERYCAP:
        return Reply(errno.ENOTTY, None)
    try:
        cap = v4l_querycap(vdev, file)
    except KernelError as exc:
        return Reply(exc.errno or errno.EIO, None)
    return Reply(0, pack_capability(cap))


def pack_capability(cap: dict[str, object]) -> bytes:
    """``struct v4l2_capability`` as the core zeroes it and copies it out."""
    out = V4l2Capability()
    out.driver = strscpy(str(cap["driver"]), 16)
    out.card = strscpy(str(cap["card"]), 32)
    out.bus_info = strscpy(str(cap["bus_info"]), 32)
    out.version, out.capabilities, out.device_caps = cap["version"], cap["capabilities"], cap["device_caps"]
    return bytes(out)

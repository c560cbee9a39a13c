"""V4L2 core pieces that shape the media graph and device lifetimes.

* ``V4l2Device`` (``struct v4l2_device``): a kref whose release is the driver's; subdevice
  entities are registered in the media device when ``v4l2_dev->mdev`` is set.
* ``video_register_device``: first free minor of major 81 and first free number of its type
  (``video0``, ``vbi0``), an entity (IO_V4L / IO_VBI, one sink pad, named after the node), an
  interface (V4L_VIDEO / V4L_VBI) and an enabled interface link, then the device node.
* ``video_unregister_device`` removes the node at once, but the video device, its entity,
  interface and minor go only at its release (``v4l2_device_release``): when the last open file
  is closed.  Each video device holds a reference on its ``v4l2_device``.
* ``v4l2_mc_create_media_graph`` links tuner, decoder, I/O entities and connectors as
  drivers/media/v4l2-core/v4l2-mc.c does (only the first connector link enabled).
* ``v4l_enable_media_source``: any error of ``enable_source`` becomes EBUSY for V4L2.
* ``v4l_querycap``: VIDIOC_QUERYCAP as the core completes the driver's answer (version,
  ``device_caps`` from the video device, EXT_PIX_FORMAT); its bytes are
  ``allocator.subsys.v4l2_ioctl``'s, reached through the node's ``unlocked_ioctl``.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..chrdev import UserMemory
from ..device import Device
from ..errors import KernelError
from ..files import File, Fops, enotty
from ..kref import Kref
from ..mc.device import MediaDevice
from ..mc.entity import Entity, sink
from ..mc.uapi import (
    MEDIA_ENT_F_ATV_DECODER,
    MEDIA_ENT_F_CONN_COMPOSITE,
    MEDIA_ENT_F_CONN_RF,
    MEDIA_ENT_F_CONN_SVIDEO,
    MEDIA_ENT_F_IO_V4L,
    MEDIA_ENT_F_IO_VBI,
    MEDIA_ENT_F_TUNER,
    MEDIA_ENT_FL_DEFAULT,
    MEDIA_INTF_T_V4L_VBI,
    MEDIA_INTF_T_V4L_VIDEO,
    MEDIA_LNK_FL_ENABLED,
    PAD_SIGNAL_ANALOG,
    PAD_SIGNAL_DV,
)
from ..module import Module

if TYPE_CHECKING:
    from ..kernel import Kernel
    from ..mc.ioctl import Reply

VIDEO_MAJOR = 81

# include/uapi/linux/videodev2.h: struct v4l2_capability's capability bits
V4L2_CAP_VIDEO_CAPTURE = 0x00000001
V4L2_CAP_VBI_CAPTURE = 0x00000010
V4L2_CAP_TUNER = 0x00010000
V4L2_CAP_AUDIO = 0x00020000
V4L2_CAP_EXT_PIX_FORMAT = 0x00200000
V4L2_CAP_META_CAPTURE = 0x00800000
V4L2_CAP_READWRITE = 0x01000000
V4L2_CAP_STREAMING = 0x04000000
V4L2_CAP_DEVICE_CAPS = 0x80000000

VFL_TYPES = {
    "video": (MEDIA_ENT_F_IO_V4L, MEDIA_INTF_T_V4L_VIDEO),
    "vbi": (MEDIA_ENT_F_IO_VBI, MEDIA_INTF_T_V4L_VBI),
}


class V4l2Device:
    """``struct v4l2_device``."""

    def __init__(
        self, k: Kernel, dev: Device, mdev: MediaDevice | None, release: Callable[[], None], owner: object
    ) -> None:
        self.k = k
        self.owner = owner  # the driver instance its entities belong to
        self.dev = dev
        self.mdev = mdev
        self._release = release
        self.ref = Kref(lambda text: k.warn(f"v4l2 {dev.name}", text))
        self.subdevs: list[Entity] = []

    def register_subdev(self, entity: Entity) -> None:
        """``v4l2_device_register_subdev()``: the subdev's entity joins the media device."""
        self.subdevs.append(entity)
        entity.obj_type_subdev = True
        if self.mdev is not None:
            self.mdev.media_device_register_entity(entity)

    def unregister(self) -> None:
        """``v4l2_device_unregister()``: unregister every subdev (and its entity)."""
        for entity in self.subdevs:
            if entity.mdev is not None:
                entity.mdev.media_device_unregister_entity(entity)
        self.subdevs.clear()

    def get(self) -> None:
        self.ref.kref_get()

    def put(self) -> None:
        self.ref.kref_put(lambda _kref: self._release())


class NodeOps:
    """What a driver plugs into its video node: open/release/ioctl beyond the core's."""

    def open(self, vdev: VideoDevice, file: File) -> None:
        """Called after the core took its reference; raise to refuse."""

    def release(self, vdev: VideoDevice, file: File) -> None:
        """Called before the core drops its reference."""

    def ioctl(self, vdev: VideoDevice, file: File, request: str) -> Any:
        raise enotty(file, request)


class VideoDevice:
    """``struct video_device``: its own kref stands for ``vdev->dev``'s references."""

    def __init__(
        self,
        v4l2_dev: V4l2Device,
        name: str,
        vfl_type: str,
        ops: NodeOps,
        owner: Module | None,
        device_caps: int = 0,
    ):
        self.v4l2_dev = v4l2_dev
        self.name = name
        self.vfl_type = vfl_type
        self.ops = ops
        self.owner = owner
        self.device_caps = device_caps  # what the driver set before video_register_device()
        self.pipe = object()  # vdev->pipe: the media pipeline v4l_enable_media_source() starts
        self.minor = -1
        self.num = -1
        self.device: Device | None = None
        self.entity: Entity | None = None
        self.intf_devnode: Any = None
        self.registered = False
        self.ref = Kref(lambda text: v4l2_dev.k.warn(f"video4linux {name}", text))

    @property
    def node(self) -> str:
        return self.device.node if self.device is not None else ""


def video_register_device(
    v4l2_dev: V4l2Device, name: str, vfl_type: str, ops: NodeOps, owner: Module | None, device_caps: int = 0
) -> VideoDevice:
    k = v4l2_dev.k
    vdev = VideoDevice(v4l2_dev, name, vfl_type, ops, owner, device_caps)
    minor = k.video_minors.get()
    num = k.video_numbers[vfl_type].get()
    if minor is None or num is None:
        raise KernelError(errno.ENFILE, "videodev: could not get a free minor")
    vdev.minor, vdev.num = minor, num
    mdev = v4l2_dev.mdev
    if mdev is not None:  # video_register_media_controller()
        function, intf_type = VFL_TYPES[vfl_type]
        flags = MEDIA_ENT_FL_DEFAULT if vfl_type == "video" else 0
        vdev.entity = Entity(name, function, (sink(),), flags=flags, owner=v4l2_dev.owner)
        vdev.entity.info_dev = (VIDEO_MAJOR, minor)
        mdev.media_device_register_entity(vdev.entity)
        vdev.intf_devnode = mdev.media_devnode_create(intf_type, 0, VIDEO_MAJOR, minor)
        mdev.media_create_intf_link(vdev.entity, vdev.intf_devnode, MEDIA_LNK_FL_ENABLED)
    node = f"{vfl_type}{num}"
    vdev.device = Device(
        node,
        v4l2_dev.dev,
        "video4linux",
        dirname=f"video4linux/{node}",
        devt=(VIDEO_MAJOR, minor),
        devname=node,
        attrs={"name": name, "index": "0"},
    )
    k.files.register(vdev.device, _video_fops(vdev, k))
    k.devices.device_add(vdev.device)
    vdev.registered = True
    v4l2_dev.get()
    return vdev


def _video_fops(vdev: VideoDevice, k: Kernel) -> Fops:
    def do_open(file: File) -> None:
        with k.videodev_lock:  # v4l2_open(): the registered check and video_get() under videodev_lock
            if not vdev.registered:
                raise KernelError(errno.ENODEV, f"{vdev.node}: {os.strerror(errno.ENODEV)}")
            vdev.ref.kref_get()  # video_get(): the file keeps the video device alive
        try:
            vdev.ops.open(vdev, file)
        except KernelError:
            video_put(vdev)
            raise

    def do_release(file: File) -> None:
        vdev.ops.release(vdev, file)
        video_put(vdev)

    def do_ioctl(file: File, request: str) -> Any:
        if not vdev.registered:
            raise KernelError(errno.ENODEV, f"{request} on {file.path}: {os.strerror(errno.ENODEV)}")
        if request == "VIDIOC_QUERYCAP":
            return v4l_querycap(vdev, file)
        return vdev.ops.ioctl(vdev, file, request)

    def unlocked_ioctl(file: File, request: int, arg: bytes | None, user: UserMemory) -> Reply:
        from .v4l2_ioctl import v4l2_ioctl

        return v4l2_ioctl(vdev, file, request, arg)

    owners = (k.module("videodev"), vdev.owner)
    return Fops(owners, open=do_open, release=do_release, ioctl=do_ioctl, unlocked_ioctl=unlocked_ioctl)


def v4l_querycap(vdev: VideoDevice, file: File) -> dict[str, Any]:
    """``v4l_querycap()`` (v4l2-ioctl.c): version and caps from the core, then the driver's
    ``vidioc_querycap`` (driver, card, bus_info, capabilities), then EXT_PIX_FORMAT on both.
    The core WARNs when the driver changed ``device_caps`` or reported capabilities that are
    not a superset of them."""
    k = vdev.v4l2_dev.k
    base = vdev.device_caps | V4L2_CAP_DEVICE_CAPS
    cap: dict[str, Any] = {
        "driver": "",
        "card": "",
        "bus_info": "",
        "version": k.media_bus.kernel_version,
        "capabilities": base,
        "device_caps": vdev.device_caps,
    }
    cap.update(vdev.ops.ioctl(vdev, file, "VIDIOC_QUERYCAP"))
    if cap["device_caps"] != vdev.device_caps or cap["capabilities"] & base != base:
        k.warn(f"video4linux {vdev.device.name if vdev.device else vdev.name}", "v4l_querycap: driver's caps")
    cap["capabilities"] |= V4L2_CAP_EXT_PIX_FORMAT
    cap["device_caps"] |= V4L2_CAP_EXT_PIX_FORMAT
    return cap


def video_unregister_device(vdev: VideoDevice) -> None:
    """The registered flag is cleared under ``videodev_lock``, so an open that found it set
    has taken its reference before the registration's own is put."""
    with vdev.v4l2_dev.k.videodev_lock:
        if not vdev.registered:
            return
        vdev.registered = False
    if vdev.device is not None:
        vdev.v4l2_dev.k.devices.device_del(vdev.device)
    video_put(vdev)


def video_put(vdev: VideoDevice) -> None:
    vdev.ref.kref_put(lambda _kref: _v4l2_device_release(vdev))


def _v4l2_device_release(vdev: VideoDevice) -> None:
    """The release of ``vdev->dev``: interface and entity leave the graph, the minor is freed,
    and the video device's reference on the v4l2_device is dropped."""
    v4l2_dev = vdev.v4l2_dev
    mdev = v4l2_dev.mdev
    if mdev is not None:
        if vdev.intf_devnode is not None and vdev.intf_devnode.mdev is mdev:
            mdev.media_devnode_remove(vdev.intf_devnode)
        if vdev.entity is not None:
            mdev.media_device_unregister_entity(vdev.entity)
    v4l2_dev.k.video_minors.put(vdev.minor)
    v4l2_dev.k.video_numbers[vdev.vfl_type].put(vdev.num)
    v4l2_dev.put()


def v4l2_mc_create_media_graph(mdev: MediaDevice) -> None:
    """drivers/media/v4l2-core/v4l2-mc.c, for a board without IF-PLL decoders."""
    last: dict[int, Entity] = {}
    with mdev.graph_mutex:
        for entity in mdev.entities.values():
            last[entity.function] = entity
        entities = list(mdev.entities.values())
    tuner = last.get(MEDIA_ENT_F_TUNER)
    decoder = last.get(MEDIA_ENT_F_ATV_DECODER)
    io_v4l = last.get(MEDIA_ENT_F_IO_V4L)
    io_vbi = last.get(MEDIA_ENT_F_IO_VBI)
    if io_v4l is None and io_vbi is None:
        raise KernelError(errno.EINVAL, "v4l2_mc_create_media_graph: no I/O entity")
    if decoder is None:
        raise KernelError(errno.EINVAL, "v4l2_mc_create_media_graph: no decoder")
    get = mdev.media_get_pad_index
    if tuner is not None:
        mdev.media_create_pad_link(
            tuner,
            get(tuner, False, PAD_SIGNAL_ANALOG),
            decoder,
            get(decoder, True, PAD_SIGNAL_ANALOG),
            MEDIA_LNK_FL_ENABLED,
        )
    dv = get(decoder, False, PAD_SIGNAL_DV)
    if io_v4l is not None:
        mdev.media_create_pad_link(decoder, dv, io_v4l, 0, MEDIA_LNK_FL_ENABLED)
    if io_vbi is not None:
        mdev.media_create_pad_link(decoder, dv, io_vbi, 0, MEDIA_LNK_FL_ENABLED)
    flags = MEDIA_LNK_FL_ENABLED
    for entity in entities:
        if entity.function == MEDIA_ENT_F_CONN_RF:
            if tuner is None:
                continue
            mdev.media_create_pad_link(entity, 0, tuner, get(tuner, True, PAD_SIGNAL_ANALOG), flags)
        elif entity.function in (MEDIA_ENT_F_CONN_SVIDEO, MEDIA_ENT_F_CONN_COMPOSITE):
            mdev.media_create_pad_link(entity, 0, decoder, get(decoder, True, PAD_SIGNAL_ANALOG), flags)
        else:
            continue
        flags = 0


def v4l_enable_media_source(vdev: VideoDevice, pipe: object) -> None:
    mdev = vdev.v4l2_dev.mdev
    if mdev is None or vdev.entity is None:
        return
    with mdev.graph_mutex:
        if mdev.enable_source is None:
            return
        try:
            mdev.enable_source(vdev.entity, pipe)
        except KernelError as exc:
            raise KernelError(errno.EBUSY, f"{vdev.node}: {os.strerror(errno.EBUSY)}", vdev.node) from exc


def v4l_disable_media_source(vdev: VideoDevice) -> None:
    mdev = vdev.v4l2_dev.mdev
    if mdev is None or vdev.entity is None:
        return
    with mdev.graph_mutex:
        if mdev.disable_source is not None:
            mdev.disable_source(vdev.entity)

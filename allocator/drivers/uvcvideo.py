"""uvcvideo (drivers/media/usb/uvc): a webcam with a media device of its own.

The contrast case: the UVC driver embeds its ``media_device`` in its own device structure and
initialises it itself (parent = the video control *interface*, model = the product string,
no driver_name so DEVICE_INFO reports the bound driver, ``uvcvideo``).  Nothing goes through
the allocator, so nothing is shared.  It claims the video streaming interface.

Approximate graph: the video node entity, then the chain's units (Extension 3, Processing 2,
Camera 1) linked ENABLED|IMMUTABLE towards the node.  The functions are ``uvc_mc_init_entity``'s
(drivers/media/usb/uvc/uvc_entity.c): the camera terminal a sensor, processing and extension
units a pixel formatter ("for lack of a better option"), so registering them logs nothing.
The metadata node is not modelled.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..files import File
from ..mc.device import MediaDevice
from ..mc.entity import Entity, sink, source
from ..mc.uapi import (
    MEDIA_ENT_F_CAM_SENSOR,
    MEDIA_ENT_F_PROC_VIDEO_PIXEL_FORMATTER,
    MEDIA_LNK_FL_ENABLED,
    MEDIA_LNK_FL_IMMUTABLE,
)
from ..subsys import v4l2
from ..usb import UsbInterface
from ..usbcore import UsbDriver
from . import Holder

if TYPE_CHECKING:
    from ..kernel import Kernel

USB_CLASS_VIDEO = 0x0E


class UvcDevice:
    def __init__(self, intf: UsbInterface, mdev: MediaDevice) -> None:
        self.intf = intf
        self.mdev = mdev
        self.v4l2_dev: v4l2.V4l2Device | None = None
        self.vdev: v4l2.VideoDevice | None = None
        self.alive = True

    @property
    def label(self) -> str:
        return f"uvcvideo on {self.intf.name}"


class UvcVideoOps(v4l2.NodeOps):
    """uvc_v4l2.c's ``uvc_ioctl_querycap``: the device's name, and the chain's caps (a capture
    chain has VIDEO_CAPTURE and META_CAPTURE, the latter for its metadata node)."""

    def __init__(self, dev: UvcDevice) -> None:
        self.dev = dev

    def ioctl(self, vdev: v4l2.VideoDevice, file: File, request: str) -> Any:
        if request == "VIDIOC_QUERYCAP":
            chain_caps = v4l2.V4L2_CAP_VIDEO_CAPTURE | v4l2.V4L2_CAP_META_CAPTURE
            return {
                "driver": "uvcvideo",
                "card": self.dev.mdev.model,
                "bus_info": self.dev.intf.udev.usb_make_path(),
                "capabilities": v4l2.V4L2_CAP_DEVICE_CAPS | v4l2.V4L2_CAP_STREAMING | chain_caps,
            }
        return super().ioctl(vdev, file, request)


class UvcDriver(UsbDriver):
    name = "uvcvideo"

    def __init__(self, kernel: Kernel, module: Any) -> None:
        super().__init__(kernel, module)
        self.devs: list[UvcDevice] = []

    def match(self, intf: UsbInterface) -> bool:
        return intf.desc.cls == USB_CLASS_VIDEO and intf.desc.subclass == 0x01

    def probe(self, intf: UsbInterface) -> None:
        udev = intf.udev
        mdev = MediaDevice(self.k.media_bus)
        mdev.dev = intf
        mdev.model = udev.product or f"UVC Camera ({udev.desc.vendor:04x}:{udev.desc.product_id:04x})"
        mdev.serial = udev.desc.serial
        mdev.bus_info = udev.usb_make_path()
        mdev.hw_revision = udev.desc.bcd_device
        mdev.media_device_init()
        dev = UvcDevice(intf, mdev)
        for other in udev.interfaces:
            if other.desc.cls == USB_CLASS_VIDEO and other.desc.subclass == 0x02 and not other.driver:
                self.k.usb.claim_interface(self, other, dev)
        dev.v4l2_dev = v4l2.V4l2Device(self.k, intf, mdev, lambda: None, dev)
        caps = v4l2.V4L2_CAP_VIDEO_CAPTURE | v4l2.V4L2_CAP_STREAMING  # uvc_register_video_device()
        dev.vdev = v4l2.video_register_device(dev.v4l2_dev, mdev.model, "video", UvcVideoOps(dev), self.module, caps)
        chain = [
            Entity("Extension 3", MEDIA_ENT_F_PROC_VIDEO_PIXEL_FORMATTER, (sink(), source()), owner=dev),
            Entity("Processing 2", MEDIA_ENT_F_PROC_VIDEO_PIXEL_FORMATTER, (sink(), source()), owner=dev),
            Entity("Camera 1", MEDIA_ENT_F_CAM_SENSOR, (source(),), owner=dev),
        ]
        for entity in chain:
            dev.v4l2_dev.register_subdev(entity)
        fixed = MEDIA_LNK_FL_ENABLED | MEDIA_LNK_FL_IMMUTABLE
        assert dev.vdev.entity is not None
        targets = [dev.vdev.entity, *chain[:-1]]
        for entity, target in zip(chain, targets, strict=True):
            mdev.media_create_pad_link(entity, len(entity.pads) - 1, target, 0, fixed)
        mdev.media_device_register(self.module)
        intf.intfdata = dev
        self.devs.append(dev)

    def disconnect(self, intf: UsbInterface) -> None:
        dev = intf.intfdata
        if not isinstance(dev, UvcDevice) or intf.desc.subclass != 0x01:
            return  # uvc_disconnect() ignores the streaming interfaces it claimed
        assert dev.vdev is not None and dev.v4l2_dev is not None
        v4l2.video_unregister_device(dev.vdev)
        dev.mdev.media_device_unregister()
        dev.v4l2_dev.unregister()
        dev.v4l2_dev.put()
        dev.mdev.media_device_cleanup()
        dev.alive = False
        self.devs.remove(dev)

    def holders(self) -> list[tuple[MediaDevice, Holder]]:
        return [
            (d.mdev, Holder(self.name, self.module_name, d.intf.name, "bound", "own media device")) for d in self.devs
        ]

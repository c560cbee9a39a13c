"""snd-usb-audio (sound/usb/card.c, sound/usb/media.c): the HVR-950Q's audio side.

The driver matches audio *control* interfaces; probing one creates (or finds) the card of its
USB device and claims the audio *streaming* interfaces without probing them (an interface that
is already claimed is skipped: "skipping, already claimed").  For devices with the
``shares_media_device`` quirk (the au0828 boards) ``snd_media_device_create`` runs after every
probed interface: ``media_device_usb_allocate`` once per card, the mixer entity and ALSA
control interface, and ``media_device_register`` if nobody registered the device yet.  A
failure there is logged and the card works without the media device.  PCM entities and
interfaces appear at the first open of a PCM; ``hw_params`` asks ``enable_source`` for the
tuner (EBUSY comes back unchanged), ``hw_free`` and close give it back.

Disconnect of any probed interface shuts the card down (``snd_card_disconnect``), deletes the
media side (``snd_media_device_delete`` -> ``media_device_delete``) and frees the card when the
last probed interface is gone and its files are closed.  The USB driver is called
``snd-usb-audio``; its module, and ``KBUILD_MODNAME``, is ``snd_usb_audio``.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING, Any

from ..device import dev_str
from ..errors import KernelError
from ..files import File
from ..mc.device import MediaDevice
from ..mc.entity import Entity, Interface, sink, source
from ..mc.uapi import (
    MEDIA_ENT_F_AUDIO_CAPTURE,
    MEDIA_ENT_F_AUDIO_MIXER,
    MEDIA_INTF_T_ALSA_CONTROL,
    MEDIA_INTF_T_ALSA_PCM_CAPTURE,
    MEDIA_LNK_FL_ENABLED,
)
from ..subsys.alsa import SND_MAJOR, Pcm, PcmOps, SndCard, snd_card_new
from ..usb import UsbDevice, UsbInterface
from ..usbcore import UsbDriver
from . import Holder
from .au0828 import BOARDS

if TYPE_CHECKING:
    from ..kernel import Kernel

KBUILD_MODNAME = "snd_usb_audio"
_HVR950Q_IDS = (0x7200, 0x7210, 0x7213, 0x7217, 0x721B, 0x721E, 0x721F, 0x7260, 0x7270, 0x7280)
#: card.c's usb_audio_names[] (vendor and product names by USB id), its Hauppauge entries
USB_AUDIO_NAMES = {
    (0x0FD9, 0x0008): ("Hauppauge", "HVR-950Q"),
    **{(0x2040, pid): ("Hauppauge", "HVR-950Q") for pid in _HVR950Q_IDS},
    **{(0x2040, pid): ("Hauppauge", "HVR-950Q-MXL") for pid in (0x7201, 0x7211, 0x7281)},
    (0x2040, 0x7240): ("Hauppauge", "HVR-850"),
    (0x2040, 0x8200): ("Hauppauge", "Woodbury"),
}
#: how the longname ends, by the device's speed (sysfs, Mb/s); nothing for another speed
USB_SPEEDS = {
    "1.5": ", low speed",
    "12": ", full speed",
    "480": ", high speed",
    "5000": ", super speed",
    "10000": ", super speed plus",
    "20000": ", super speed plus",
}
USB_CLASS_AUDIO = 0x01
USB_SUBCLASS_AUDIOCONTROL = 0x01
USB_SUBCLASS_AUDIOSTREAMING = 0x02
USB_AUDIO_IFACE_UNUSED = "USB_AUDIO_IFACE_UNUSED"
MIXER_PAD_CAPTURE = 2


class SndStream:
    """One capture substream with its ``media_ctl`` (entity, interface, pipe)."""

    def __init__(self, chip: SndUsbChip, pcm: Pcm) -> None:
        self.chip = chip
        self.pcm = pcm
        self.entity: Entity | None = None
        self.intf_devnode: Interface | None = None
        self.pipe = object()
        self.pipeline_started = False


class SndUsbChip:
    """``struct snd_usb_audio``: one per USB device."""

    def __init__(self, udev: UsbDevice, card: SndCard, ctrl_intf: UsbInterface) -> None:
        self.udev = udev
        self.card = card
        self.ctrl_intf = ctrl_intf
        self.num_interfaces = 0
        self.shutdown = False
        self.streams: list[SndStream] = []
        self.media_dev: MediaDevice | None = None
        self.mixer_entity: Entity | None = None
        self.ctl_intf_devnode: Interface | None = None
        self.alive = True

    @property
    def label(self) -> str:
        return f"snd-usb-audio on {self.ctrl_intf.name}"


class SndPcmOps(PcmOps):
    """``snd_usb_pcm_open/close`` and the hw_params/hw_free ioctls; ``pcm.private`` is the stream."""

    def __init__(self, driver: SndUsbAudioDriver) -> None:
        self.driver = driver

    def open(self, pcm: Pcm, file: File) -> None:
        self.driver.snd_media_stream_init(pcm.private)

    def release(self, pcm: Pcm, file: File) -> None:
        self.driver.snd_media_stop_pipeline(pcm.private)

    def ioctl(self, pcm: Pcm, file: File, request: str) -> Any:
        stream = pcm.private
        if request == "SNDRV_PCM_IOCTL_HW_PARAMS":
            self.driver.snd_media_start_pipeline(stream)
            return 0
        if request == "SNDRV_PCM_IOCTL_HW_FREE":
            self.driver.snd_media_stop_pipeline(stream)
            return 0
        return super().ioctl(pcm, file, request)


def usb_audio_name_card(card: SndCard, udev: UsbDevice) -> None:
    """``snd_usb_audio_create()``'s names: driver ``USB-Audio``, component ``USBvvvv:pppp``,
    shortname from usb_audio_names[] or the product string, else ``USB Device 0xv:0xp``
    (``usb_audio_make_shortname``); longname "VENDOR SHORTNAME at BUS_INFO, SPEED speed", the
    vendor from the table or the manufacturer string (``usb_audio_make_longname``)."""
    d = udev.desc
    vendor, product = USB_AUDIO_NAMES.get((d.vendor, d.product_id), (d.manufacturer, ""))
    card.driver = "USB-Audio"
    card.components = f"USB{d.vendor:04x}:{d.product_id:04x}"
    card.shortname = (product or d.product or f"USB Device {d.vendor:#04x}:{d.product_id:#04x}").strip()[:31]
    longname = f"{vendor.strip()} {card.shortname}" if vendor.strip() else card.shortname
    card.longname = f"{longname} at {udev.usb_make_path()}{USB_SPEEDS.get(d.speed, '')}"[:79]


class SndUsbAudioDriver(UsbDriver):
    name = "snd-usb-audio"

    def __init__(self, kernel: Kernel, module: Any) -> None:
        super().__init__(kernel, module)
        self.chips: list[SndUsbChip] = []
        self._pcm_ops = SndPcmOps(self)

    def match(self, intf: UsbInterface) -> bool:
        return intf.desc.cls == USB_CLASS_AUDIO and intf.desc.subclass == USB_SUBCLASS_AUDIOCONTROL

    @staticmethod
    def shares_media_device(udev: UsbDevice) -> bool:
        """The AU0828_DEVICE quirk entries set ``shares_media_device = 1``."""
        return (udev.desc.vendor, udev.desc.product_id) in BOARDS

    def probe(self, intf: UsbInterface) -> None:
        udev = intf.udev
        chip = next((c for c in self.chips if c.udev is udev), None)
        if chip is not None and chip.shutdown:
            self.log.dev_err(dev_str(udev), "USB device is in the shutdown state, cannot create a card instance")
            raise KernelError(errno.EIO, "USB device is in the shutdown state", intf.name)
        if chip is None:
            card = snd_card_new(self.k, intf, self.module)
            usb_audio_name_card(card, udev)
            chip = SndUsbChip(udev, card, intf)
            self._create_streams(chip, intf)
            card.mixername = "USB Mixer"
            card.register()
            self.chips.append(chip)
        chip.num_interfaces += 1
        intf.intfdata = chip
        if self.shares_media_device(udev):
            # "don't want to fail when snd_media_device_create() fails"
            self.snd_media_device_create(chip)

    def _create_streams(self, chip: SndUsbChip, ctrl: UsbInterface) -> None:
        for iface in chip.udev.interfaces:
            if iface.desc.cls != USB_CLASS_AUDIO or iface.desc.subclass != USB_SUBCLASS_AUDIOSTREAMING:
                continue
            if iface.driver:
                claimed = f"{ctrl.desc.number}:{iface.desc.number}: skipping, already claimed"
                self.log.dev_dbg(dev_str(chip.udev), claimed)
                continue
            self.k.usb.claim_interface(self, iface, USB_AUDIO_IFACE_UNUSED)
            pcm = chip.card.add_pcm(len(chip.streams), "c", "USB Audio", self._pcm_ops)
            pcm.private = stream = SndStream(chip, pcm)
            chip.streams.append(stream)

    # -- sound/usb/media.c -----------------------------------------------------------------

    def snd_media_device_create(self, chip: SndUsbChip) -> None:
        if chip.media_dev is None:
            try:
                chip.media_dev = self.k.allocator.media_device_usb_allocate(chip.udev, KBUILD_MODNAME, self.module)
            except KernelError:
                return
        mdev = chip.media_dev
        mixer_error = 0
        try:
            self._snd_media_mixer_init(chip)
        except KernelError as exc:
            mixer_error = exc.errno or errno.ENOMEM
            self.log.dev_err(dev_str(chip.ctrl_intf), f"Couldn't create media mixer entities. Error: {-mixer_error}")
        if mdev.registered:
            return
        error = mixer_error
        if not error:
            try:
                mdev.media_device_register(self.module)
            except KernelError as exc:
                error = exc.errno or errno.ENOMEM
        if error:
            self._snd_media_mixer_delete(chip)
            self.k.allocator.media_device_delete(mdev, KBUILD_MODNAME, self.module)
            chip.media_dev = None
            self.log.dev_err(dev_str(chip.ctrl_intf), f"Couldn't register media device. Error: {-error}")

    def _snd_media_mixer_init(self, chip: SndUsbChip) -> None:
        mdev = chip.media_dev
        if mdev is None:
            raise KernelError(errno.ENODEV, "no media device")
        if chip.ctl_intf_devnode is None:
            chip.ctl_intf_devnode = mdev.media_devnode_create(
                MEDIA_INTF_T_ALSA_CONTROL, 0, SND_MAJOR, chip.card.number * 32
            )
        if chip.mixer_entity is None:
            mixer = Entity(chip.card.mixername, MEDIA_ENT_F_AUDIO_MIXER, (sink(), source(), source()), owner=chip)
            mdev.media_device_register_entity(mixer)  # fires au0828's entity_notify
            mdev.media_create_intf_link(mixer, chip.ctl_intf_devnode, MEDIA_LNK_FL_ENABLED)
            chip.mixer_entity = mixer

    def _snd_media_mixer_delete(self, chip: SndUsbChip) -> None:
        mdev = chip.media_dev
        if mdev is None:
            return
        if chip.mixer_entity is not None and mdev.registered:
            mdev.media_device_unregister_entity(chip.mixer_entity)
        chip.mixer_entity = None
        if chip.ctl_intf_devnode is not None and mdev.registered:
            mdev.media_devnode_remove(chip.ctl_intf_devnode)
        chip.ctl_intf_devnode = None

    def snd_media_stream_init(self, stream: SndStream) -> None:
        mdev = stream.chip.media_dev
        if mdev is None or stream.entity is not None:
            return
        entity = Entity(stream.pcm.name, MEDIA_ENT_F_AUDIO_CAPTURE, (sink(),), owner=stream.chip)
        mdev.media_device_register_entity(entity)
        assert stream.pcm.device.devt is not None
        major, minor = stream.pcm.device.devt
        stream.intf_devnode = mdev.media_devnode_create(MEDIA_INTF_T_ALSA_PCM_CAPTURE, 0, major, minor)
        mdev.media_create_intf_link(entity, stream.intf_devnode, MEDIA_LNK_FL_ENABLED)
        stream.entity = entity
        with mdev.graph_mutex:
            mixers = [e for e in mdev.entities.values() if e.function == MEDIA_ENT_F_AUDIO_MIXER]
        for mixer in mixers:
            mdev.media_create_pad_link(mixer, MIXER_PAD_CAPTURE, entity, 0, MEDIA_LNK_FL_ENABLED)

    def _snd_media_stream_delete(self, stream: SndStream) -> None:
        mdev = stream.chip.media_dev
        if mdev is not None and mdev.registered:
            if stream.intf_devnode is not None:
                mdev.media_devnode_remove(stream.intf_devnode)
            if stream.entity is not None:
                mdev.media_device_unregister_entity(stream.entity)
        stream.entity = stream.intf_devnode = None

    def snd_media_start_pipeline(self, stream: SndStream) -> None:
        mdev = stream.chip.media_dev
        if stream.entity is None or mdev is None:
            return
        with mdev.graph_mutex:
            if mdev.enable_source is not None:
                mdev.enable_source(stream.entity, stream.pipe)
                stream.pipeline_started = True

    def snd_media_stop_pipeline(self, stream: SndStream) -> None:
        mdev = stream.chip.media_dev
        if stream.entity is None or mdev is None or not stream.pipeline_started:
            return
        with mdev.graph_mutex:
            if mdev.disable_source is not None:
                mdev.disable_source(stream.entity)
        stream.pipeline_started = False

    def snd_media_device_delete(self, chip: SndUsbChip) -> None:
        for stream in chip.streams:
            self._snd_media_stream_delete(stream)
        self._snd_media_mixer_delete(chip)
        if chip.media_dev is not None:
            self.k.allocator.media_device_delete(chip.media_dev, KBUILD_MODNAME, self.module)
            chip.media_dev = None

    # -- disconnect ------------------------------------------------------------------------

    def disconnect(self, intf: UsbInterface) -> None:
        chip = intf.intfdata
        if not isinstance(chip, SndUsbChip):  # a claimed streaming interface
            return
        if not chip.shutdown:
            chip.shutdown = True
            chip.card.disconnect()
            self.snd_media_device_delete(chip)
        chip.num_interfaces -= 1
        if chip.num_interfaces <= 0:
            self.chips.remove(chip)
            chip.alive = False
            chip.card.free_when_closed()

    def holders(self) -> list[tuple[MediaDevice, Holder]]:
        return [
            (chip.media_dev, Holder(self.name, self.module_name, chip.ctrl_intf.name, "bound", "bound"))
            for chip in self.chips
            if chip.media_dev is not None
        ]

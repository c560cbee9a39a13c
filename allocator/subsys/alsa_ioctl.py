"""The control ioctls of ``/dev/snd/controlC<card>`` in the uapi's bytes (include/uapi/sound/
asound.h, x86_64 layout), as ``snd_ctl_ioctl()`` (sound/core/control.c) and the PCM core's
``snd_pcm_control_ioctl()`` (sound/core/pcm.c) answer them.

* once the card is disconnected every ioctl gets ENODEV (``snd_card_disconnect()`` swaps the
  file's operations for ``snd_shutdown_f_ops``);
* PVERSION: ``SNDRV_CTL_VERSION`` of Linux 6.12 (2.0.9);
* CARD_INFO: number, id, driver, shortname, longname, mixername and components, each
  ``strscpy``'d into a zeroed struct;
* PCM_NEXT_DEVICE: the next PCM device above the one given (-1 after the last);
* PCM_INFO: EINVAL for a stream other than playback/capture, ENXIO for a device or subdevice
  that does not exist, ENOENT for a device without that stream, else the substream's info
  (``snd_pcm_info()``: ids, names, class, subdevice counts, ``subdevice #N``);
* PCM_PREFER_SUBDEVICE: taken;
* anything else: ENOTTY (the element, TLV, hwdep, rawmidi and power ioctls are not modelled);
  EFAULT for a known request whose argument cannot be read or written.
"""

from __future__ import annotations

import ctypes
import errno
import struct

from ..chrdev import strscpy
from ..ioc import ioc
from ..mc.ioctl import Reply
from .alsa import SndCard

SNDRV_CTL_VERSION = (2 << 16) | (0 << 8) | 9
SNDRV_PCM_STREAM_PLAYBACK, SNDRV_PCM_STREAM_CAPTURE = 0, 1
_INT = struct.Struct("<i")


class SndCtlCardInfo(ctypes.Structure):
    """``struct snd_ctl_card_info``."""

    _fields_ = (
        ("card", ctypes.c_int),
        ("pad", ctypes.c_int),
        ("id", ctypes.c_char * 16),
        ("driver", ctypes.c_char * 16),
        ("name", ctypes.c_char * 32),
        ("longname", ctypes.c_char * 80),
        ("reserved_", ctypes.c_char * 16),
        ("mixername", ctypes.c_char * 80),
        ("components", ctypes.c_char * 128),
    )


class SndPcmInfo(ctypes.Structure):
    """``struct snd_pcm_info``."""

    _fields_ = (
        ("device", ctypes.c_uint),
        ("subdevice", ctypes.c_uint),
        ("stream", ctypes.c_int),
        ("card", ctypes.c_int),
        ("id", ctypes.c_char * 64),
        ("name", ctypes.c_char * 80),
        ("subname", ctypes.c_char * 32),
        ("dev_class", ctypes.c_int),
        ("dev_subclass", ctypes.c_int),
        ("subdevices_count", ctypes.c_uint),
        ("subdevices_avail", ctypes.c_uint),
        ("sync", ctypes.c_ubyte * 16),
        ("reserved", ctypes.c_ubyte * 64),
    )


SNDRV_CTL_IOCTL_PVERSION = ioc("r", "U", 0x00, _INT.size)
SNDRV_CTL_IOCTL_CARD_INFO = ioc("r", "U", 0x01, ctypes.sizeof(SndCtlCardInfo))
SNDRV_CTL_IOCTL_PCM_NEXT_DEVICE = ioc("r", "U", 0x30, _INT.size)
SNDRV_CTL_IOCTL_PCM_INFO = ioc("rw", "U", 0x31, ctypes.sizeof(SndPcmInfo))
SNDRV_CTL_IOCTL_PCM_PREFER_SUBDEVICE = ioc("w", "U", 0x32, _INT.size)
REQUESTS = {
    SNDRV_CTL_IOCTL_PVERSION: "SNDRV_CTL_IOCTL_PVERSION",
    SNDRV_CTL_IOCTL_CARD_INFO: "SNDRV_CTL_IOCTL_CARD_INFO",
    SNDRV_CTL_IOCTL_PCM_NEXT_DEVICE: "SNDRV_CTL_IOCTL_PCM_NEXT_DEVICE",
    SNDRV_CTL_IOCTL_PCM_INFO: "SNDRV_CTL_IOCTL_PCM_INFO",
    SNDRV_CTL_IOCTL_PCM_PREFER_SUBDEVICE: "SNDRV_CTL_IOCTL_PCM_PREFER_SUBDEVICE",
}


def snd_ctl_ioctl(card: SndCard, request: int, arg: bytes | None) -> Reply:
    """One ioctl on an open control node of ``card``; ``arg`` the argument's bytes (None:
    they could not be read, so any request the card knows faults)."""
    if card.disconnected:
        return Reply(errno.ENODEV, None)
    if request not in REQUESTS:
        return Reply(errno.ENOTTY, None)
    if arg is None:
        return Reply(errno.EFAULT, None)
    if request == SNDRV_CTL_IOCTL_PVERSION:
        return Reply(0, _INT.pack(SNDRV_CTL_VERSION))
    if request == SNDRV_CTL_IOCTL_CARD_INFO:
        return Reply(0, pack_card_info(card))
    if request == SNDRV_CTL_IOCTL_PCM_NEXT_DEVICE:
        return Reply(0, _INT.pack(card.pcm_next(_INT.unpack_from(arg)[0])))
    if request == SNDRV_CTL_IOCTL_PCM_INFO:
        return _pcm_info(card, arg)
    if request == SNDRV_CTL_IOCTL_PCM_PREFER_SUBDEVICE:
        return Reply(0, None)  # the control file's preferred subdevice: nothing to copy back
    return Reply(errno.ENOTTY, None)


def pack_card_info(card: SndCard) -> bytes:
    """``snd_ctl_card_info()``."""
    info = SndCtlCardInfo()
    info.card = card.number
    info.id = strscpy(card.id, 16)
    info.driver = strscpy(card.driver, 16)
    info.name = strscpy(card.shortname, 32)
    info.longname = strscpy(card.longname, 80)
    info.mixername = strscpy(card.mixername, 80)
    info.components = strscpy(card.components, 128)
    return bytes(info)


def _pcm_info(card: SndCard, arg: bytes) -> Reply:
    device, subdevice, stream = struct.unpack_from("<IIi", arg)
    if stream not in (SNDRV_PCM_STREAM_PLAYBACK, SNDRV_PCM_STREAM_CAPTURE):
        return Reply(errno.EINVAL, None)
    exists, pcm = card.pcm_stream(device, "c" if stream == SNDRV_PCM_STREAM_CAPTURE else "p")
    if not exists:
        return Reply(errno.ENXIO, None)
    if pcm is None:
        return Reply(errno.ENOENT, None)  # the device has no substream in that direction
    if subdevice >= pcm.substreams:
        return Reply(errno.ENXIO, None)
    info = SndPcmInfo()
    info.card, info.device, info.stream, info.subdevice = card.number, pcm.number, stream, subdevice
    info.id = strscpy(pcm.id, 64)
    info.name = strscpy(pcm.name, 80)
    info.subname = strscpy(f"subdevice #{subdevice}", 32)
    info.dev_class, info.dev_subclass = pcm.dev_class, pcm.dev_subclass
    info.subdevices_count = pcm.substreams
    info.subdevices_avail = pcm.substreams - min(pcm.opened, pcm.substreams)
    return Reply(0, bytes(info))


def _check_layouts() -> None:
    expected = {
        SNDRV_CTL_IOCTL_PVERSION: 0x80045500,
        SNDRV_CTL_IOCTL_CARD_INFO: 0x81785501,
        SNDRV_CTL_IOCTL_PCM_NEXT_DEVICE: 0x80045530,
        SNDRV_CTL_IOCTL_PCM_INFO: 0xC1205531,
        SNDRV_CTL_IOCTL_PCM_PREFER_SUBDEVICE: 0x40045532,
    }
    if any(got != want for got, want in expected.items()) or ctypes.sizeof(SndCtlCardInfo) != 376:
        raise ImportError("the control ioctls' layouts differ from asound.h's")


_check_layouts()

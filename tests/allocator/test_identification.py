"""The identification ioctls of the video/VBI nodes, the ALSA control nodes and the DVB
frontend, in the uapi's bytes, as ``vfs_ioctl`` hands them to the rig: VIDIOC_QUERYCAP,
SNDRV_CTL_IOCTL_{PVERSION,CARD_INFO,PCM_NEXT_DEVICE,PCM_INFO}, FE_GET_INFO, FE_GET_PROPERTY;
every other request ENOTTY; ENODEV once the device is gone; EFAULT where the copies fault."""

from __future__ import annotations

import dataclasses
import errno
import struct

import pytest

from allocator import CATALOG, Kernel
from allocator.chrdev import vfs_ioctl
from allocator.mc.ioctl import Reply
from allocator.subsys import alsa_ioctl, dvb_ioctl, v4l2_uapi
from allocator.subsys.alsa import snd_card_set_id
from allocator.subsys.v4l2 import (
    V4L2_CAP_AUDIO,
    V4L2_CAP_DEVICE_CAPS,
    V4L2_CAP_EXT_PIX_FORMAT,
    V4L2_CAP_META_CAPTURE,
    V4L2_CAP_READWRITE,
    V4L2_CAP_STREAMING,
    V4L2_CAP_TUNER,
    V4L2_CAP_VBI_CAPTURE,
    V4L2_CAP_VIDEO_CAPTURE,
)

from ..conftest import make_kernel

ANALOG = V4L2_CAP_AUDIO | V4L2_CAP_READWRITE | V4L2_CAP_STREAMING | V4L2_CAP_TUNER
VERSION_6_12 = (6 << 16) | (12 << 8)


class Memory:
    """The caller's memory behind the argument's user pointers: ``pointer -> bytes``."""

    def __init__(self, blocks: dict[int, bytes] | None = None) -> None:
        self.blocks = blocks or {}

    def copy_from_user(self, pointer: int, size: int) -> bytes | None:
        data = self.blocks.get(pointer)
        return data[:size] if data is not None and len(data) >= size else None


def call(k: Kernel, fd: int, request: int, arg: bytes | None, memory: Memory | None = None) -> Reply:
    return vfs_ioctl(k.files, fd, request, arg, memory or Memory())


@pytest.fixture
def machine() -> Kernel:
    """The default world: an HVR-950Q on 1-1, a C270 on 1-2."""
    return make_kernel("au0828", "snd_usb_audio", "uvcvideo", plug=("hvr950q", "c270"))


def querycap(k: Kernel, node: str) -> v4l2_uapi.V4l2Capability:
    reply = call(k, k.open(node), v4l2_uapi.VIDIOC_QUERYCAP, bytes(104))
    assert reply.errno == 0 and reply.arg is not None
    return v4l2_uapi.V4l2Capability.from_buffer_copy(reply.arg)


def test_querycap_of_the_au0828_nodes_names_the_board(machine: Kernel) -> None:
    video, vbi = querycap(machine, "/dev/video0"), querycap(machine, "/dev/vbi0")
    for cap in (video, vbi):
        assert (cap.driver, cap.card, cap.bus_info) == (b"au0828", b"Hauppauge HVR950Q", b"usb-0000:00:14.0-1")
        assert cap.version == VERSION_6_12
        both = ANALOG | V4L2_CAP_VIDEO_CAPTURE | V4L2_CAP_VBI_CAPTURE | V4L2_CAP_DEVICE_CAPS
        assert cap.capabilities == both | V4L2_CAP_EXT_PIX_FORMAT
    assert video.device_caps == ANALOG | V4L2_CAP_VIDEO_CAPTURE | V4L2_CAP_EXT_PIX_FORMAT
    assert vbi.device_caps == ANALOG | V4L2_CAP_VBI_CAPTURE | V4L2_CAP_EXT_PIX_FORMAT
    assert machine.check() == []  # no WARN from v4l_querycap


def test_querycap_of_a_uvc_camera_names_the_product_or_its_ids(
    machine: Kernel, monkeypatch: pytest.MonkeyPatch
) -> None:
    cap = querycap(machine, "/dev/video1")  # a C270 has no product string: named by its ids
    assert (cap.driver, cap.card, cap.bus_info) == (b"uvcvideo", b"UVC Camera (046d:0825)", b"usb-0000:00:14.0-2")
    assert cap.device_caps == V4L2_CAP_VIDEO_CAPTURE | V4L2_CAP_STREAMING | V4L2_CAP_EXT_PIX_FORMAT
    chain = V4L2_CAP_VIDEO_CAPTURE | V4L2_CAP_META_CAPTURE | V4L2_CAP_STREAMING
    assert cap.capabilities == chain | V4L2_CAP_DEVICE_CAPS | V4L2_CAP_EXT_PIX_FORMAT
    # a camera with a product string is named by it
    monkeypatch.setitem(CATALOG, "c270-named", dataclasses.replace(CATALOG["c270"], product="Webcam C270"))
    machine.plug("c270-named")
    assert querycap(machine, "/dev/video2").card == b"Webcam C270"


def test_video_nodes_answer_enotty_then_enodev_once_unregistered(machine: Kernel) -> None:
    fd = machine.open("/dev/video0")
    assert call(machine, fd, 0xC0445624, bytes(68)).errno == errno.ENOTTY  # VIDIOC_QUERYCTRL
    assert call(machine, fd, v4l2_uapi.VIDIOC_QUERYCAP, None).errno == 0  # _IOR: nothing copied in
    assert call(machine, fd, 0xC0445624, None).errno == errno.EFAULT  # _IOWR: video_get_user()
    machine.unbind("au0828", "1-1:1.0")  # the open file keeps the video device
    assert call(machine, fd, v4l2_uapi.VIDIOC_QUERYCAP, bytes(104)).errno == errno.ENODEV
    machine.close(fd)
    assert machine.check() == []


def card_info(k: Kernel, fd: int) -> alsa_ioctl.SndCtlCardInfo:
    reply = call(k, fd, alsa_ioctl.SNDRV_CTL_IOCTL_CARD_INFO, bytes(376))
    assert reply.errno == 0 and reply.arg is not None
    return alsa_ioctl.SndCtlCardInfo.from_buffer_copy(reply.arg)


def test_card_info_of_the_hvr950q_is_usb_audio_s(machine: Kernel) -> None:
    fd = machine.open("/dev/snd/controlC0")
    info = card_info(machine, fd)
    assert (info.card, info.id, info.driver, info.name) == (0, b"HVR950Q", b"USB-Audio", b"HVR-950Q")
    assert info.longname == b"Hauppauge HVR-950Q at usb-0000:00:14.0-1, high speed"
    assert (info.mixername, info.components) == (b"USB Mixer", b"USB2040:7200")
    version = call(machine, fd, alsa_ioctl.SNDRV_CTL_IOCTL_PVERSION, bytes(4))
    assert struct.unpack("<i", version.arg or b"") == (0x00020009,)
    assert machine.devices.nodes["/dev/snd/controlC0"].parent is not None
    assert machine.devices.nodes["/dev/snd/controlC0"].parent.attrs["id"] == "HVR950Q"  # /sys/class/sound/card0/id


def test_card_ids_follow_snd_card_set_id(machine: Kernel, monkeypatch: pytest.MonkeyPatch) -> None:
    # a C270 has no product string: "USB Device 0x46d:0x825", the id from its last word
    unnamed = card_info(machine, machine.open("/dev/snd/controlC1"))
    assert (unnamed.id, unnamed.name) == (b"U0x46d0x825", b"USB Device 0x46d:0x825")
    assert unnamed.longname == b"USB Device 0x46d:0x825 at usb-0000:00:14.0-2, high speed"
    monkeypatch.setitem(CATALOG, "c270-named", dataclasses.replace(CATALOG["c270"], product="Webcam C270"))
    machine.plug("c270-named")
    assert card_info(machine, machine.open("/dev/snd/controlC2")).id == b"C270"
    machine.plug("hvr950q")  # a second stick: the id is made unique
    assert card_info(machine, machine.open("/dev/snd/controlC3")).id == b"HVR950Q_1"
    assert snd_card_set_id("card", "card", []) == "Default"
    assert snd_card_set_id("pcm", "pcm", []) == "pcm_1"  # a reserved word
    assert snd_card_set_id("x", "-1234567890123456789", []) == "x12345678901234"  # 15 at most
    assert snd_card_set_id("1x", "1x", []) == "D1x"  # no letter to put before a digit


def test_pcm_devices_are_enumerated_and_described(machine: Kernel) -> None:
    fd = machine.open("/dev/snd/controlC0")

    def next_device(after: int) -> int:
        reply = call(machine, fd, alsa_ioctl.SNDRV_CTL_IOCTL_PCM_NEXT_DEVICE, struct.pack("<i", after))
        return struct.unpack("<i", reply.arg or b"")[0]

    def pcm_info(device: int, stream: int, subdevice: int = 0) -> Reply:
        arg = struct.pack("<IIi", device, subdevice, stream) + bytes(276)
        return call(machine, fd, alsa_ioctl.SNDRV_CTL_IOCTL_PCM_INFO, arg)

    assert (next_device(-1), next_device(0)) == (0, -1)
    reply = pcm_info(0, alsa_ioctl.SNDRV_PCM_STREAM_CAPTURE)
    info = alsa_ioctl.SndPcmInfo.from_buffer_copy(reply.arg or b"")
    assert (info.card, info.device, info.stream, info.id, info.name) == (0, 0, 1, b"USB Audio", b"USB Audio")
    assert (info.subname, info.subdevices_count, info.subdevices_avail) == (b"subdevice #0", 1, 1)
    assert pcm_info(0, alsa_ioctl.SNDRV_PCM_STREAM_PLAYBACK).errno == errno.ENOENT
    assert pcm_info(1, alsa_ioctl.SNDRV_PCM_STREAM_CAPTURE).errno == errno.ENXIO
    assert pcm_info(0, alsa_ioctl.SNDRV_PCM_STREAM_CAPTURE, subdevice=1).errno == errno.ENXIO
    assert pcm_info(0, 2).errno == errno.EINVAL
    pcm = machine.open("/dev/snd/pcmC0D0c")  # the substream in use: none available
    info = alsa_ioctl.SndPcmInfo.from_buffer_copy(pcm_info(0, alsa_ioctl.SNDRV_PCM_STREAM_CAPTURE).arg or b"")
    assert info.subdevices_avail == 0
    machine.close(pcm)


def test_control_nodes_answer_enotty_efault_and_enodev_once_disconnected(machine: Kernel) -> None:
    fd = machine.open("/dev/snd/controlC0")
    assert call(machine, fd, 0xC0505510, bytes(80)).errno == errno.ENOTTY  # ELEM_LIST: not modelled
    assert call(machine, fd, 0xC0505510, None).errno == errno.ENOTTY  # unknown: memory untouched
    assert call(machine, fd, alsa_ioctl.SNDRV_CTL_IOCTL_PCM_NEXT_DEVICE, None).errno == errno.EFAULT
    machine.unplug("1-1")
    assert call(machine, fd, alsa_ioctl.SNDRV_CTL_IOCTL_CARD_INFO, bytes(376)).errno == errno.ENODEV
    machine.close(fd)
    assert machine.check() == []


def test_fe_get_info_is_the_au8522_with_the_xc5000s_range(machine: Kernel) -> None:
    fd = machine.open("/dev/dvb/adapter0/frontend0")
    reply = call(machine, fd, dvb_ioctl.FE_GET_INFO, bytes(168))
    info = dvb_ioctl.DvbFrontendInfo.from_buffer_copy(reply.arg or b"")
    assert (reply.errno, info.name, info.type) == (0, b"Auvitek AU8522 QAM/8VSB Frontend", 3)  # FE_ATSC
    assert (info.frequency_min, info.frequency_max, info.frequency_stepsize) == (54_000_000, 858_000_000, 62500)
    assert (info.frequency_tolerance, info.symbol_rate_min, info.symbol_rate_max, info.notifier_delay) == (0, 0, 0, 0)
    assert info.caps == 0x1 | 0x2000 | 0x8000 | 0x200000  # INVERSION_AUTO, QAM_64, QAM_256, 8VSB
    machine.close(fd)


def properties(*cmds: int) -> bytes:
    return b"".join(dvb_ioctl.DTV_PROPERTY.pack(cmd, b"\xaa" * 56, 0) for cmd in cmds)


def test_fe_get_property_reports_the_api_version_and_delivery_systems(machine: Kernel) -> None:
    fd = machine.open("/dev/dvb/adapter0/frontend0")
    cmds = (dvb_ioctl.DTV_API_VERSION, dvb_ioctl.DTV_DELIVERY_SYSTEM, dvb_ioctl.DTV_ENUM_DELSYS)
    arg = dvb_ioctl.DTV_PROPERTIES.pack(len(cmds), 0x7000)
    reply = call(machine, fd, dvb_ioctl.FE_GET_PROPERTY, arg, Memory({0x7000: properties(*cmds)}))
    assert (reply.errno, reply.arg) == (0, arg)
    [(pointer, written)] = reply.writes
    assert pointer == 0x7000 and len(written) == 3 * 76
    unions = [dvb_ioctl.DTV_PROPERTY.unpack_from(written, i * 76)[1] for i in range(3)]
    assert struct.unpack_from("<I", unions[0]) == (0x050C,)  # DVB API 5.12
    assert struct.unpack_from("<I", unions[1]) == (11,)  # SYS_ATSC, the first of the frontend's
    assert unions[1][4:] == b"\xaa" * 52  # only u.data written
    assert unions[2][:2] + unions[2][32:36] == bytes((11, 2)) + struct.pack("<I", 2)  # ATSC, DVB-C annex B
    assert unions[2][2:32] == b"\xaa" * 30
    machine.close(fd)


def test_fe_get_property_refuses_as_the_kernel_does(machine: Kernel) -> None:
    fd = machine.open("/dev/dvb/adapter0/frontend0")
    memory = Memory({0x7000: properties(dvb_ioctl.DTV_API_VERSION) * 65})
    for num in (0, 65):
        arg = dvb_ioctl.DTV_PROPERTIES.pack(num, 0x7000)
        assert call(machine, fd, dvb_ioctl.FE_GET_PROPERTY, arg, memory).errno == errno.EINVAL
    short = dvb_ioctl.DTV_PROPERTIES.pack(2, 0x8000)  # memdup_user() of an unreadable array
    assert call(machine, fd, dvb_ioctl.FE_GET_PROPERTY, short, Memory({0x8000: bytes(76)})).errno == errno.EFAULT
    unknown = Memory({0x7000: properties(dvb_ioctl.DTV_API_VERSION, 3)})  # DTV_FREQUENCY: not kept
    reply = call(machine, fd, dvb_ioctl.FE_GET_PROPERTY, dvb_ioctl.DTV_PROPERTIES.pack(2, 0x7000), unknown)
    assert (reply.errno, reply.writes) == (errno.EINVAL, ())
    assert call(machine, fd, dvb_ioctl.FE_GET_INFO, None).errno == errno.EFAULT  # dvb_usercopy()
    assert call(machine, fd, 0x40106F52, bytes(16)).errno == errno.ENOTTY  # FE_SET_PROPERTY
    machine.unplug("1-1")
    assert call(machine, fd, dvb_ioctl.FE_GET_INFO, bytes(168)).errno == errno.ENODEV
    machine.close(fd)


def test_nodes_without_uapi_ioctls_and_closed_fds(machine: Kernel) -> None:
    pcm, media = machine.open("/dev/snd/pcmC0D0c"), machine.open("/dev/media0")
    for fd in (pcm, media):
        assert call(machine, fd, v4l2_uapi.VIDIOC_QUERYCAP, bytes(104)).errno == errno.ENOTTY
    machine.close(pcm)
    assert call(machine, pcm, v4l2_uapi.VIDIOC_QUERYCAP, bytes(104)).errno == errno.EBADF
    machine.close(media)


def test_the_simulation_alone_loads_no_ctypes() -> None:
    import subprocess
    import sys

    code = "import sys, allocator; k = allocator.Kernel(); print('ctypes' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"

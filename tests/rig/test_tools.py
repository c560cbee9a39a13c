"""The everyday tools list the simulated devices as they list the real ones: ``v4l2-ctl
--list-devices`` (VIDIOC_QUERYCAP on the video/VBI nodes, MEDIA_IOC_DEVICE_INFO on the media
nodes), ``arecord -l`` (the ALSA control ioctls) and ``dvb-fe-tool`` (FE_GET_INFO and
FE_GET_PROPERTY), on the default world (an HVR-950Q on 1-1, a C270 on 1-2) and after the
HVR-950Q's drivers go.  A C270 has no product string: the tools name it by its ids.

One thing differs from a real machine: the C270's UVC metadata node (/dev/video2 on a real
machine) is not modelled."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from .conftest import control

V4L2_CTL = """\
Hauppauge HVR950Q (usb-0000:00:14.0-1):
\t/dev/video0
\t/dev/vbi0
\t/dev/media0

UVC Camera (046d:0825) (usb-0000:00:14.0-2):
\t/dev/video1
\t/dev/media1

"""
ARECORD_HVR950Q = """\
card 0: HVR950Q [HVR-950Q], device 0: USB Audio [USB Audio]
  Subdevices: 1/1
  Subdevice #0: subdevice #0
"""
ARECORD_C270 = """\
card 1: U0x46d0x825 [USB Device 0x46d:0x825], device 0: USB Audio [USB Audio]
  Subdevices: 1/1
  Subdevice #0: subdevice #0
"""
DVB_FE_TOOL = "".join(
    line + "\n"
    for line in (
        "Device Auvitek AU8522 QAM/8VSB Frontend (/dev/dvb/adapter0/frontend0) capabilities:",
        "     CAN_8VSB",
        "     CAN_INVERSION_AUTO",
        "     CAN_QAM_64",
        "     CAN_QAM_256",
        "DVB API Version 5.12, Current v5 delivery system: ATSC",
        "Supported delivery systems: ",  # libdvbv5 ends these two headings with a space
        "    [ATSC]",
        "     DVBC/ANNEX_B",
        "Frequency range for the current standard: ",
        "From:            54.0 MHz",
        "To:               858 MHz",
        "Step:            62.5 kHz",
    )
)


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60)


def refcnt(module: str) -> int:
    return int(Path(f"/sys/module/{module}/refcnt").read_text())


def test_v4l2_ctl_lists_each_card_with_its_nodes() -> None:
    done = run("v4l2-ctl", "--list-devices")
    assert (done.returncode, done.stderr, done.stdout) == (0, "", V4L2_CTL)


def test_v4l2_ctl_info_reads_querycap() -> None:
    done = run("v4l2-ctl", "-d", "/dev/vbi0", "--info")
    assert done.returncode == 0, done.stderr
    for line in (
        "\tDriver name      : au0828",
        "\tCard type        : Hauppauge HVR950Q",
        "\tBus info         : usb-0000:00:14.0-1",
        "\tDriver version   : 6.12.0",
        "\tCapabilities     : 0x85230011",
        "\tDevice Caps      : 0x05230010",
        "\t\tVBI Capture",
    ):
        assert line in done.stdout.splitlines(), done.stdout


def test_arecord_lists_the_tuners_audio_and_the_webcams_microphone() -> None:
    done = run("arecord", "-l")
    heading = "**** List of CAPTURE Hardware Devices ****\n"
    assert (done.returncode, done.stderr, done.stdout) == (0, "", heading + ARECORD_HVR950Q + ARECORD_C270)
    playback = run("aplay", "-l")  # no playback stream anywhere: the capture-only cards are skipped
    assert playback.stdout == "**** List of PLAYBACK Hardware Devices ****\n"


def test_dvb_fe_tool_names_the_frontend() -> None:
    done = run("dvb-fe-tool")
    assert (done.returncode, done.stdout) == (0, DVB_FE_TOOL), done.stderr


def test_without_the_hvr950qs_drivers_the_tools_list_what_is_left() -> None:
    assert control("unbind au0828 1-1:1.0") == "ok"
    video = run("v4l2-ctl", "--list-devices")  # the default /dev/video0 is gone, as v4l2-ctl says
    assert video.returncode == 1 and video.stderr == "Cannot open device /dev/video0, exiting.\n"
    media_only = "WinTV HVR-950Q (usb-0000:00:14.0-1):\n\t/dev/media0\n\n"  # snd-usb-audio keeps it
    assert video.stdout == media_only + V4L2_CTL[V4L2_CTL.index("UVC Camera") :]
    frontend = run("dvb-fe-tool")
    assert (frontend.returncode, frontend.stdout) == (255, "WARNING  device dvb0.frontend0 not found\n")
    assert control("unbind snd-usb-audio 1-1:1.1") == "ok"
    done = run("arecord", "-l")
    assert done.stdout == "**** List of CAPTURE Hardware Devices ****\n" + ARECORD_C270


def test_an_open_node_pins_its_driver_and_answers_enodev_once_unbound() -> None:
    code = """
import errno, fcntl, os, sys
from allocator.subsys.v4l2_uapi import VIDIOC_QUERYCAP
fd = os.open("/dev/video0", os.O_RDWR)
fcntl.ioctl(fd, VIDIOC_QUERYCAP, bytearray(104))  # answered on the file the open made
sys.stdout.write(open("/sys/module/au0828/refcnt").read())
sys.stdout.flush()
sys.stdin.readline()  # the driver is unbound meanwhile
try:
    fcntl.ioctl(fd, VIDIOC_QUERYCAP, bytearray(104))
except OSError as exc:
    print(errno.errorcode[exc.errno])
"""
    before = refcnt("au0828")
    client = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert client.stdin is not None and client.stdout is not None
    assert int(client.stdout.readline()) == before + 1  # the open pins au0828, as chrdev_open does
    assert control("unbind au0828 1-1:1.0") == "ok"
    out, _ = client.communicate("\n", timeout=60)
    assert out.strip() == "ENODEV"
    assert refcnt("au0828") == before  # released at exit


def test_bad_pointers_get_efault_on_the_new_nodes() -> None:
    code = """
import ctypes, errno, mmap, os, struct
from allocator.subsys import alsa_ioctl, dvb_ioctl, v4l2_uapi
libc = ctypes.CDLL(None, use_errno=True)
libc.ioctl.argtypes = (ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p)

def call(node, request, arg):
    fd = os.open(node, os.O_RDWR)
    ret = libc.ioctl(fd, request, arg)
    os.close(fd)
    return errno.errorcode.get(ctypes.get_errno(), "0") if ret else "ok"

print(call("/dev/video0", v4l2_uapi.VIDIOC_QUERYCAP, None))
print(call("/dev/snd/controlC0", alsa_ioctl.SNDRV_CTL_IOCTL_CARD_INFO, 16))
props = ctypes.create_string_buffer(struct.pack("<I4xQ", 2, 0xDEAD0000))  # unmapped array
print(call("/dev/dvb/adapter0/frontend0", dvb_ioctl.FE_GET_PROPERTY, ctypes.addressof(props)))
page = mmap.mmap(-1, 2 * mmap.PAGESIZE)  # one property at the end of a page, none after it
base = ctypes.addressof(ctypes.c_char.from_buffer(page))
libc.mprotect(ctypes.c_void_p(base + mmap.PAGESIZE), mmap.PAGESIZE, 0)
one = base + mmap.PAGESIZE - 76
struct.pack_into("<I", page, mmap.PAGESIZE - 76, dvb_ioctl.DTV_API_VERSION)
struct.pack_into("<I4xQ", props, 0, 2, one)
print(call("/dev/dvb/adapter0/frontend0", dvb_ioctl.FE_GET_PROPERTY, ctypes.addressof(props)))
struct.pack_into("<I4xQ", props, 0, 1, one)
print(call("/dev/dvb/adapter0/frontend0", dvb_ioctl.FE_GET_PROPERTY, ctypes.addressof(props)))
print(struct.unpack_from("<I", page, mmap.PAGESIZE - 60)[0] == 0x050C)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.split() == ["EFAULT", "EFAULT", "EFAULT", "EFAULT", "ok", "True"], done.stderr

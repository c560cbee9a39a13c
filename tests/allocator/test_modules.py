"""modprobe/rmmod as kmod reports them, and what pins a module."""

from __future__ import annotations

import errno

import pytest

from allocator import Kernel, KernelError

from ..conftest import make_kernel


def test_modprobe_loads_dependencies_and_is_idempotent() -> None:
    k = make_kernel()
    k.modprobe("au0828")
    k.modprobe("au0828")
    assert sorted(k.modules) == ["au0828", "dvb_core", "mc", "videodev"]
    assert k.modules["mc"].refcnt == 3 and k.modules["au0828"].refcnt == 0
    assert [e.text for e in k.events.history if e.kind == "module"] == [
        "load mc",
        "load videodev",
        "load dvb_core",
        "load au0828",
    ]
    with pytest.raises(KernelError) as err:
        k.modprobe("nosuch")
    assert err.value.errno == errno.ENOENT
    assert err.value.strerror == "modprobe: FATAL: Module nosuch not found in directory /lib/modules/6.12.0"


def test_rmmod_messages() -> None:
    k = make_kernel("au0828")
    with pytest.raises(KernelError, match=r"^rmmod: ERROR: Module snd is not currently loaded \(ENOENT\)$"):
        k.rmmod("snd")
    with pytest.raises(KernelError, match="is in use by: videodev dvb_core au0828"):
        k.rmmod("mc")
    k.rmmod("au0828")
    k.rmmod("dvb_core")
    k.rmmod("videodev")
    k.rmmod("mc")
    assert k.modules == {}


def test_open_files_pin_their_modules(hvr: Kernel) -> None:
    fds = [hvr.open(p) for p in ("/dev/snd/controlC0", "/dev/dvb/adapter0/demux0")]
    assert hvr.modules["snd_usb_audio"].refcnt == 1 and hvr.modules["snd"].refcnt == 2
    assert hvr.modules["dvb_core"].refcnt == 2  # au0828 uses it, and the open demux
    with pytest.raises(KernelError, match="Module snd_usb_audio is in use"):
        hvr.rmmod("snd_usb_audio")
    assert hvr.check() == []
    for fd in fds:
        hvr.close(fd)
    hvr.rmmod("snd_usb_audio")
    assert hvr.check() == []


def test_close_errors(hvr: Kernel) -> None:
    with pytest.raises(KernelError) as err:
        hvr.close(99)
    assert err.value.errno == errno.EBADF
    with pytest.raises(KernelError):
        hvr.close("/dev/video0")  # not open
    with pytest.raises(KernelError) as err:
        hvr.open("/dev/nosuch")
    assert err.value.errno == errno.ENOENT


def test_unknown_builtin_is_refused() -> None:
    with pytest.raises(ValueError):
        Kernel(builtin=("nosuch",))

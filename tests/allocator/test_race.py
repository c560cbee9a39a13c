"""The window mainline's media_device_delete() leaves open, forced open, and its fix."""

from __future__ import annotations

import threading
import time

import pytest

from allocator import Kernel
from allocator.mc_dev_allocator import MediaDeviceInstance

from ..conftest import make_kernel


def _race(variant: str) -> tuple[Kernel, object]:
    """au0828 alone holds the device; while its last put is between kref_put and the
    release's lock, snd-usb-audio's allocate runs on another thread."""
    k = make_kernel("au0828", "snd_usb_audio", plug=("hvr950q",), variant=variant)
    udev = k.usb.find_device("1-1")
    k.unbind("snd-usb-audio", "1-1:1.1")
    lock = k.allocator.count_waiters()
    result: dict[str, object] = {}

    def racer() -> None:
        result["mdev"] = k.allocator.media_device_usb_allocate(udev, "snd_usb_audio", k.module("snd_usb_audio"))

    def in_the_window(inst: MediaDeviceInstance) -> None:
        thread = threading.Thread(target=racer)
        thread.start()
        deadline = time.monotonic() + 10
        # go on once the racer is done (mainline) or parked on media_device_lock (fixed)
        while thread.is_alive() and not lock.waiters:
            assert time.monotonic() < deadline, "racer neither finished nor blocked"
            time.sleep(0.0005)
        result["thread"] = thread
        result["done_in_window"] = not thread.is_alive()

    k.allocator.set_hook("release:before_lock", in_the_window)
    k.unbind("au0828", "1-1:1.0")
    k.allocator.set_hook("release:before_lock", None)
    result["thread"].join(10)  # type: ignore[attr-defined]
    return k, result


def test_mainline_hands_out_a_device_being_freed() -> None:
    k, result = _race("mainline")
    assert result["done_in_window"] is True
    mdev = result["mdev"]
    assert mdev.instance.released  # type: ignore[attr-defined]
    assert mdev.instance.refcount.saturated  # type: ignore[attr-defined]
    warns = [v for v in k.check() if v.kind == "warn"]
    assert [w.message for w in warns] == ["refcount_t: addition on 0; use-after-free."]
    assert any(e.text == "WARNING: refcount_t: addition on 0; use-after-free." for e in k.events.history)


def test_fixed_variant_closes_the_window() -> None:
    k, result = _race("fixed")
    assert result["done_in_window"] is False  # the racer had to wait for the release
    mdev = result["mdev"]
    inst = mdev.instance  # type: ignore[attr-defined]
    assert not inst.released and inst.refcount.refcount == 1
    assert inst.owner == "snd_usb_audio"  # a fresh instance, initialised by the racer
    assert k.anomalies == []
    k.allocator.media_device_delete(mdev, "snd_usb_audio", k.module("snd_usb_audio"))  # type: ignore[arg-type]
    assert k.allocator.instances() == [] and k.check() == []


@pytest.mark.parametrize("variant", ["mainline", "fixed"])
def test_same_thread_delete_then_allocate_is_clean(variant: str) -> None:
    k = make_kernel("au0828", "snd_usb_audio", plug=("hvr950q",), variant=variant)
    for _ in range(3):
        k.unbind("au0828", "1-1:1.0")
        k.unbind("snd-usb-audio", "1-1:1.1")
        k.bind("snd-usb-audio", "1-1:1.1")
        k.bind("au0828", "1-1:1.0")
    assert k.check() == []


def test_unknown_variant_and_hook_are_refused() -> None:
    with pytest.raises(ValueError):
        Kernel(variant="nope")
    with pytest.raises(ValueError):
        Kernel().allocator.set_hook("nowhere", lambda inst: None)

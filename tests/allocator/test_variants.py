"""The seed designs as variants (issue #13): each design's distinguishing step, the selftest
sequence on every design with its verdict, and what Sakari Ailus's predicted problem does in
each."""

from __future__ import annotations

import errno
import re
from collections import Counter

import pytest

from allocator import Kernel, KernelError
from allocator.events import Event
from allocator.graph_refs import StaleReference, stale_graph_references
from allocator.mc.uapi import MEDIA_ENT_F_ATV_DECODER, MEDIA_ENT_F_AUDIO_MIXER
from allocator.mc_dev_allocator import VARIANTS, V4MediaDeviceInstance

from ..conftest import make_kernel, media_nodes
from .test_race import _race

DESIGNS = ["v3", "v4", "v10", "mainline", "fixed"]
MEDIA, AUDIO = "au0828", "snd-usb-audio"
MEDIA_INTF, AUDIO_INTF = "1-1:1.0", "1-1:1.1"
LOCKDEP = re.compile(
    r"^CPU: 0 PID: \d+ at kernel/module\.c:"
    r"(262 module_assert_mutex\+0x20/0x30|272 module_assert_mutex_or_preempt\+0x29/0x30)$"
)


def recorded(variant: str, *drivers: str, plug: tuple[str, ...] = ()) -> tuple[Kernel, list[Event]]:
    """A kernel whose every event is kept (its own history is bounded), then loaded/plugged."""
    k = make_kernel(variant=variant)
    events: list[Event] = []
    k.subscribe(events.append)
    for name in drivers:
        k.modprobe(name)
    for device in plug:
        k.plug(device)
    return k, events


def printed_reports(events: list[Event]) -> list[list[str]]:
    """Each WARN or oops as the log has it, from its headline to its end marker."""
    blocks: list[list[str]] = []
    current: list[str] | None = None
    for e in events:
        if e.kind != "trace":
            continue
        if e.text.startswith(("WARNING: CPU", "BUG: unable to handle")):
            current = [e.text]
        elif current is not None:
            current.append(e.text)
            if e.text.startswith("---[ end trace"):
                blocks.append(current)
                current = None
    return blocks


def lockdep_warns(k: Kernel) -> list[str]:
    return [v.message for v in k.check() if v.kind == "warn" and LOCKDEP.match(v.message)]


def test_every_design_is_a_variant_the_kernel_runs() -> None:
    assert list(VARIANTS) == DESIGNS
    for variant in DESIGNS:
        k = Kernel(variant=variant)
        assert k.variant == variant
        k.allocator.set_hook("release:before_lock", lambda inst: None)


# -- v4: find_module() without module_mutex --------------------------------------------------

SYSCALL = [" do_syscall_64+0x4b/0x180", " entry_SYSCALL_64_after_hwframe+0x49/0xbe"]
MODPROBE = [
    " usb_probe_interface+0xe8/0x2a0",
    " really_probe+0xee/0x2a0",
    " driver_probe_device+0x4a/0xb0",
    " __driver_attach+0xb3/0xd0",
    " bus_for_each_dev+0x74/0xc0",
    " bus_add_driver+0x19a/0x1e0",
    " driver_register+0x66/0xb0",
    " usb_register_driver+0x9a/0x150",
]
INIT = [
    " do_one_initcall+0x61/0x2fb",
    " do_init_module+0x55/0x1e0",
    " load_module+0x145b/0x1710",
    " __do_sys_finit_module+0xba/0xe0",
    *SYSCALL,
]
HUB_DISCONNECT = [
    " usb_unbind_interface+0x77/0x280",
    " device_release_driver_internal+0x186/0x240",
    " bus_remove_device+0xee/0x130",
    " device_del+0x140/0x350",
    " usb_disable_device+0x7c/0x1d0",
    " usb_disconnect+0xb4/0x280",
    " hub_port_connect+0x7a/0xa10",
    " port_event+0x4c8/0x6a0",
    " hub_event+0x119/0x2c0",
    " process_one_work+0x283/0x690",
    " worker_thread+0x34/0x3d0",
    " kthread+0x118/0x130",
    " ret_from_fork+0x3a/0x50",
]
END = "---[ end trace 0000000000000000 ]---"


def test_v4_find_module_without_module_mutex_splats_on_every_probe() -> None:
    """As Hans Verkuil's log of v9 shows it: the stick is there, the modules are loaded (udev
    did it there; modprobe here): au0828's probe WARNs in module_assert_mutex() and, once per
    boot, in module_assert_mutex_or_preempt(); snd-usb-audio's probe in the first only."""
    k, events = recorded("v4", plug=("hvr950q",))
    k.modprobe("au0828")
    k.modprobe("snd_usb_audio")
    modprobe = k.files.tasks.get("modprobe").pid
    rel = k.release
    first, once, audio = printed_reports(events)
    assert first == [
        f"WARNING: CPU: 0 PID: {modprobe} at kernel/module.c:262 module_assert_mutex+0x20/0x30",
        "Modules linked in: au0828(+) dvb_core videodev mc",
        f"CPU: 0 PID: {modprobe} Comm: modprobe Not tainted {rel} #1",
        "RIP: 0010:module_assert_mutex+0x20/0x30",
        "Call Trace:",
        " find_module+0x9/0x20",
        " media_device_usb_allocate+0x10b/0x170 [mc]",
        " au0828_usb_probe+0x1bd/0x290 [au0828]",
        *MODPROBE,
        " au0828_init+0xb3/0x1000 [au0828]",
        *INIT,
        END,
    ]
    assert once[0] == f"WARNING: CPU: 0 PID: {modprobe} at kernel/module.c:272 module_assert_mutex_or_preempt+0x29/0x30"
    assert once[2] == f"CPU: 0 PID: {modprobe} Comm: modprobe Tainted: G        W         {rel} #1"
    assert once[5:8] == [
        " find_module_all+0x16/0x90",
        " media_device_usb_allocate+0x10b/0x170 [mc]",
        " au0828_usb_probe+0x1bd/0x290 [au0828]",
    ]
    assert audio[0].endswith("at kernel/module.c:262 module_assert_mutex+0x20/0x30")
    assert audio[1] == "Modules linked in: snd_usb_audio(+) au0828 snd dvb_core videodev mc"
    assert audio[5:] == [
        " find_module+0x9/0x20",
        " media_device_usb_allocate+0x7c/0x170 [mc]",  # found: the other find_module() call
        " snd_media_device_create+0x160/0x280 [snd_usb_audio]",
        " usb_audio_probe+0x8a4/0xaa0 [snd_usb_audio]",
        *MODPROBE,
        *INIT,
        END,
    ]
    # the WARN headlines are anomalies, as the refcount_t ones are; the reports can be queried
    assert len(lockdep_warns(k)) == 3
    assert [(r.function, r.task.comm) for r in k.allocator.reports] == [
        ("module_assert_mutex", "modprobe"),
        ("module_assert_mutex_or_preempt", "modprobe"),
        ("module_assert_mutex", "modprobe"),
    ]
    assert next(e for e in events if e.text.startswith("WARNING:")).device == "usb 1-1"


def test_v4_splats_again_at_unplug_from_the_hub_kworker() -> None:
    k, events = recorded("v4", "au0828", "snd_usb_audio", plug=("hvr950q",))
    before = len(printed_reports(events))
    k.unplug("1-1")
    video, audio = printed_reports(events)[before:]
    for report in (video, audio):
        assert report[0] == "WARNING: CPU: 0 PID: 46 at kernel/module.c:262 module_assert_mutex+0x20/0x30"
        assert report[2].startswith("CPU: 0 PID: 46 Comm: kworker/0:1 Tainted: G        W")
        assert report[3] == "Workqueue: usb_hub_wq hub_event"
        assert report[6:8] == [" find_module+0x9/0x20", " media_device_delete+0x27/0x68 [mc]"]
        assert report[-len(HUB_DISCONNECT) - 1 :] == [*HUB_DISCONNECT, END]
    assert video[8:12] == [
        " au0828_usb_release+0xdf/0x100 [au0828]",
        " v4l2_device_put+0x24/0x30 [videodev]",
        " au0828_analog_unregister+0x68/0x70 [au0828]",
        " au0828_usb_disconnect+0x61/0x80 [au0828]",
    ]
    assert audio[8:10] == [
        " snd_media_device_delete+0x112/0x131 [snd_usb_audio]",
        " usb_audio_disconnect+0x1bc/0x240 [snd_usb_audio]",
    ]


def test_v4_names_the_task_that_called() -> None:
    """A deferred release runs in the process that closes the last file; rmmod in rmmod."""
    k = make_kernel("au0828", "snd_usb_audio", plug=("hvr950q",), variant="v4")
    fd = k.open("/dev/video0", "tvtime")
    before = len(k.allocator.reports)
    k.unbind(MEDIA, MEDIA_INTF)
    assert len(k.allocator.reports) == before  # the open file keeps au0828's reference
    k.close(fd)
    assert len(k.allocator.reports) == before + 1
    assert k.allocator.reports[-1].task.comm == "tvtime"
    assert k.allocator.reports[-1].call_trace[2:4] == (
        "au0828_usb_release+0xdf/0x100 [au0828]",
        "v4l2_device_put+0x24/0x30 [videodev]",
    )
    k.rmmod("snd_usb_audio")
    last = k.allocator.reports[-1]
    assert last.task.comm == "rmmod"
    assert last.call_trace[-4:] == (
        "usb_audio_driver_exit [snd_usb_audio]",
        "__do_sys_delete_module",
        *(s.strip() for s in SYSCALL),
    )


def test_v4_calls_find_module_only_once_the_instance_is_allocated() -> None:
    """``kzalloc()`` failing returns before ``mdi->owner = find_module(module_name)``."""
    k = make_kernel(variant="v4")
    udev = k.usb.plug("hvr950q")
    k.faults.arm("kzalloc")
    with pytest.raises(KernelError):
        k.allocator.media_device_usb_allocate(udev, "au0828", None)
    assert k.allocator.reports == [] and k.anomalies == []


def test_v4_keeps_its_own_dev_pointer_v10_compares_the_media_devices() -> None:
    """v4: ``if (mdi->dev == dev)``; v10: ``if (mdi->mdev.dev != dev) continue;`` (looked at
    with the list walked, as the kernel does)."""
    for variant, found in (("v4", True), ("v10", False)):
        k = make_kernel(variant=variant, lookup="scan")
        udev = k.usb.plug("hvr950q")
        mdev = k.allocator.media_device_usb_allocate(udev, "au0828", None)
        inst = mdev.instance  # type: ignore[attr-defined]
        assert isinstance(inst, V4MediaDeviceInstance) is (variant == "v4")
        mdev.dev = None  # only the media device's own pointer is lost
        again = k.allocator.media_device_usb_allocate(udev, "au0828", None)
        assert (again is mdev) is found


# -- v3: no owner-module reference ------------------------------------------------------------


@pytest.mark.parametrize("variant", DESIGNS)
def test_rmmod_of_the_owner_while_shared(variant: str) -> None:
    """Only v3 lets the module that owns the shared media device go."""
    k = make_kernel("au0828", "snd_usb_audio", plug=("hvr950q",), variant=variant)
    if variant != "v3":
        assert k.modules["au0828"].refcnt == 1  # snd-usb-audio's owner reference
        with pytest.raises(KernelError) as err:
            k.rmmod("au0828")
        assert err.value.errno == errno.EBUSY
        return
    assert k.modules["au0828"].refcnt == 0
    assert k.view.media_devices()[0].owner is None  # v3 keeps no owner
    k.rmmod("au0828")
    assert "au0828" not in k.modules
    assert media_nodes(k) == ["/dev/media0"]  # snd-usb-audio still holds it, registered
    assert k.check() == []  # nothing is wrong yet: nobody touched it


def test_v3_open_of_dev_media_after_the_owner_is_gone_oopses() -> None:
    k, events = recorded("v3", "au0828", "snd_usb_audio", plug=("hvr950q",))
    fd = k.open("/dev/media0", "media-ctl")  # before: an ordinary open, that pins the owner...
    assert k.modules["au0828"].refcnt == 1
    with pytest.raises(KernelError, match="in use"):
        k.rmmod("au0828")  # ...so an fd kept across the rmmod cannot exist
    k.close(fd)
    assert k.modules["au0828"].refcnt == 0
    k.rmmod("au0828")
    with pytest.raises(KernelError) as err:
        k.open("/dev/media0", "media-ctl")
    assert err.value.errno == errno.EFAULT and "Killed" in str(err.value.strerror)
    pid = k.files.tasks.get("media-ctl").pid
    [oops] = printed_reports(events)
    assert re.fullmatch(r"BUG: unable to handle kernel paging request at ffffffffa0[0-9a-f]{6}", oops[0])
    assert oops[1:3] == ["IP: try_module_get", "Oops: 0000 [#1] SMP"]
    assert oops[3] == "Modules linked in: snd_usb_audio snd dvb_core videodev mc"
    assert oops[4] == f"CPU: 0 PID: {pid} Comm: media-ctl Not tainted {k.release} #1"
    assert oops[6:9] == ["Call Trace:", " cdev_get", " chrdev_open"]
    assert oops[-1] == END
    [violation] = k.check()
    assert violation.kind == "oops" and violation.device == "/dev/media0"
    assert f"media-ctl[{pid}] opened /dev/media0, whose cdev owner au0828 was unloaded" in violation.message
    users_of_mc = sum("mc" in m.deps for m in k.modules.values())
    assert k.files.open_files() == [] and k.modules["mc"].refcnt == users_of_mc  # the dead open pins nothing
    k.unbind(AUDIO, AUDIO_INTF)  # the last user lets go: the device goes as in any design
    assert media_nodes(k) == [] and k.allocator.instances() == []


def test_v3_the_other_way_round() -> None:
    """snd-usb-audio probed first owns the device; rmmod of it, and the next open, oops too."""
    k = make_kernel("snd_usb_audio", plug=("hvr950q",), variant="v3")
    k.modprobe("au0828")
    k.rmmod("snd_usb_audio")
    with pytest.raises(KernelError):
        k.open("/dev/media0", "v4l2-ctl")
    assert [v.kind for v in k.check()] == ["oops"]
    assert "cdev owner snd_usb_audio was unloaded" in k.check()[0].message


@pytest.mark.parametrize("variant", DESIGNS)
def test_rmmod_of_the_sharer_is_harmless_in_every_design(variant: str) -> None:
    k = make_kernel("au0828", "snd_usb_audio", plug=("hvr950q",), variant=variant)
    k.rmmod("snd_usb_audio")
    k.close(k.open("/dev/media0", "media-ctl"))
    assert [v for v in k.check() if v.kind != "warn"] == []


# -- v10: module_mutex held, otherwise mainline ----------------------------------------------


def _lifecycle(variant: str) -> list[tuple[str, str, str, str]]:
    k, events = recorded(variant, "au0828", "snd_usb_audio", plug=("hvr950q",))
    fd = k.open("/dev/video0", "tvtime")
    k.unbind(MEDIA, MEDIA_INTF)  # au0828's reference is kept by the open file
    k.unbind(AUDIO, AUDIO_INTF)
    k.bind(AUDIO, AUDIO_INTF)
    k.close(fd)  # the deferred release
    k.bind(MEDIA, MEDIA_INTF)
    with pytest.raises(KernelError):
        k.rmmod("au0828")
    k.unplug("1-1")
    assert k.check() == []
    return [(e.kind, e.level, e.device, e.text) for e in events]


def test_v10_takes_module_mutex_and_is_otherwise_mainline() -> None:
    v10 = _lifecycle("v10")
    assert not any(text.startswith("WARNING") for *_, text in v10)
    assert v10 == _lifecycle("mainline")


@pytest.mark.parametrize("variant", ["v3", "v4", "v10"])
def test_the_release_window_is_in_every_design_that_has_it(variant: str) -> None:
    """``release:before_lock`` (where ``--race-window`` sleeps) is there, and the race is
    mainline's: the racer kref_get()s a zero count and is handed a device being freed."""
    k, result = _race(variant)
    assert result["done_in_window"] is True
    mdev = result["mdev"]
    assert mdev.instance.released and mdev.instance.refcount.saturated  # type: ignore[attr-defined]
    others = [v.message for v in k.check() if v.kind == "warn" and not LOCKDEP.match(v.message)]
    assert others == ["refcount_t: addition on 0; use-after-free."]


# -- the selftest's sequence on every design -------------------------------------------------

#: what each design's check() says after media_dev_allocator.sh's sequence: v4's lockdep
#: WARN on each of its 10 find_module() calls (2 probes at plug, 4 unbinds, 4 binds) and the
#: once-per-boot one; nothing for the others
VERDICTS = {"v3": {}, "v4": {"warn": 11}, "v10": {}, "mainline": {}, "fixed": {}}


@pytest.mark.parametrize("variant", DESIGNS)
def test_media_dev_allocator_sh_on_every_design(variant: str) -> None:
    k = make_kernel("au0828", "snd_usb_audio", plug=("hvr950q",), variant=variant)
    pinned = 0 if variant == "v3" else 1  # snd-usb-audio's reference on the owner au0828

    def refs() -> tuple[int, int]:
        [inst] = k.allocator.instances()
        return inst.refcount.refcount, k.modules["au0828"].refcnt

    assert refs() == (2, pinned)
    k.unbind(MEDIA, MEDIA_INTF)
    assert media_nodes(k) == ["/dev/media0"], "Media device should still be present!"
    assert refs() == (1, pinned)
    k.unbind(AUDIO, AUDIO_INTF)
    assert media_nodes(k) == [], "Media device should have been deleted!"
    k.bind(MEDIA, MEDIA_INTF)
    k.bind(AUDIO, AUDIO_INTF)
    assert media_nodes(k) == ["/dev/media0"] and refs() == (2, pinned)
    for driver, intf in ((MEDIA, MEDIA_INTF), (AUDIO, AUDIO_INTF)):
        k.unbind(driver, intf)
        assert media_nodes(k) == ["/dev/media0"]
        k.bind(driver, intf)
        assert media_nodes(k) == ["/dev/media0"]
    assert Counter(v.kind for v in k.check()) == VERDICTS[variant]
    assert len(lockdep_warns(k)) == VERDICTS[variant].get("warn", 0)


# -- Sakari Ailus: graph objects are not refcounted -------------------------------------------


def _streaming_audio(variant: str) -> tuple[Kernel, int]:
    """arecord holds the tuner: snd-usb-audio's capture entity streams through au0828's."""
    k = make_kernel("au0828", "snd_usb_audio", plug=("hvr950q",), variant=variant)
    fd = k.open("/dev/snd/pcmC0D0c", "arecord")
    k.ioctl(fd, "SNDRV_PCM_IOCTL_HW_PARAMS")
    assert k.loader.drivers[MEDIA].devs[0].active_link_owner.name == "USB Audio"  # type: ignore[attr-defined]
    return k, fd


@pytest.mark.parametrize("variant", DESIGNS)
def test_sakari_au0828_leaves_while_audio_links_into_its_graph(variant: str) -> None:
    """au0828 unbound while snd-usb-audio's mixer is linked from au0828's decoder and its
    stream runs through au0828's tuner: au0828's entities go with both halves of every link
    to them, the media device stays (the last user has it), nothing points at what went."""
    k, fd = _streaming_audio(variant)
    [inst] = k.allocator.instances()
    mixer = inst.mdev.find_entity(MEDIA_ENT_F_AUDIO_MIXER)
    assert mixer is not None
    assert any(ln.source.entity.function == MEDIA_ENT_F_ATV_DECODER for ln in mixer.links)  # type: ignore[union-attr]
    k.unbind(MEDIA, MEDIA_INTF)
    ends = {(ln.source.entity.name, ln.sink.entity.name) for ln in mixer.links}  # type: ignore[union-attr]
    assert ends == {("USB Mixer", "USB Audio")} and mixer.mdev is inst.mdev  # only its own link is left
    assert inst.mdev.find_entity(MEDIA_ENT_F_ATV_DECODER) is None
    assert stale_graph_references(k) == []
    k.ioctl(fd, "SNDRV_PCM_IOCTL_HW_FREE")
    k.close(fd)
    assert [v for v in k.check() if v.kind != "warn"] == []


@pytest.mark.parametrize("variant", DESIGNS)
def test_sakari_audio_leaves_while_au0828_holds_its_entity(variant: str) -> None:
    """The other way round, every design alike: au0828 keeps snd-usb-audio's capture entity
    as the tuner's owner; snd-usb-audio is unbound and its entity unregistered (freed, in the
    kernel), and au0828 goes on using it: the next video STREAMON "shares" the tuner with it."""
    k, fd = _streaming_audio(variant)
    k.unbind(AUDIO, AUDIO_INTF)
    stale = StaleReference(
        "au0828 on 1-1:1.0",
        "active_link_owner",
        "entity 'USB Audio'",
        "is unregistered (snd-usb-audio on 1-1:1.1 is gone)",
    )
    assert stale_graph_references(k) == [stale]
    k.close(fd)
    video = k.open("/dev/video0", "tvtime")
    k.ioctl(video, "VIDIOC_STREAMON")
    dev = k.loader.drivers[MEDIA].devs[0]  # type: ignore[attr-defined]
    assert dev.active_link_shared and dev.active_link_owner.mdev is None
    k.close(video)
    assert stale_graph_references(k) == [stale]  # the tuner stays with the dead entity
    k.unbind(MEDIA, MEDIA_INTF)
    assert stale_graph_references(k) == []

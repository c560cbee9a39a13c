"""``current`` and the call trace a kernel report prints, read off the simulation's own stack.

A kernel WARN or oops names the task it ran in (``CPU: 0 PID: 1824 Comm: systemd-udevd``), the
workqueue when that task is a kworker, and the call chain that led there.  The simulation
runs the same chains as Python calls (``UsbCore.unplug`` -> ``UsbCore._release`` ->
``Au0828Driver.disconnect`` -> ...), so ``current()`` walks the calling thread's frames and
turns each function it knows into the kernel frames it stands for, innermost first:

* the driver frames (``au0828_usb_probe``, ``snd_media_device_create``, ``usb_audio_probe``,
  ``au0828_usb_release`` ...) and the driver core's, USB core's and module loader's;
* the outermost user action decides the task: ``modprobe``/``rmmod`` (the process of that
  name), sysfs ``bind``/``unbind`` (the shell a script's lines are typed into), a plug or
  unplug (the hub kworker: ``Workqueue: usb_hub_wq hub_event``), the close of an open file
  (the process whose file it is: a deferred release runs at its last close).

Offsets (``+0x1bd/0x290``) are the ones a real report shows for that frame: Hans Verkuil's
log of the v9 allocator on 5.0-rc1 (linux-media, 2019-01-21: au0828 and snd-usb-audio probe,
and an unplug); a frame that log does not show is printed by its symbol alone, and frames the
model has no counterpart for (``?`` guesses, inlined helpers) are left out.  A module's frames
carry ``[module]`` while it is a loaded module, none when it is built in.  Python frames with
no kernel counterpart (locks, krefs, lambdas) are skipped.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from types import FrameType
from typing import NamedTuple

from .task import SHELL, Task, TaskTable

#: the kworker that runs ``hub_event`` (probe at hotplug, disconnect at unplug)
KWORKER = Task(46, "kworker/0:1", "root")
HUB_WORKQUEUE = "usb_hub_wq hub_event"

#: (symbol with its offset where known, module it lives in: None for the core kernel)
Frame = tuple[str, str | None]

_SYSCALL = (("do_syscall_64+0x4b/0x180", None), ("entry_SYSCALL_64_after_hwframe+0x49/0xbe", None))
_SYSFS_WRITE = (
    ("drv_attr_store", None),
    ("sysfs_kf_write", None),
    ("kernfs_fop_write", None),
    ("__vfs_write", None),
    ("vfs_write", None),
    ("ksys_write", None),
    *_SYSCALL,
)
_KTHREAD = (
    ("process_one_work+0x283/0x690", None),
    ("worker_thread+0x34/0x3d0", None),
    ("kthread+0x118/0x130", None),
    ("ret_from_fork+0x3a/0x50", None),
)
_PROBE = (
    ("usb_probe_interface+0xe8/0x2a0", None),
    ("really_probe+0xee/0x2a0", None),
    ("driver_probe_device+0x4a/0xb0", None),
)
_ATTACH = (
    ("__device_attach_driver", None),
    ("bus_for_each_drv", None),
    ("__device_attach", None),
    ("device_initial_probe", None),
    ("bus_probe_device", None),
    ("device_add", None),
)

#: the module init and exit functions that register and deregister a USB driver
MODULE_INIT: dict[str, str] = {"au0828": "au0828_init+0xb3/0x1000"}
MODULE_EXIT: dict[str, str] = {"au0828": "au0828_exit", "snd_usb_audio": "usb_audio_driver_exit"}

Frames = tuple[Frame, ...] | Callable[[FrameType], tuple[Frame, ...]]

#: Python function (``co_qualname``; ``>api`` when the frame is the direct caller of that
#: allocator call, whose call site has its own offset) -> the kernel frames it stands for
FRAMES: dict[str, Frames] = {
    # au0828
    "Au0828Driver.probe>media_device_usb_allocate": (("au0828_usb_probe+0x1bd/0x290", "au0828"),),
    "Au0828Driver.probe": (("au0828_usb_probe", "au0828"),),
    # au0828_unregister_media_device() is inlined into au0828_usb_release()
    "Au0828Driver._unregister_media_device>media_device_delete": (("au0828_usb_release+0xdf/0x100", "au0828"),),
    "Au0828Driver._unregister_media_device": (("au0828_usb_release", "au0828"),),
    "Au0828Driver.disconnect": (
        ("au0828_analog_unregister+0x68/0x70", "au0828"),
        ("au0828_usb_disconnect+0x61/0x80", "au0828"),
    ),
    # snd-usb-audio
    "SndUsbAudioDriver.snd_media_device_create>media_device_usb_allocate": (
        ("snd_media_device_create+0x160/0x280", "snd_usb_audio"),
    ),
    "SndUsbAudioDriver.snd_media_device_create": (("snd_media_device_create", "snd_usb_audio"),),
    "SndUsbAudioDriver.snd_media_device_delete>media_device_delete": (
        ("snd_media_device_delete+0x112/0x131", "snd_usb_audio"),
    ),
    "SndUsbAudioDriver.snd_media_device_delete": (("snd_media_device_delete", "snd_usb_audio"),),
    "SndUsbAudioDriver.probe": (("usb_audio_probe+0x8a4/0xaa0", "snd_usb_audio"),),
    "SndUsbAudioDriver.disconnect": (("usb_audio_disconnect+0x1bc/0x240", "snd_usb_audio"),),
    # videodev
    "V4l2Device.put": (("v4l2_device_put+0x24/0x30", "videodev"),),
    "_v4l2_device_release": (("v4l2_device_release", "videodev"), ("device_release", None), ("kobject_put", None)),
    "_video_fops.<locals>.do_release": (("v4l2_release", "videodev"),),
    # the driver core and the USB core
    "UsbCore._probe": _PROBE,
    "UsbCore._autoprobe": _ATTACH,
    "UsbCore.register_driver": (
        ("__driver_attach+0xb3/0xd0", None),
        ("bus_for_each_dev+0x74/0xc0", None),
        ("bus_add_driver+0x19a/0x1e0", None),
        ("driver_register+0x66/0xb0", None),
        ("usb_register_driver+0x9a/0x150", None),
    ),
    "UsbCore.plug": (
        ("usb_set_configuration", None),
        ("generic_probe", None),
        ("usb_probe_device", None),
        ("really_probe", None),
        ("driver_probe_device", None),
        *_ATTACH,
        ("usb_new_device", None),
        ("hub_port_connect", None),
        ("port_event", None),
        ("hub_event", None),
        *_KTHREAD,
    ),
    "UsbCore.bind": (("device_driver_attach", None), ("bind_store", None), *_SYSFS_WRITE),
    "UsbCore._release": (
        ("usb_unbind_interface+0x77/0x280", None),
        ("device_release_driver_internal+0x186/0x240", None),
    ),
    "UsbCore.unbind": (("device_driver_detach", None), ("unbind_store", None), *_SYSFS_WRITE),
    "UsbCore.unplug": (
        ("bus_remove_device+0xee/0x130", None),
        ("device_del+0x140/0x350", None),
        ("usb_disable_device+0x7c/0x1d0", None),
        ("usb_disconnect+0xb4/0x280", None),
        ("hub_port_connect+0x7a/0xa10", None),
        ("port_event+0x4c8/0x6a0", None),
        ("hub_event+0x119/0x2c0", None),
        *_KTHREAD,
    ),
    "UsbCore.deregister_driver": (
        ("driver_detach", None),
        ("bus_remove_driver", None),
        ("driver_unregister", None),
        ("usb_deregister", None),
    ),
    # the module loader
    "ModuleLoader._start_driver": lambda f: _named(MODULE_INIT, f),
    "ModuleLoader.modprobe": (
        ("do_one_initcall+0x61/0x2fb", None),
        ("do_init_module+0x55/0x1e0", None),
        ("load_module+0x145b/0x1710", None),
        ("__do_sys_finit_module+0xba/0xe0", None),
        *_SYSCALL,
    ),
    "ModuleLoader.rmmod": lambda f: (*_named(MODULE_EXIT, f), ("__do_sys_delete_module", None), *_SYSCALL),
    # the VFS: a deferred release runs in the process closing the last file
    "FileTable.close": (
        ("__fput", None),
        ("task_work_run", None),
        ("exit_to_usermode_loop", None),
        ("do_syscall_64", None),
        ("entry_SYSCALL_64_after_hwframe", None),
    ),
}


def _named(table: dict[str, str], frame: FrameType) -> tuple[Frame, ...]:
    name = frame.f_locals.get("name")
    symbol = table.get(name) if isinstance(name, str) else None
    return ((symbol, name),) if symbol is not None else ()


class Context(NamedTuple):
    """Who the kernel is running as, and how it got here."""

    task: Task
    workqueue: str | None
    frames: tuple[Frame, ...]  # innermost first


def _entry(qualname: str, frame: FrameType, tasks: TaskTable) -> tuple[Task, str | None] | None:
    """The task a user action runs in, when ``qualname`` is one."""
    if qualname in ("UsbCore.plug", "UsbCore.unplug"):
        return KWORKER, HUB_WORKQUEUE
    if qualname in ("UsbCore.bind", "UsbCore.unbind"):
        return tasks.get(SHELL), None  # echo INTF > /sys/bus/usb/drivers/DRIVER/(un)bind
    if qualname == "ModuleLoader.modprobe":
        return tasks.get("modprobe"), None
    if qualname == "ModuleLoader.rmmod":
        return tasks.get("rmmod"), None
    if qualname == "FileTable.close":
        file = frame.f_locals.get("file")
        task = getattr(file, "task", None)
        return (task if isinstance(task, Task) else tasks.get(SHELL)), None
    return None


def current(tasks: TaskTable, api: str) -> Context:
    """The task the calling thread runs as, and the kernel frames below the allocator call
    ``api`` (``media_device_usb_allocate``...) it is in, innermost first."""
    frame: FrameType | None = sys._getframe(1)
    frames: list[Frame] = []
    task: Task | None = None
    workqueue: str | None = None
    direct = True
    while frame is not None:
        qualname = frame.f_code.co_qualname
        spec = FRAMES.get(f"{qualname}>{api}") if direct else None
        if spec is None:
            spec = FRAMES.get(qualname)
        if spec is not None:
            frames += spec(frame) if callable(spec) else spec
            direct = False
        entry = _entry(qualname, frame, tasks)
        if entry is not None:  # the outermost one wins
            task, workqueue = entry
        frame = frame.f_back
    return Context(task or tasks.get(SHELL), workqueue, tuple(frames))


def render(frame: Frame, loaded: Callable[[str], bool]) -> str:
    """A call trace line's text: ``symbol+0xoff/0xsize [module]`` (no ``[module]`` for code
    built into the kernel)."""
    symbol, module = frame
    return f"{symbol} [{module}]" if module is not None and loaded(module) else symbol

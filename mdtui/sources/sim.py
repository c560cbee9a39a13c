"""The simulated kernel as a source: snapshots of ``allocator.Kernel`` and its event stream.

All actions go through ``SimSource`` and take its lock, and so does building a snapshot, so a
snapshot never shows half an action.  Topology snapshots are cached per media device and its
``generation``, so a snapshot of 64 devices re-reads only the graphs that changed.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from typing import Any

from allocator import Event, Kernel
from allocator.check import label
from allocator.device import dev_str
from allocator.view import MediaDeviceState, OpenFile

from ..commands import COMMANDS, Step
from ..model import (
    HolderView,
    InterfaceView,
    MediaDeviceView,
    ModuleView,
    OpenFileView,
    SystemSnapshot,
    UsbDeviceView,
)
from . import Refusal, Source, perform_all

DEFAULT_WORLD = (
    Step(0, "modprobe", ("au0828",)),
    Step(0, "modprobe", ("snd_usb_audio",)),
    Step(0, "modprobe", ("uvcvideo",)),  # udev would load it for the webcam's modalias
    Step(0, "plug", ("hvr950q",)),
    Step(0, "plug", ("c270",)),
)


class SimSource(Source):
    simulated = True
    #: a snapshot here is a few milliseconds of CPU and no I/O: the app builds it on its
    #: event loop (a source that reads devices sets this False and gets a worker thread)
    snapshot_on_loop = True

    def __init__(self, kernel: Kernel) -> None:
        super().__init__()
        self.kernel = kernel
        self.variant = kernel.variant
        self.lock = threading.RLock()
        self._graphs: dict[int, tuple[int, Any, Any, Any]] = {}

    # -- events ------------------------------------------------------------------------

    def subscribe(self, callback: Callable[[Event], None]) -> Callable[[], None]:
        return self.kernel.subscribe(callback)

    def history(self) -> list[Event]:
        return list(self.kernel.events.history)

    def now(self) -> float:
        """The simulated kernel's clock: the one its events carry."""
        return self.kernel.events.now()

    # -- actions -----------------------------------------------------------------------

    def perform(self, step: Step) -> None:
        """One lifecycle step: the ``Kernel`` method of the command's name (mdtui/commands.py
        declares them); raises ``KernelError`` when the kernel refuses it."""
        if step.command not in COMMANDS or not COMMANDS[step.command].lifecycle:
            raise ValueError(f"not a lifecycle command: {step}")
        with self.lock:
            getattr(self.kernel, step.command)(*step.args)

    # -- snapshots ---------------------------------------------------------------------

    def snapshot(self) -> SystemSnapshot:
        with self.lock:
            return self._snapshot()

    def _snapshot(self) -> SystemSnapshot:
        k = self.kernel
        seq = k.events.last_seq
        violations = k.check()
        opened = k.view.open_files()
        files = {f.fd: f for f in opened}
        holders: dict[int, list[HolderView]] = {}
        for mdev, h in k.view.holders():
            kept = tuple(_file_view(f) for f in map(files.get, h.kept_by) if f)
            view = HolderView(h.driver, h.module, h.interface, h.state, h.reason, h.unbound_at, kept)
            holders.setdefault(id(mdev), []).append(view)
        nodes = k.view.device_nodes()
        devt_names = {d.devt: path for path, d in nodes.items() if d.devt is not None}
        claimed: set[str] = set()
        views = []
        live_ids = set()
        for state in k.view.media_devices():
            live_ids.add(id(state.mdev))
            views.append(self._device(state, holders.get(id(state.mdev), []), devt_names, violations, claimed, opened))
        for stale in set(self._graphs) - live_ids:
            del self._graphs[stale]
        device_names = {v.devnode for v in views} | {f"media device of {v.usb_device}" for v in views}
        others = tuple(f"{v.device}: {v.message}" for v in violations if v.device not in device_names)
        modules = tuple(
            ModuleView(m.name, m.refcnt, m.holders) for m in sorted(k.view.modules(), key=lambda m: m.name)
        ) + tuple(ModuleView(name, None) for name in sorted(k.view.builtin_modules()))
        below: dict[str, list[str]] = {}  # /dev nodes by the USB device they sit under
        for path, d in nodes.items():
            below.setdefault("/".join(d.devpath.split("/", 6)[:6]), []).append(path)
        usb = tuple(
            UsbDeviceView(
                u.name,
                u.desc.vendor,
                u.desc.product_id,
                u.desc.product,
                tuple(InterfaceView(i.name, i.desc.cls, i.desc.subclass, i.driver) for i in u.interfaces),
                tuple(sorted(p for p in below.get(u.devpath, ()) if p != u.node)),
            )
            for u in k.view.usb_devices()
        )
        note = f"simulated kernel {k.release} (allocator: {k.variant})"
        views.sort(key=lambda v: v.key)
        return SystemSnapshot(
            source="sim",
            seq=seq,
            media_devices=tuple(views),
            modules=modules,
            usb_devices=usb,
            open_files=tuple(_file_view(f) for f in opened),
            usb_drivers=tuple(sorted(k.view.usb_drivers())),
            anomalies=others,
            notes=(note,),
        )

    def _device(
        self,
        state: MediaDeviceState,
        held: list[HolderView],
        devt_names: dict[tuple[int, int], str],
        violations: list[Any],
        claimed: set[str],
        opened: list[OpenFile],
    ) -> MediaDeviceView:
        mdev = state.mdev
        cached = self._graphs.get(id(mdev))
        if cached is None or cached[0] != mdev.generation:
            with mdev.graph_mutex:
                topology, legacy = mdev.topology(), mdev.legacy_types()
                wanted = {(i.major, i.minor) for i in topology.interfaces} | {(ma, mi) for _, ma, mi in legacy if ma}
                cached = (mdev.generation, topology, legacy, wanted)
            self._graphs[id(mdev)] = cached
        _, topology, legacy, wanted = cached
        dev = mdev.dev
        udev = getattr(dev, "udev", dev)  # the USB device: the key, or the interface's parent
        usb_name = udev.name if udev is not None else "?"
        key = dev.name if dev is not None else "?"
        while key in claimed:  # two instances for one device (possible mid-race)
            key += "'"
        claimed.add(key)
        owner = state.owner
        sharers = sum(1 for h in held if h.module != owner) if owner else 0
        mine = {label(mdev), dev_str(udev)} if udev is not None else {label(mdev)}  # how violations name it
        nodes = {(i.major, i.minor) for i in topology.interfaces}
        if mdev.devnode is not None and mdev.devnode.device is not None:
            nodes.add(mdev.devnode.device.devt)
        keeping = {(k.pid, k.node) for h in held for k in h.kept_by}
        files = tuple(
            _file_view(f) for f in opened if f.devt in nodes or f.media_dev is mdev or (f.task.pid, f.path) in keeping
        )
        anomalies = tuple(v.message for v in violations if v.device in mine)
        return MediaDeviceView(
            key=key,
            usb_device=usb_name,
            devnode=mdev.devnode_name,
            info=mdev.device_info(),
            shared=state.shared,
            refcount=state.refcount,
            owner=owner,
            owner_refs_from_sharers=sharers,
            holders=tuple(held),
            topology=topology,
            entity_legacy=legacy,
            devnames={d: devt_names[d] for d in wanted if d in devt_names},
            anomalies=anomalies,
            open_files=tuple(sorted(files, key=lambda f: (f.pid, f.fd))),
            hidden_openers=0,  # the simulated kernel hides no process
        )


def _file_view(f: OpenFile) -> OpenFileView:
    return OpenFileView(f.task.pid, f.task.comm, f.task.user, f.fd, f.path, f.mode, f.opened_at)


def fake_clock() -> Callable[[], float]:
    """A clock that advances 1 ms per reading: the same times on every run (screenshots,
    snapshot tests)."""
    ticks = itertools.count()
    return lambda: next(ticks) / 1000.0


def build(
    script: list[Step] | None = None,
    *,
    variant: str = "mainline",
    clock: Callable[[], float] | None = None,
) -> tuple[SimSource, list[Refusal]]:
    """A simulated machine: the default world, or an empty one that ``script`` builds; and
    the steps the kernel refused (each an error event too; the rest went on)."""
    source = SimSource(Kernel(variant, clock=clock))
    return source, perform_all(source, script if script is not None else DEFAULT_WORLD)

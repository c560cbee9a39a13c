"""The simulated kernel as a source: snapshots of ``allocator.Kernel`` and its event stream.

All actions go through ``SimSource`` and take its lock, and so does building a snapshot, so a
snapshot never shows half an action.  Topology snapshots are cached per media device and its
``generation``, so a snapshot of 64 devices re-reads only the graphs that changed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from allocator import Event, Kernel, KernelError
from allocator.check import label
from allocator.mc.device import MediaDevice
from allocator.mc_dev_allocator import InstanceMediaDevice

from ..model import HolderView, InterfaceView, MediaDeviceView, ModuleView, SystemSnapshot, UsbDeviceView
from ..script import Step

DEFAULT_WORLD = (
    Step(0, "modprobe", ("au0828",)),
    Step(0, "modprobe", ("snd_usb_audio",)),
    Step(0, "modprobe", ("uvcvideo",)),  # udev would load it for the webcam's modalias
    Step(0, "plug", ("hvr950q",)),
    Step(0, "plug", ("c270",)),
)


class SimSource:
    kind = "sim"
    simulated = True
    read_only = False
    #: a snapshot here is a few milliseconds of CPU and no I/O: the app builds it on its
    #: event loop (a source that reads devices sets this False and gets a worker thread)
    snapshot_on_loop = True

    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel
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

    def run(self, step: Step) -> None:
        """One lifecycle step; raises ``KernelError`` when the kernel refuses it."""
        k = self.kernel
        actions: dict[str, Callable[..., Any]] = {
            "modprobe": k.modprobe,
            "rmmod": k.rmmod,
            "plug": k.plug,
            "unplug": k.unplug,
            "bind": k.bind,
            "unbind": k.unbind,
            "open": k.open,
            "close": k.close,
        }
        with self.lock:
            actions[step.command](*step.args)

    def run_all(self, steps: list[Step] | tuple[Step, ...]) -> list[tuple[Step, KernelError]]:
        """Run a script; a refused step is recorded (and is an error event) and the rest go on."""
        failed = []
        for step in steps:
            try:
                self.run(step)
            except KernelError as exc:
                failed.append((step, exc))
        return failed

    # -- snapshots ---------------------------------------------------------------------

    def snapshot(self) -> SystemSnapshot:
        with self.lock:
            return self._snapshot()

    def _snapshot(self) -> SystemSnapshot:
        k = self.kernel
        seq = k.events.last_seq
        violations = k.check()
        holders: dict[int, list[HolderView]] = {}
        for mdev, h in k.all_holders():
            holders.setdefault(id(mdev), []).append(HolderView(h.driver, h.module, h.interface, h.state, h.reason))
        nodes = dict(k.devices.nodes)
        devt_names = {d.devt: path for path, d in nodes.items() if d.devt is not None}
        claimed: set[str] = set()
        views = []
        live_ids = set()
        for mdev in k.media_devices():
            live_ids.add(id(mdev))
            view = self._device(mdev, holders.get(id(mdev), []), devt_names, violations, claimed)
            views.append(view)
        for stale in set(self._graphs) - live_ids:
            del self._graphs[stale]
        device_names = {v.devnode for v in views} | {f"media device of {v.usb_device}" for v in views}
        others = tuple(f"{v.device}: {v.message}" for v in violations if v.device not in device_names)
        modules = tuple(
            ModuleView(name, mod.refcnt, tuple(m.name for m in k.modules.values() if name in m.deps))
            for name, mod in sorted(k.modules.items())
        ) + tuple(ModuleView(name, None) for name in sorted(k.builtin))
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
            for u in k.usb.devices()
        )
        files = tuple((f.fd, f.path) for f in k.files.open_files())
        note = f"simulated kernel {k.release} (allocator: {k.variant})"
        views.sort(key=lambda v: v.key)
        return SystemSnapshot(
            source="sim",
            seq=seq,
            media_devices=tuple(views),
            modules=modules,
            usb_devices=usb,
            open_files=files,
            usb_drivers=tuple(sorted(k.usb.drivers)),
            anomalies=others,
            notes=(note,),
        )

    def _device(
        self,
        mdev: MediaDevice,
        held: list[HolderView],
        devt_names: dict[tuple[int, int], str],
        violations: list[Any],
        claimed: set[str],
    ) -> MediaDeviceView:
        k = self.kernel
        cached = self._graphs.get(id(mdev))
        if cached is None or cached[0] != mdev.generation:
            with mdev.graph_mutex:
                topology, legacy = mdev.topology(), mdev.legacy_types()
                wanted = {(i.major, i.minor) for i in topology.interfaces} | {(ma, mi) for _, ma, mi in legacy if ma}
                cached = (mdev.generation, topology, legacy, wanted)
            self._graphs[id(mdev)] = cached
        _, topology, legacy, wanted = cached
        dev = mdev.dev
        usb_name = getattr(dev, "udev", dev).name if dev is not None else "?"
        key = dev.name if dev is not None else "?"
        while key in claimed:  # two instances for one device (possible mid-race)
            key += "'"
        claimed.add(key)
        shared = isinstance(mdev, InstanceMediaDevice)
        inst = mdev.instance if shared else None  # type: ignore[attr-defined]
        owner = inst.owner if inst is not None else None
        owner_mod = k.modules.get(owner) if owner else None
        sharers = sum(1 for h in held if h.module != owner) if owner else 0
        name = label(mdev)
        mine = {name, f"usb {usb_name}"}
        anomalies = tuple(v.message for v in violations if v.device in mine)
        return MediaDeviceView(
            key=key,
            usb_device=usb_name,
            devnode=mdev.devnode_name,
            info=mdev.device_info(),
            shared=shared,
            refcount=inst.refcount.refcount if inst is not None else None,
            owner=owner,
            owner_refcnt=owner_mod.refcnt if owner_mod is not None else None,
            owner_refs_from_sharers=sharers,
            holders=tuple(held),
            topology=topology,
            entity_legacy=legacy,
            devnames={d: devt_names[d] for d in wanted if d in devt_names},
            anomalies=anomalies,
        )


def build(
    script: list[Step] | None = None,
    *,
    variant: str = "mainline",
    clock: Callable[[], float] | None = None,
) -> tuple[SimSource, list[tuple[Step, KernelError]]]:
    """A simulated machine: the default world, or an empty one that ``script`` builds."""
    source = SimSource(Kernel(variant, clock=clock))
    failed = source.run_all(script if script is not None else list(DEFAULT_WORLD))
    return source, failed

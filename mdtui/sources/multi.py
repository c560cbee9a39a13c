"""Several machines as one source (``--source`` given more than once): each machine's
devices, USB devices and modules carry its host, and a device's key starts with it
(``board-a/1-1``), so the views, the selection and the diff tell the machines apart.

Events are numbered again here, in the order they arrive from any machine, and a merged
snapshot's ``seq`` is the last number all of whose events its parts include: the pipeline
(mdtui/pipeline.py) then attributes each change to the events that made it, whichever
machine they came from.  A step goes to the machine its ``host`` names.
"""

from __future__ import annotations

import dataclasses
import errno
import threading
import time
from collections import deque

from allocator import KernelError
from allocator.events import Event

from ..model import HostView, SystemSnapshot
from ..step import Step
from . import Source


class MultiSource(Source):
    def __init__(self, children: list[tuple[str, Source]]) -> None:
        super().__init__()
        self.children = children
        self.simulated = all(s.simulated for _, s in children)
        self.read_only = all(s.read_only for _, s in children)
        self.snapshot_on_loop = all(s.snapshot_on_loop for _, s in children)
        self._lock = threading.Lock()
        self._seq = 0
        self._history: list[Event] = []
        # per machine, its events not yet in a snapshot of it: (its number, ours)
        self._unseen: list[deque[tuple[int, int]]] = [deque() for _ in children]
        for n, (name, source) in enumerate(children):
            self._history += [self._renumber(n, name, e) for e in source.history()]
            source.subscribe(lambda e, n=n, name=name: self.publish(self._renumber(n, name, e)))
            source.on_change(self.changed)

    def _renumber(self, n: int, name: str, e: Event) -> Event:
        with self._lock:
            self._seq += 1
            self._unseen[n].append((e.seq, self._seq))
            device = e.device if e.device == name or e.device.startswith(f"{name}:") else f"{name}/{e.device}"
            return e._replace(seq=self._seq, device=device)

    # -- the contract, for each machine ------------------------------------------------

    def start(self) -> None:
        for _, source in self.children:
            source.start()

    def stop(self) -> None:
        for _, source in self.children:
            source.stop()

    def ready(self, timeout: float) -> list[str]:
        self.start()
        deadline = time.monotonic() + timeout
        return [why for _, source in self.children for why in source.ready(max(0.0, deadline - time.monotonic()))]

    def filenos(self) -> list[int]:
        return [fd for _, source in self.children for fd in source.filenos()]

    def handle_readable(self) -> None:
        for _, source in self.children:
            if source.filenos():
                source.handle_readable()

    def history(self) -> list[Event]:
        return list(self._history)

    def now(self) -> float:
        return time.monotonic()

    def reread_media(self, key: str) -> None:
        name, _, local = key.partition("/")
        for child, source in self.children:
            if child == name:
                source.reread_media(local)

    def perform(self, step: Step) -> None:
        found = [s for name, s in self.children if name == step.host]
        if not found and len(self.children) == 1:
            found = [self.children[0][1]]
        if not found:
            hosts = ", ".join(name for name, _ in self.children)
            raise KernelError(errno.EINVAL, f"{step}: on which machine? ({hosts})", step.args[-1] if step.args else "")
        found[0].perform(dataclasses.replace(step, host=""))

    # -- one snapshot of them all ------------------------------------------------------

    def snapshot(self) -> SystemSnapshot:
        with self._lock:
            latest = self._seq
        parts = [source.snapshot() for _, source in self.children]
        with self._lock:
            waiting = []
            for unseen, part in zip(self._unseen, parts, strict=True):
                while unseen and unseen[0][0] <= part.seq:
                    unseen.popleft()
                waiting += [ours for _, ours in unseen]
        seq = min([latest, *(w - 1 for w in waiting)])
        devices, usb, modules, notes, anomalies, hosts, drivers = [], [], [], [], [], [], set()
        for (name, _), part in zip(self.children, parts, strict=True):
            devices += [dataclasses.replace(d, host=name, key=f"{name}/{d.key}") for d in part.media_devices]
            usb += [dataclasses.replace(u, host=name) for u in part.usb_devices]
            modules += [dataclasses.replace(m, host=name) for m in part.modules]
            notes += [n if n.startswith(f"{name}: ") else f"{name}: {n}" for n in part.notes]
            anomalies += [f"{name}: {a}" for a in part.anomalies]
            hosts += part.hosts or (HostView(name, "connected"),)
            drivers |= set(part.usb_drivers)
        return SystemSnapshot(
            source="sim" if self.simulated else "live",
            seq=seq,
            media_devices=tuple(devices),
            modules=tuple(modules),
            usb_devices=tuple(usb),
            open_files=tuple(f for part in parts for f in part.open_files),
            usb_drivers=tuple(sorted(drivers)),
            anomalies=tuple(anomalies),
            notes=tuple(notes),
            hosts=tuple(hosts),
        )

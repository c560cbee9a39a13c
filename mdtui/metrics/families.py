"""What ``mdtui metrics`` exports: one snapshot (and the exporter's counters) as Prometheus
metric families.

``families`` is pure: the same snapshot, counters and soak reading give the same families.
Every series carries ``host``: the machine the device lives on (``MediaDeviceView.host``),
with "" (this machine) exported as the exporter's own host label.  A value the source does
not know (None: the device could not be read, the module is built in) is left out, never
exported as 0.
"""

from __future__ import annotations

import socket
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from allocator import Event

from ..model import MediaDeviceView, SystemSnapshot

#: the labels of every per-device series
DEVICE_LABELS = ("device", "bus_info", "driver", "model", "host")
#: the holder states the model knows; both are always exported for a device that was read
HOLDER_STATES = ("bound", "deferred")
#: a soak scenario's results (mdtui/soak/scenarios.py); all are always exported
SOAK_RESULTS = ("pass", "fail", "error", "skipped")


@dataclass(frozen=True, slots=True)
class Seen:
    """What the exporter counted since it started (a snapshot does not keep it)."""

    uevents: Mapping[str, int] = field(default_factory=dict)  # by host as the model names it ("": the only one)
    snapshot_failures: int = 0  # snapshots that could not be built (the previous one stayed)

    def after(self, events: Iterable[Event], failures: int = 0, hosts: Sequence[str] = ()) -> Seen:
        """These counters, plus the uevents among ``events`` (from the machines ``hosts``
        names) and ``failures`` failed snapshots."""
        counts = Counter(self.uevents)
        counts.update(event_host(e, hosts) for e in events if e.kind == "uevent")
        return Seen(dict(counts), self.snapshot_failures + failures)


@dataclass(frozen=True, slots=True)
class SoakReading:
    """A soak report (``mdtui soak --json`` output) as read from its file."""

    path: str
    report: Mapping[str, Any] | None  # None: missing or not a soak report
    mtime: float | None  # None: the file could not be stat'ed
    problem: str | None = None  # why ``report`` is None

    @property
    def readable(self) -> bool:
        return self.report is not None


def event_host(event: Event, hosts: Sequence[str]) -> str:
    """The machine of ``hosts`` an event came from, as several sources name its device
    (``board-a/usb 1-1``, ``board-a``, ``board-a: ...``); "" when none of them."""
    device = event.device
    return next((h for h in hosts if device == h or device.startswith((f"{h}/", f"{h}:"))), "")


def local_host_label() -> str:
    """This machine's name (``socket.gethostname()``)."""
    return socket.gethostname() or "localhost"


def device_label(dev: MediaDeviceView) -> str:
    """``media0`` while registered, else the key device (``1-1``) on its own machine."""
    return dev.devnode.rsplit("/", 1)[-1] if dev.devnode else dev.local_key


def _gauge(name: str, doc: str, labels: Iterable[str]) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=list(labels))


def families(
    snap: SystemSnapshot,
    seen: Seen,
    *,
    local_host: str,
    soak: SoakReading | None = None,
    host_label: str | None = None,
) -> list[Metric]:
    """The metric families of one snapshot, the exporter's counters and the soak report
    (None: no ``--soak-report``).  ``host`` "" is the machine of a single source: the one
    it reads over ssh (its only ``snap.hosts``), else this one (``local_host``); ``host_label``
    renames it (and this machine, for the soak report)."""
    single = snap.hosts[0].name if len(snap.hosts) == 1 else ""
    alone = host_label or single or local_host

    def host_of(name: str) -> str:
        return alone if name in ("", single) else name

    info = _gauge(
        "mdtui_media_device_info",
        "A media device, always 1; its key device, USB device, parent, owner module and whether it is shared.",
        (*DEVICE_LABELS, "key", "usb_device", "parent", "owner", "shared"),
    )
    registered = _gauge(
        "mdtui_media_device_registered",
        "1 while the media device has its /dev/mediaN node (registered), 0 while it is held but not registered.",
        DEVICE_LABELS,
    )
    refcount = _gauge(
        "mdtui_allocator_refcount",
        "The Media Device Allocator's reference count (kref) of a shared media device: one per driver that holds it.",
        DEVICE_LABELS,
    )
    owner = _gauge(
        "mdtui_owner_module_refcnt",
        "/sys/module/MODULE/refcnt of the module that owns a shared media device.",
        (*DEVICE_LABELS, "module"),
    )
    holders = _gauge(
        "mdtui_holders",
        "Drivers holding a media device, by state: bound, or deferred (unbound, its reference kept by open files).",
        (*DEVICE_LABELS, "state"),
    )
    open_files = _gauge(
        "mdtui_open_files",
        "Files open on a media device's nodes (/dev/mediaN and its interfaces' nodes), removed nodes included.",
        DEVICE_LABELS,
    )
    hidden = _gauge(
        "mdtui_hidden_openers",
        "Processes whose open files on a media device's nodes this user may not inspect.",
        DEVICE_LABELS,
    )
    anomalies = _gauge(
        "mdtui_anomalies",
        "Anomalies found on a media device (broken allocator invariants, kernel WARNs about it).",
        DEVICE_LABELS,
    )
    count: Counter[str] = Counter()
    for dev in snap.media_devices:
        labels = [device_label(dev), dev.info.bus_info, dev.info.driver, dev.info.model, host_of(dev.host)]
        count[host_of(dev.host)] += 1
        shared = "true" if dev.shared else "false"
        info.add_metric(
            [*labels, dev.local_key, dev.usb_device or "", dev.parent_device or "", dev.owner or "", shared], 1
        )
        if dev.registered_known:
            registered.add_metric(labels, 1 if dev.registered else 0)
        if dev.refcount is not None:
            refcount.add_metric(labels, dev.refcount)
        refcnt = snap.owner_refcnt(dev)
        if dev.owner and refcnt is not None:
            owner.add_metric([*labels, dev.owner], refcnt)
        if dev.unread is None:  # holders mean nothing when the device could not be read
            states = Counter(h.state for h in dev.holders)
            for state in dict.fromkeys((*HOLDER_STATES, *states)):
                holders.add_metric([*labels, state], states[state])
        if dev.open_files is not None:
            open_files.add_metric(labels, len(dev.open_files))
        if dev.hidden_openers is not None:
            hidden.add_metric(labels, dev.hidden_openers)
        anomalies.add_metric(labels, len(dev.anomalies))

    known = [host_of(h.name) for h in snap.hosts] or [alone]
    connected = {host_of(h.name) for h in snap.hosts if h.state == "connected"} if snap.hosts else {alone}
    devices = _gauge(
        "mdtui_media_devices",
        "Media devices on a host (registered or held); not exported for a host that is not connected.",
        ("host",),
    )
    for host in dict.fromkeys([*known, *count]):
        if host in connected or count[host]:
            devices.add_metric([host], count[host])
    up = _gauge("mdtui_host_up", "1 while the source is connected to the host, else 0.", ("host",))
    for h in snap.hosts:
        up.add_metric([host_of(h.name)], 1 if h.state == "connected" else 0)
    if not snap.hosts:
        up.add_metric([alone], 1)
    uevents = CounterMetricFamily(
        "mdtui_uevents", "Uevents the exporter received from the source since it started.", labels=["host"]
    )
    seen_by: Counter[str] = Counter()
    for name, n in seen.uevents.items():
        seen_by[host_of(name)] += n
    for host in dict.fromkeys([*known, *seen_by]):
        uevents.add_metric([host], seen_by[host])
    machine = _gauge(
        "mdtui_machine_anomalies",
        "Anomalies not attributed to one media device (host is empty for those no host is named in); "
        "not exported for a host that is not connected.",
        ("host",),
    )
    if len(snap.hosts) > 1:  # several sources name the host first in each
        mine = {h.name: sum(a.startswith(f"{h.name}: ") for a in snap.anomalies) for h in snap.hosts}
        for name, n in mine.items():
            if host_of(name) in connected:
                machine.add_metric([host_of(name)], n)
        if len(snap.anomalies) > sum(mine.values()):
            machine.add_metric([""], len(snap.anomalies) - sum(mine.values()))
    elif alone in connected:
        machine.add_metric([alone], len(snap.anomalies))
    failures = CounterMetricFamily(
        "mdtui_snapshot_failures",
        "Snapshots the exporter could not build since it started (the metrics kept the previous one).",
        value=seen.snapshot_failures,
    )
    out: list[Metric] = [devices, up, info, registered, refcount, owner, holders, open_files, hidden, anomalies]
    out += [machine, uevents, failures]
    if soak is not None:
        out += soak_families(soak, host_label or local_host)
    return out


def soak_families(soak: SoakReading, host: str) -> list[Metric]:
    """The families of a soak report: whether it could be read, when, and its verdict."""
    readable = _gauge(
        "mdtui_soak_report_readable",
        "1 when the --soak-report file is a soak report (mdtui soak --json), 0 when it is missing or garbled.",
        ("host",),
    )
    readable.add_metric([host], 1 if soak.readable else 0)
    out: list[Metric] = [readable]
    if soak.mtime is not None:
        stamp = _gauge(
            "mdtui_soak_report_timestamp_seconds",
            "When the --soak-report file was last written (its mtime), in seconds since the epoch.",
            ("host",),
        )
        stamp.add_metric([host], soak.mtime)
        out.append(stamp)
    report = soak.report
    if report is None:
        return out
    results = Counter(str(s.get("result")) for s in report["scenarios"])
    scenarios = _gauge("mdtui_soak_scenarios", "Scenarios of the last soak, by result.", ("host", "result"))
    for result in dict.fromkeys((*SOAK_RESULTS, *results)):
        scenarios.add_metric([host, result], results[result])
    failed = _gauge(
        "mdtui_soak_last_run_failed",
        "1 when a scenario of the last soak failed (its exit status 1), else 0.",
        ("host",),
    )
    failed.add_metric([host], 1 if report["result"] == "fail" else 0)
    given = report.get("device")
    device: Mapping[str, Any] = given if isinstance(given, dict) else {}
    info = _gauge(
        "mdtui_soak_last_run_info",
        "The last soak, always 1: its verdict (pass, fail, error: it could not run), design, source and device.",
        ("host", "result", "design", "source", "kernel", "device", "bus_info"),
    )
    node = str(device.get("node") or "")
    facts = (report.get(k) or "" for k in ("design", "source", "kernel"))
    bus_info = str(device.get("bus_info") or "")
    info.add_metric([host, str(report["result"]), *map(str, facts), node.rsplit("/", 1)[-1], bus_info], 1)
    out += [scenarios, failed, info]
    seconds = report.get("seconds")
    if isinstance(seconds, int | float) and not isinstance(seconds, bool):
        duration = _gauge("mdtui_soak_last_run_duration_seconds", "How long the last soak's scenarios ran.", ("host",))
        duration.add_metric([host], seconds)
        out.append(duration)
    started = _timestamp(report.get("started"))
    if started is not None:
        start = _gauge(
            "mdtui_soak_last_run_start_timestamp_seconds",
            "When the last soak started, in seconds since the epoch.",
            ("host",),
        )
        start.add_metric([host], started)
        out.append(start)
    return out


def _timestamp(text: object) -> float | None:
    if not isinstance(text, str):
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    return when.timestamp() if when.tzinfo is not None else None


class SnapshotCollector(Collector):
    """The families of whatever ``state()`` returns when Prometheus scrapes (or the textfile
    is written); ``soak()`` reads the soak report (None: none asked for)."""

    def __init__(
        self,
        state: Callable[[], tuple[SystemSnapshot, Seen]],
        local_host: str,
        soak: Callable[[], SoakReading] | None = None,
        host_label: str | None = None,
    ) -> None:
        self._state = state
        self._local_host = local_host
        self._soak = soak
        self._host_label = host_label

    def collect(self) -> Iterator[Metric]:
        snap, seen = self._state()
        soak = self._soak() if self._soak is not None else None
        yield from families(snap, seen, local_host=self._local_host, soak=soak, host_label=self._host_label)

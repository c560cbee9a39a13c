"""The allocator's view of the selected media device.  What could not be read (the node
refused to open, the device went away) reads "unknown (why)", never 0 or "none"; what sysfs
still shows (the parent, the drivers bound there and their modules) is shown."""

from __future__ import annotations

from collections.abc import Hashable

import rich
from rich.console import Console
from rich.text import Text

from allocator.mc.topology import Topology

from ..model import ANCILLARY, MediaDeviceView, SystemSnapshot, links_of_kind
from ..render.text import OWNERLESS, bound_text, kept_chain, open_file_lines
from .lines import Lines, Pieces

#: a labelled row of the detail (the value may span lines), or a line of its own (no label)
Row = tuple[str | None, Text]


def detail_rows(dev: MediaDeviceView | None, snap: SystemSnapshot) -> list[Row]:
    if dev is None:
        if snap.source == "live":
            why = "No media device on this machine. `mdtui --source sim` shows the simulated one."
        else:
            why = "No media device. Plug one in (p) or load a driver (m)."
        return [(None, Text(why, style="dim"))]
    where = f"{dev.host}: " if dev.host else ""
    rows: list[Row] = [(None, Text(f"{where}{dev.devnode or dev.name}  {dev.info.model}", style="bold underline"))]
    labelled: list[tuple[str, Text | str]] = [_key_row(dev, snap), *_allocator_rows(dev, snap)]
    labelled.append(("holders", _holders(dev)))
    files = open_file_lines(dev)
    if files:
        labelled.append(("open files", Text("\n".join(files), style="dim" if files == ["none"] else "")))
    if dev.bound is not None and (dev.unread is not None or dev.usb_device is None):
        names = "\n".join(bound_text(b, snap, dev.host) for b in dev.bound)
        bound = Text(names) if dev.bound else Text("none", style="dim")
        labelled.append(("bound drivers", bound))
    labelled += _graph_rows(dev)
    rows += [(label, value if isinstance(value, Text) else Text(value)) for label, value in labelled]
    rows += [(None, Text(f"ANOMALY  {a}", style="bold red")) for a in dev.anomalies]
    return rows


def layout(
    rows: list[Row], width: int, console: Console, cache: dict[Hashable, list[Pieces]] | None = None
) -> tuple[Pieces, ...]:
    """Labels in a bold column, values wrapped beside it (a continuation indented under the
    value), lines of their own wrapped at ``width``.  ``cache`` keeps each row's lines
    (most updates change one row of the detail)."""
    label_width = max((len(label) for label, _ in rows if label is not None), default=0) + 2
    out: list[Pieces] = []
    for label, value in rows:
        key = (label, label_width, width, value.plain, str(value.style), tuple(value.spans))
        lines = cache.get(key) if cache is not None else None
        if lines is None:
            lines = _wrap(label, value, label_width if label is not None else 0, width, console)
            if cache is not None:
                cache[key] = lines
        out += lines
    return tuple(out)


def _wrap(label: str | None, value: Text, indent: int, width: int, console: Console) -> list[Pieces]:
    out: list[Pieces] = []
    for n, part in enumerate(value.split("\n")):
        for m, line in enumerate(part.wrap(console, max(10, width - indent), justify="default", overflow="fold")):
            head = (label if label is not None and n == m == 0 else "").ljust(indent)
            pieces = tuple((seg.text, str(seg.style or "")) for seg in line.render(console))
            out.append(((head, "bold"), *pieces) if indent else pieces)
    return out


def render_detail(dev: MediaDeviceView | None, snap: SystemSnapshot, width: int = 100) -> Text:
    """The detail as one Text, laid out at ``width`` (tests, and anything not on screen)."""
    rows = layout(detail_rows(dev, snap), width, rich.get_console())
    return Text("\n", end="").join(Text.assemble(*row) for row in rows)


def _unknown(dev: MediaDeviceView) -> Text:
    return Text(dev.unread.unknown if dev.unread is not None else "unknown", style="yellow")


def _key_row(dev: MediaDeviceView, snap: SystemSnapshot) -> tuple[str, str]:
    """The USB key device with its ids, or the real parent of any other media device."""
    if dev.usb_device is None:
        return "parent", dev.parent_device or "none"
    usb = snap.usb(dev.usb_device, dev.host)
    ident = f"  {usb.vendor:04x}:{usb.product_id:04x} {usb.product}".rstrip() if usb else ""
    return "key device", f"{dev.local_key}{ident}"  # plain text: sysfs strings are never markup


def _allocator_rows(dev: MediaDeviceView, snap: SystemSnapshot) -> list[tuple[str, Text | str]]:
    if not dev.shared:
        return [("allocator", Text("not shared: the driver's own media device", style="dim"))]
    inferred = " (inferred)" if dev.inferred else ""
    rows: list[tuple[str, Text | str]] = [
        ("allocator", Text(f"shared: media_device_usb_allocate(){inferred}", style="cyan")),
        ("refcount", _unknown(dev) if dev.refcount is None else Text(str(dev.refcount), style="bold")),
    ]
    if dev.owner:
        sharers = "" if dev.owner_refs_from_sharers is None else f" ({dev.owner_refs_from_sharers} from sharers)"
        rows.append(("owner module", f"{dev.owner}   refcnt {snap.owner_refcnt(dev)}{sharers}"))
    elif dev.unread is not None:
        rows.append(("owner module", _unknown(dev)))
    else:
        rows.append(("owner module", OWNERLESS))
    return rows


def _holders(dev: MediaDeviceView) -> Text | str:
    if dev.unread is not None:
        return _unknown(dev)
    if not dev.holders:
        return Text("none", style="dim")
    holders = Text()
    width = max(len(h.driver) for h in dev.holders)
    for n, h in enumerate(dev.holders):
        holders.append(("\n" if n else "") + f"{h.driver:<{width}}", style="bold")
        holders.append(f"  {h.interface}  ")
        holders.append(h.reason, style="yellow" if h.state == "deferred" else "")
        for chain in kept_chain(h, dev):
            holders.append("\n  " + chain, style="yellow")
    return holders


def _graph_rows(dev: MediaDeviceView) -> list[tuple[str, Text | str]]:
    if dev.registered:
        reg = Text(f"yes, {dev.devnode}")
    elif dev.registered_known:
        reg = Text("no: held, not registered", style="yellow")
    else:
        reg = _unknown(dev)
    if dev.unread is not None:
        return [("registered", reg), ("topology", _unknown(dev)), ("DEVICE_INFO", _unknown(dev))]
    t, i = dev.topology, dev.info
    counts = f"{len(t.entities)} entities, {len(t.interfaces)} interfaces, {len(t.pads)} pads, {len(t.links)} links"
    rows: list[tuple[str, Text | str]] = [
        ("registered", reg),
        ("topology", f"version {t.topology_version}"),
        ("counts", counts),
        ("DEVICE_INFO", f"driver {i.driver}, bus_info {i.bus_info}, hw_revision 0x{i.hw_revision:x}"),
    ]
    ancillary = _ancillary(t)
    if ancillary:
        rows.append(("ancillary links", Text("\n".join(ancillary))))
    return rows


#: the ancillary-link lines of the last topology asked, by identity: a device keeps one
#: topology object until its graph changes, and an update must not walk its ~1,000 links
_last_ancillary: list[tuple[Topology, list[str]]] = []


def _ancillary(t: Topology) -> list[str]:
    if _last_ancillary and _last_ancillary[0][0] is t:
        return _last_ancillary[0][1]
    names = {e.id: e.name for e in t.entities}
    lines = [
        f"{names.get(ln.source_id, f'? (entity {ln.source_id})')} ⇔ {names.get(ln.sink_id, f'? (entity {ln.sink_id})')}"
        for ln in links_of_kind(t.links, ANCILLARY)
    ]
    _last_ancillary[:] = [(t, lines)]
    return lines


class Detail(Lines):
    """Laid out again when the device or the width changes; a change redraws its lines."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self._content: list[Row] = []
        self._subject: str | None = None
        self._wrapped: dict[Hashable, list[Pieces]] = {}

    def show(self, dev: MediaDeviceView | None, snap: SystemSnapshot) -> None:
        rows = detail_rows(dev, snap)
        subject = None if dev is None else dev.key
        if rows != self._content or subject != self._subject:
            self._content = rows
            self._layout(shrink=subject != self._subject)  # another device: no blank lines kept
            self._subject = subject

    def on_resize(self) -> None:
        self._layout(shrink=True)

    def _layout(self, *, shrink: bool) -> None:
        width = self.scrollable_content_region.width or self.app.size.width  # inside its scrollbar
        if len(self._wrapped) > 256:
            self._wrapped.clear()
        self.set_rows(layout(self._content, width, self.app.console, self._wrapped), shrink=shrink)

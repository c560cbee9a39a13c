"""The allocator's view of the selected media device.  What could not be read (the node
refused to open, the device went away) reads "unknown (why)", never 0 or "none"; what sysfs
still shows (the parent, the drivers bound there and their modules) is shown."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from ..model import ANCILLARY, MediaDeviceView, SystemSnapshot, links_of_kind
from ..render.text import bound_text
from .inplace import InPlace


def render_detail(dev: MediaDeviceView | None, snap: SystemSnapshot) -> RenderableType:
    if dev is None:
        if snap.source == "live":
            return Text("No media device on this machine. `mdtui --source sim` shows the simulated one.", style="dim")
        return Text("No media device. Plug one in (p) or load a driver (m).", style="dim")
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column()
    grid.add_row(*_key_row(dev, snap))
    for row in _allocator_rows(dev):
        grid.add_row(*row)
    grid.add_row("holders", _holders(dev))
    if dev.bound is not None and (dev.unread is not None or dev.usb_device is None):
        bound = Text("\n".join(bound_text(b, snap) for b in dev.bound)) if dev.bound else Text("none", style="dim")
        grid.add_row("bound drivers", bound)
    for row in _graph_rows(dev):
        grid.add_row(*row)
    title = f"{dev.devnode or dev.name}  {dev.info.model}"
    parts: list[RenderableType] = [Text(title, style="bold underline"), grid]
    for a in dev.anomalies:
        parts.append(Text(f"ANOMALY  {a}", style="bold red"))
    return Group(*parts)


def _unknown(dev: MediaDeviceView) -> Text:
    return Text(dev.unread.unknown if dev.unread is not None else "unknown", style="yellow")


def _key_row(dev: MediaDeviceView, snap: SystemSnapshot) -> tuple[str, str]:
    """The USB key device with its ids, or the real parent of any other media device."""
    if dev.usb_device is None:
        return "parent", escape(dev.parent_device or "none")
    usb = snap.usb(dev.usb_device)
    ident = f"  {usb.vendor:04x}:{usb.product_id:04x} {usb.product}" if usb else ""
    return "key device", escape(f"{dev.key}{ident}")  # sysfs strings: never markup


def _allocator_rows(dev: MediaDeviceView) -> list[tuple[str, RenderableType]]:
    if not dev.shared:
        return [("allocator", Text("not shared: the driver's own media device", style="dim"))]
    inferred = " (inferred)" if dev.inferred else ""
    rows: list[tuple[str, RenderableType]] = [
        ("allocator", Text(f"shared: media_device_usb_allocate(){inferred}", style="cyan")),
        ("refcount", _unknown(dev) if dev.refcount is None else Text(str(dev.refcount), style="bold")),
    ]
    if dev.owner:
        sharers = "" if dev.owner_refs_from_sharers is None else f" ({dev.owner_refs_from_sharers} from sharers)"
        rows.append(("owner module", escape(f"{dev.owner}   refcnt {dev.owner_refcnt}{sharers}")))
    elif dev.unread is not None:
        rows.append(("owner module", _unknown(dev)))
    else:
        rows.append(("owner module", "built in (no module references)"))
    return rows


def _holders(dev: MediaDeviceView) -> RenderableType:
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
    return holders


def _graph_rows(dev: MediaDeviceView) -> list[tuple[str, RenderableType]]:
    if dev.registered:
        reg: RenderableType = Text(f"yes, {dev.devnode}")
    elif dev.registered_known:
        reg = Text("no: held, not registered", style="yellow")
    else:
        reg = _unknown(dev)
    if dev.unread is not None:
        return [("registered", reg), ("topology", _unknown(dev)), ("DEVICE_INFO", _unknown(dev))]
    t, i = dev.topology, dev.info
    counts = f"{len(t.entities)} entities, {len(t.interfaces)} interfaces, {len(t.pads)} pads, {len(t.links)} links"
    rows: list[tuple[str, RenderableType]] = [
        ("registered", reg),
        ("topology", f"version {t.topology_version}"),
        ("counts", counts),
        ("DEVICE_INFO", escape(f"driver {i.driver}, bus_info {i.bus_info}, hw_revision 0x{i.hw_revision:x}")),
    ]
    names = {e.id: e.name for e in t.entities}
    ancillary = [
        f"{names.get(ln.source_id, f'? (entity {ln.source_id})')} ⇔ {names.get(ln.sink_id, f'? (entity {ln.sink_id})')}"
        for ln in links_of_kind(t.links, ANCILLARY)
    ]
    if ancillary:
        rows.append(("ancillary links", Text("\n".join(ancillary))))
    return rows


class Detail(InPlace):
    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self._shown: object = False

    def show(self, dev: MediaDeviceView | None, snap: SystemSnapshot) -> None:
        key = None
        if dev is not None:
            key = (
                dev.key,
                dev.devnode,
                dev.refcount,
                dev.owner_refcnt,
                dev.holders,
                dev.anomalies,
                dev.topology,
                dev.unread,
                dev.bound,
            )
        if key is not None and key == self._shown:
            return
        same_device = key is not None and isinstance(self._shown, tuple) and self._shown[0] == key[0]
        self._shown = key
        self.set_renderable(render_detail(dev, snap), new_subject=not same_device)

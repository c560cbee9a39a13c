"""The allocator's view of the selected media device."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from ..model import MediaDeviceView, SystemSnapshot
from .inplace import InPlace


def render_detail(dev: MediaDeviceView | None, snap: SystemSnapshot) -> RenderableType:
    if dev is None:
        if snap.source == "live":
            return Text("No media device on this machine. `mdtui --source sim` shows the simulated one.", style="dim")
        return Text("No media device. Plug one in (p) or load a driver (m).", style="dim")
    t = dev.topology
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column()
    usb = snap.usb(dev.usb_device)
    ident = f"  {usb.vendor:04x}:{usb.product_id:04x} {usb.product}" if usb else ""
    grid.add_row("key device", f"{dev.key}{ident}")
    inferred = " (inferred)" if dev.inferred else ""
    if dev.shared:
        grid.add_row("allocator", Text(f"shared: media_device_usb_allocate(){inferred}", style="cyan"))
        grid.add_row("refcount", Text(str(dev.refcount), style="bold"))
        if dev.owner:
            grid.add_row(
                "owner module",
                f"{dev.owner}   refcnt {dev.owner_refcnt} ({dev.owner_refs_from_sharers} from sharers)",
            )
        else:
            grid.add_row("owner module", "built in (no module references)")
    else:
        grid.add_row("allocator", Text("not shared: the driver's own media device", style="dim"))
    holders = Text()
    width = max((len(h.driver) for h in dev.holders), default=0)
    for n, h in enumerate(dev.holders):
        holders.append(("\n" if n else "") + f"{h.driver:<{width}}", style="bold")
        holders.append(f"  {h.interface}  ")
        holders.append(h.reason, style="yellow" if h.state == "deferred" else "")
    grid.add_row("holders", holders if dev.holders else Text("none", style="dim"))
    reg = Text(f"yes, {dev.devnode}") if dev.registered else Text("no: held, not registered", style="yellow")
    grid.add_row("registered", reg)
    grid.add_row("topology", f"version {t.topology_version}")
    counts = f"{len(t.entities)} entities, {len(t.interfaces)} interfaces, {len(t.pads)} pads, {len(t.links)} links"
    grid.add_row("counts", counts)
    i = dev.info
    grid.add_row("DEVICE_INFO", f"driver {i.driver}, bus_info {i.bus_info}, hw_revision 0x{i.hw_revision:x}")
    parts: list[RenderableType] = [Text(f"{dev.devnode or dev.name}  {i.model}", style="bold underline"), grid]
    for a in dev.anomalies:
        parts.append(Text(f"ANOMALY  {a}", style="bold red"))
    return Group(*parts)


class Detail(InPlace):
    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self._shown: object = False

    def show(self, dev: MediaDeviceView | None, snap: SystemSnapshot) -> None:
        key = None
        if dev is not None:
            key = (dev.key, dev.devnode, dev.refcount, dev.owner_refcnt, dev.holders, dev.anomalies, dev.topology)
        if key is not None and key == self._shown:
            return
        same_device = key is not None and isinstance(self._shown, tuple) and self._shown[0] == key[0]
        self._shown = key
        self.set_renderable(render_detail(dev, snap), new_subject=not same_device)

"""The selected device's graph: a tree by function (pads and links below each entity, numbered
runs folded and filled in on expand), the drawn graph, and the interfaces table."""

from __future__ import annotations

from collections import defaultdict

from rich.text import Text
from textual.widgets import Static, Tree
from textual.widgets.tree import TreeNode

from allocator.mc import uapi

from ..model import MediaDeviceView
from ..render.drawing import NUMBERED, draw, fold_groups, short_function, to_text
from ..render.text import link_flags
from .tables import CompactTable

FOLDED = "folded"


class EntityTree(Tree[object]):
    def __init__(self, **kwargs: object) -> None:
        super().__init__("no device", **kwargs)  # type: ignore[arg-type]
        self._shown: object = None
        self._dev: MediaDeviceView | None = None

    def show(self, dev: MediaDeviceView | None) -> None:
        if dev is not None and self._shown is dev.topology:
            return
        self._shown = dev.topology if dev is not None else None
        self._dev = dev
        self.clear()
        if dev is None:
            self.root.set_label("no device")
            return
        t = dev.topology
        self._names = {e.id: e.name for e in t.entities}
        self._entities = {e.id: e for e in t.entities}
        self._pads: dict[int, list] = defaultdict(list)
        pad_of = {p.id: p for p in t.pads}
        for p in t.pads:
            self._pads[p.entity_id].append(p)
        self._pad_links: dict[int, list[str]] = defaultdict(list)
        for ln in t.links:
            if ln.flags & uapi.MEDIA_LNK_FL_INTERFACE_LINK or ln.source_id not in pad_of or ln.sink_id not in pad_of:
                continue
            src, dst = pad_of[ln.source_id], pad_of[ln.sink_id]
            flags = link_flags(ln.flags)
            self._pad_links[src.id].append(f"→ {self._names[dst.entity_id]}:{dst.index} [{flags}]")
            self._pad_links[dst.id].append(f"← {self._names[src.entity_id]}:{src.index} [{flags}]")
        self.root.set_label(f"{dev.name}: {len(t.entities)} entities")
        folds = fold_groups(dev)
        folded_ids = {eid for ids in folds.values() for eid in ids}
        by_function: dict[int, list[int]] = defaultdict(list)
        for e in t.entities:
            by_function[e.function].append(e.id)
        for function, ids in sorted(by_function.items(), key=lambda kv: short_function(kv[0])):
            group = self.root.add(Text(f"{short_function(function)} ({len(ids)})", style="bold"), expand=True)
            for prefix, members in folds.items():
                if members[0] in ids:
                    label = f"{prefix} #0..#{len(members) - 1} ×{len(members)} (expand)"
                    group.add(Text(label, style="italic"), data=(FOLDED, tuple(members)))
            for eid in ids:
                if eid not in folded_ids:
                    self._add_entity(group, eid)
        self.root.expand()

    def _add_entity(self, parent: TreeNode[object], eid: int) -> None:
        ent = self._entities[eid]
        node = parent.add(Text.assemble((ent.name, "bold"), f"  id {ent.id}"), data=eid)
        for p in self._pads[eid]:
            kind = "sink" if p.flags & uapi.MEDIA_PAD_FL_SINK else "source"
            pnode = node.add(Text(f"pad{p.index} {kind}"))
            for line in self._pad_links[p.id]:
                pnode.add_leaf(Text(line))

    def on_tree_node_expanded(self, event: Tree.NodeExpanded[object]) -> None:
        data = event.node.data
        if isinstance(data, tuple) and data and data[0] == FOLDED and not event.node.children:
            for eid in data[1]:
                self._add_entity(event.node, eid)


class GraphDrawing(Static):
    def __init__(self, **kwargs: object) -> None:
        super().__init__("", **kwargs)  # type: ignore[arg-type]
        self.expanded: frozenset[str] = frozenset()
        self._dev: MediaDeviceView | None = None
        self._shown: tuple[object, frozenset[str]] | None = None

    def show(self, dev: MediaDeviceView | None) -> None:
        self._dev = dev
        key = (dev.topology if dev else None, self.expanded)
        if key == self._shown:
            return
        self._shown = key
        self.update(to_text(draw(dev, self.expanded)) if dev is not None else Text("no device", style="dim"))

    def toggle_folds(self) -> bool:
        """Expand every folded run, or fold them again; returns True when expanded."""
        if self._dev is None:
            return False
        self.expanded = frozenset() if self.expanded else frozenset(fold_groups(self._dev))
        self.show(self._dev)
        return bool(self.expanded)


class InterfaceTable(CompactTable[str]):
    def on_mount(self) -> None:
        super().on_mount()
        self.cursor_type = "row"
        self.add_columns("id", "type", "node", "dev", "linked entities")

    def show(self, dev: MediaDeviceView | None) -> None:
        shown = (dev.topology, tuple(sorted(dev.devnames.items()))) if dev is not None else None
        if shown == getattr(self, "_shown", False):
            return
        self._shown = shown
        self.clear()
        if dev is None:
            return
        t = dev.topology
        names = {e.id: e.name for e in t.entities}
        linked: dict[int, list[str]] = defaultdict(list)
        for ln in t.links:
            if ln.flags & uapi.MEDIA_LNK_FL_INTERFACE_LINK:
                linked[ln.source_id].append(names.get(ln.sink_id, "?"))
        for i in t.interfaces:
            ents = linked[i.id]
            runs = {NUMBERED.sub(r"\g<prefix>", n) for n in ents}
            shown = ", ".join(ents) if len(ents) <= 3 else f"{len(ents)}: {', '.join(sorted(runs))}"
            self.add_row(
                f"{i.id:#010x}",
                uapi.interface_type_name(i.intf_type).removeprefix("MEDIA_INTF_T_"),
                dev.devnames.get((i.major, i.minor), "(gone)"),
                f"{i.major}:{i.minor}",
                shown,
            )

"""The selected device's graph: a tree by function (pads and links below each entity, numbered
runs folded and filled in on expand; ancillary links below the entities they join; an entity
that pads or links name but the graph lacks under "not in the graph"), the drawn graph, and
the interfaces table."""

from __future__ import annotations

from collections import defaultdict

from rich.text import Text
from textual.widgets import Static, Tree
from textual.widgets.tree import TreeNode

from allocator.mc import uapi
from allocator.mc.topology import Topology

from ..model import ANCILLARY, DATA, INTERFACE, MediaDeviceView, links_of_kind
from ..render.drawing import NUMBERED, draw, fold_groups, short_function, to_text, unknown_entity
from ..render.text import link_flags
from .tables import CompactTable

FOLDED = "folded"


def entity_names(t: Topology) -> dict[int, str]:
    """Entity names by id, with a name for every entity a pad or link mentions that the
    graph does not have (a kernel that lies): ``? entity 42``."""
    names = {e.id: e.name for e in t.entities}
    mentioned = {p.entity_id for p in t.pads}
    mentioned |= {i for ln in links_of_kind(t.links, ANCILLARY) for i in (ln.source_id, ln.sink_id)}
    for eid in mentioned - set(names):
        names[eid] = unknown_entity(eid)
    return names


def pad_links(t: Topology, names: dict[int, str]) -> dict[int, list[str]]:
    """Per pad id, its data links as ``→ sink:pad [flags]`` / ``← source:pad [flags]``."""
    pad_of = {p.id: p for p in t.pads}
    out: dict[int, list[str]] = defaultdict(list)
    for ln in links_of_kind(t.links, DATA):
        if ln.source_id not in pad_of or ln.sink_id not in pad_of:
            continue
        src, dst = pad_of[ln.source_id], pad_of[ln.sink_id]
        flags = link_flags(ln.flags)
        out[src.id].append(f"→ {names[dst.entity_id]}:{dst.index} [{flags}]")
        out[dst.id].append(f"← {names[src.entity_id]}:{src.index} [{flags}]")
    return out


def ancillary_links(t: Topology, names: dict[int, str]) -> dict[int, list[str]]:
    """Per entity, its ancillary links (either end): ``ancillary ⇔ lens [ENABLED,IMMUTABLE]``."""
    out: dict[int, list[str]] = defaultdict(list)
    for ln in links_of_kind(t.links, ANCILLARY):
        flags = link_flags(ln.flags)
        out[ln.source_id].append(f"ancillary ⇔ {names[ln.sink_id]} [{flags}]")
        out[ln.sink_id].append(f"ancillary ⇔ {names[ln.source_id]} [{flags}] (primary)")
    return out


class EntityTree(Tree[object]):
    def __init__(self, **kwargs: object) -> None:
        # a Text label: a str is parsed as markup, which imports rich's emoji table (~6 ms of start-up)
        super().__init__(Text("no device"), **kwargs)  # type: ignore[arg-type]
        self._shown: object = None
        self._dev: MediaDeviceView | None = None

    def show(self, dev: MediaDeviceView | None) -> None:
        # the graph (by identity first, cheap; a live source reads an equal graph anew every
        # re-read, and rebuilding the tree would fold what the user unfolded), or for a
        # device that could not be read (all have the same empty graph) which one and why
        shown = None if dev is None else dev.topology if dev.unread is None else (dev.key, dev.unread)
        if dev is not None and (self._shown is shown or self._shown == shown):
            return
        self._shown = shown
        self._dev = dev
        self.clear()
        if dev is None:
            self.root.set_label("no device")
            return
        t = dev.topology
        self._names = entity_names(t)
        self._entities = {e.id: e for e in t.entities}
        self._pads: dict[int, list] = defaultdict(list)
        for p in t.pads:
            self._pads[p.entity_id].append(p)
        self._pad_links = pad_links(t, self._names)
        self._ancillary = ancillary_links(t, self._names)
        label = f"{dev.name}: {len(t.entities)} entities"
        self.root.set_label(label if dev.unread is None else f"{dev.name}: graph {dev.unread.unknown}")
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
        missing = sorted(set(self._names) - set(self._entities))
        if missing:  # pads or links whose entity the graph does not have
            group = self.root.add(Text(f"not in the graph ({len(missing)})", style="bold red"), expand=True)
            for eid in missing:
                self._add_entity(group, eid)
        self.root.expand()

    def _add_entity(self, parent: TreeNode[object], eid: int) -> None:
        ent = self._entities.get(eid)
        name = ent.name if ent is not None else self._names[eid]
        node = parent.add(Text.assemble((name, "bold" if ent else "bold red"), f"  id {eid}"), data=eid)
        for p in self._pads[eid]:
            kind = "sink" if p.flags & uapi.MEDIA_PAD_FL_SINK else "source"
            pnode = node.add(Text(f"pad{p.index} {kind}"))
            for line in self._pad_links[p.id]:
                pnode.add_leaf(Text(line))
        for line in self._ancillary.get(eid, ()):
            node.add_leaf(Text(line, style="magenta"))

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
        self._shown: tuple[object, object, frozenset[str]] | None = None

    def show(self, dev: MediaDeviceView | None) -> None:
        self._dev = dev
        key = (dev.topology if dev else None, dev.unread if dev else None, self.expanded)
        if key == self._shown:
            return
        self._shown = key
        if dev is None:
            self.update(Text("no device", style="dim"))
        elif dev.unread is not None:
            self.update(Text(f"graph {dev.unread.unknown}", style="yellow"))
        else:
            self.update(to_text(draw(dev, self.expanded)))

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
        for ln in links_of_kind(t.links, INTERFACE):
            linked[ln.source_id].append(names.get(ln.sink_id, "?"))
        for i in t.interfaces:
            ents = linked[i.id]
            runs = {NUMBERED.sub(r"\g<prefix>", n) for n in ents}
            shown = ", ".join(ents) if len(ents) <= 3 else f"{len(ents)}: {', '.join(sorted(runs))}"
            self.add_row(  # Text cells: a str would be parsed as markup, and names come from the kernel
                Text(f"{i.id:#010x}"),
                Text(uapi.interface_type_name(i.intf_type).removeprefix("MEDIA_INTF_T_")),
                Text(dev.devnames.get((i.major, i.minor), "(gone)")),
                Text(f"{i.major}:{i.minor}"),
                Text(shown),
            )

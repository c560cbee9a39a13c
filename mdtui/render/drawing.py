"""A drawn view of a media device's data links that stays readable on the HVR-950Q.

Entities are laid out in columns by their distance from the graph's sources (connectors,
sensors); each is a box listing its outgoing data links per pad, solid when enabled and
dotted when not, and its ancillary links (a sensor's lens or flash: entity to entity, no
pads) marked ◇.  A pad or link naming an entity the graph does not have is drawn as an
unknown entity (red), not dropped.  Runs of numbered entities of one function (``demux-tsout #0`` .. ``#255``) fold
into one box "×256" unless their prefix is in ``expanded``.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence

from rich.console import Console, Group, RenderableType
from rich.measure import Measurement
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from allocator.mc import uapi

from ..model import ANCILLARY, DATA, MediaDeviceView, links_of_kind

NUMBERED = re.compile(r"^(?P<prefix>.*?) ?#(?P<n>\d+)$")
FOLD_AT = 5
UNKNOWN_FUNCTION = -1  # the function of an entity the graph does not have


def short_function(function: int) -> str:
    return uapi.function_name(function).removeprefix("MEDIA_ENT_F_")


def fold_groups(dev: MediaDeviceView) -> dict[str, list[int]]:
    """Numbered entities by prefix, for prefixes with at least FOLD_AT members."""
    groups: dict[str, list[int]] = defaultdict(list)
    for e in dev.topology.entities:
        m = NUMBERED.match(e.name)
        if m:
            groups[m["prefix"]].append(e.id)
    return {p: ids for p, ids in groups.items() if len(ids) >= FOLD_AT}


def unknown_entity(eid: int) -> str:
    """The name a pad's entity gets when the graph does not have it (a kernel that lies)."""
    return f"? entity {eid}"


def draw(dev: MediaDeviceView, expanded: frozenset[str] = frozenset()) -> RenderableType:
    t = dev.topology
    folds = {p: ids for p, ids in fold_groups(dev).items() if p not in expanded}
    node_of: dict[int, str] = {e.id: e.name for e in t.entities}
    for prefix, ids in folds.items():
        for eid in ids:
            node_of[eid] = f"{prefix} ×{len(ids)}"
    folded_ids = {eid for ids in folds.values() for eid in ids}
    pad = {p.id: (p.entity_id, p.index) for p in t.pads}
    # per source node: (target, target pad or -1 when folded, enabled) -> source pads
    out_edges: dict[str, dict[tuple[str, int, bool], list[int]]] = defaultdict(lambda: defaultdict(list))
    preds: dict[str, set[str]] = defaultdict(set)
    nodes: dict[str, int] = {}
    for e in t.entities:
        nodes.setdefault(node_of[e.id], e.function)

    def node(eid: int) -> str:
        if eid not in node_of:  # a pad or link naming an entity the graph lacks
            node_of[eid] = unknown_entity(eid)
            nodes.setdefault(node_of[eid], UNKNOWN_FUNCTION)
        return node_of[eid]

    for ln in links_of_kind(t.links, DATA):
        if ln.source_id not in pad or ln.sink_id not in pad:
            continue
        (se, si), (de, di) = pad[ln.source_id], pad[ln.sink_id]
        src, dst = node(se), node(de)
        out_edges[src][(dst, -1 if de in folded_ids else di, bool(ln.flags & 1))].append(si)
        preds[dst].add(src)
    ancillary: dict[str, list[tuple[str, bool]]] = defaultdict(list)
    for ln in links_of_kind(t.links, ANCILLARY):  # entity to entity: listed in the primary's box
        ancillary[node(ln.source_id)].append((node(ln.sink_id), bool(ln.flags & 1)))
    layer: dict[str, int] = {}

    def depth(n: str, seen: frozenset[str] = frozenset()) -> int:
        if n not in layer:
            layer[n] = 1 + max((depth(p, seen | {n}) for p in preds[n] if p not in seen), default=-1)
        return layer[n]

    for n in nodes:
        depth(n)
    columns: dict[int, list[str]] = defaultdict(list)
    for n in nodes:
        columns[layer[n]].append(n)
    grid = Table.grid(padding=(0, 1))
    for _ in columns:
        grid.add_column(vertical="top")
    cells = [
        Group(*(_box(n, nodes[n], out_edges.get(n, {}), ancillary.get(n, [])) for n in columns[c]))
        for c in sorted(columns)
    ]
    grid.add_row(*cells)
    return grid


def pad_range(pads: list[int]) -> str:
    """``[1, 2, ..., 256]`` -> ``1-256``; ``[1, 3]`` -> ``1,3``."""
    pads = sorted(set(pads))
    if len(pads) > 2 and pads[-1] - pads[0] == len(pads) - 1:
        return f"{pads[0]}-{pads[-1]}"
    return ",".join(map(str, pads))


def _box(
    name: str,
    function: int,
    edges: dict[tuple[str, int, bool], list[int]],
    ancillary: Sequence[tuple[str, bool]] = (),
) -> Panel:
    body = Text()  # only the function is dim; a Text's own style would dim every link under it too
    body.append(short_function(function) if function != UNKNOWN_FUNCTION else "not in the graph", style="dim")
    for (dst, dst_pad, enabled), pads in sorted(edges.items(), key=lambda kv: (min(kv[1]), kv[0][0])):
        arrow, style = ("━▶", "green") if enabled else ("┄▷", "dim")
        target = dst if dst_pad < 0 else f"{dst}:{dst_pad}"
        count = f" ({len(pads)} links)" if len(pads) > 1 and dst_pad >= 0 else ""
        body.append(f"\n{pad_range(pads)} {arrow} ", style=style)
        body.append(f"{target}{count}", style="" if enabled else "dim")
    for other, enabled in sorted(ancillary):
        body.append("\n◇ ", style="magenta" if enabled else "dim")
        body.append(f"{other} (ancillary)", style="" if enabled else "dim")
    border = "red" if function == UNKNOWN_FUNCTION else "blue"
    title = Text(name)  # a name from the kernel is never markup
    return Panel(body, title=title, title_align="left", border_style=border, expand=False)


def to_text(renderable: RenderableType) -> Text:
    """Render once, at the drawing's natural width, into a styled ``Text``: a widget can
    measure and paint that cheaply, where a grid of panels is re-measured on every layout."""
    console = Console(width=10_000, color_system="truecolor", file=None, legacy_windows=False)
    options = console.options
    width = Measurement.get(console, options, renderable).maximum
    lines = console.render_lines(renderable, options.update_width(width), pad=False)
    text = Text(no_wrap=True, overflow="ignore")
    for n, line in enumerate(lines):
        if n:
            text.append("\n")
        for segment in line:
            if not segment.control:
                text.append(segment.text, segment.style)
    return text

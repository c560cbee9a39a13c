"""Lines of styled text, drawn with Textual's line API.

Most events change a line or two of what is on screen (a refcount, an owner module's refcnt,
a holder).  A widget that re-renders its whole renderable per update, or a table that drops
its render caches on every cell update, makes each frame repaint far more than changed: the
rule here is that a frame renders only lines whose content changed.  Each line is a hashable
row; its strip is rendered once and looked up by (row, style) until the row leaves the
widget, so lines that only moved (a log scrolling) cost a dictionary lookup.  See
bench/RESULTS.md (issue #10) for the figures behind it.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style
from textual.geometry import Region, Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

from ..render.text import VISIBLE

#: a row of plain pieces: ``((text, style), ...)``, hashable and cheap to compare
Pieces = tuple[tuple[str, str], ...]




def pieces_width(row: Pieces) -> int:
    return sum(cell_len(text.translate(VISIBLE)) for text, _ in row)


class Lines(ScrollView):
    """Rows (any hashable value) drawn one per line; ``render_row`` turns a row into the
    ``Pieces`` of its line (by default a row is its pieces).  ``header`` rows stay at the top when it scrolls."""

    DEFAULT_CSS = """
    Lines {
        height: auto;
        overflow: hidden hidden;
    }
    """

    #: a row cut by the right edge ends in "…" (for widgets that never scroll sideways)
    ELLIPSIS = False

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._rows: Sequence[Hashable] = ()
        self._header: Sequence[Hashable] = ()
        self._widths: dict[Hashable, int] = {}
        self._strips: dict[tuple[Hashable, Style], Strip] = {}
        self._base: Style | None = None  # rich_style walks every ancestor: once per style change

    # -- what subclasses say ---------------------------------------------------------------

    def render_row(self, row: Hashable) -> Pieces:
        return row  # type: ignore[return-value]

    def row_width(self, row: Hashable) -> int:
        return pieces_width(self.render_row(row))

    def row_style(self, index: int) -> Style | None:
        """An extra style for the row at ``index`` (a cursor, stripes); ``None`` for none."""
        return None

    def row_style_wins(self, index: int) -> bool:
        """Whether the row's extra style (a cursor) is laid over the pieces' own colours, as
        Textual's DataTable lays its cursor: a state's colour on the cursor's background can
        be unreadable (orange on blue; on a 16-colour terminal, red on cyan)."""
        return False

    def header_style(self) -> Style | None:
        return None

    # -- content -------------------------------------------------------------------------

    @property
    def rows(self) -> Sequence[Hashable]:
        return self._rows

    def set_rows(
        self,
        rows: Sequence[Hashable],
        header: Sequence[Hashable] = (),
        *,
        width: int | None = None,
        shrink: bool = False,
    ) -> None:
        """Show ``rows``; only the lines whose row changed are redrawn.  ``width``: the widest
        row when the caller knows it (else each row is measured, once).  The widget's
        virtual size grows with its rows but shrinks only when ``shrink`` is given (a new
        subject, a filter): a size change lays the whole screen out again, and a line or a
        column that comes and goes with every other event must not do that each time."""
        old_rows, old_header = self._rows, self._header
        self._rows, self._header = rows, header
        if width is None:
            widths = self._widths
            for row in (*header, *rows):
                if row not in widths:
                    widths[row] = self.row_width(row)
            width = max((widths[r] for r in (*header, *rows)), default=0)
            if len(widths) > 4 * (len(header) + len(rows)) + 64:  # forget rows that left
                self._widths = {row: widths[row] for row in (*header, *rows)}
        if len(self._strips) > 4 * (len(header) + len(rows)) + 64:
            shown = {*header, *rows}
            self._strips = {key: s for key, s in self._strips.items() if key[0] in shown}
        size = Size(width, len(header) + len(rows))
        if not shrink:
            size = Size(max(size.width, self.virtual_size.width), max(size.height, self.virtual_size.height))
        if size != self.virtual_size:
            self.virtual_size = size  # a reactive that lays the screen out again
            self.refresh()
            return
        top, height = self.scroll_offset.y, self.size.height
        changed = [y for y in range(len(header)) if y >= len(old_header) or header[y] != old_header[y]]
        for index in range(top, min(max(len(rows), len(old_rows)), top + height)):
            if index >= len(old_rows) or index >= len(rows) or rows[index] != old_rows[index]:
                changed.append(len(header) + index - top)
        if changed:  # one region from the first changed line to the last
            self.refresh(
                Region(0, min(changed), max(self.virtual_size.width, self.size.width), max(changed) - min(changed) + 1)
            )

    def redraw_row(self, index: int) -> None:
        """Redraw the line of ``rows[index]`` (its ``row_style`` changed)."""
        self.refresh_line(index + len(self._header))

    # -- drawing -------------------------------------------------------------------------

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        width = self.scrollable_content_region.width  # not under a scrollbar
        base = self._base
        if base is None:
            base = self._base = self.rich_style
        header = len(self._header)
        over = None
        if y < header:
            row: Hashable = self._header[y]
            extra = self.header_style()
        elif (index := y - header + scroll_y) < len(self._rows):
            row = self._rows[index]
            extra = self.row_style(index)
            over = extra if extra is not None and self.row_style_wins(index) else None
        else:
            return Strip.blank(width, base)
        if extra is not None:
            base = base + extra
        key = (row, base)
        strip = self._strips.get(key)
        if strip is None:
            parse = Style.parse  # cached by rich
            pieces = self.render_row(row)
            segments = [Segment(text.translate(VISIBLE), parse(style) if style else None) for text, style in pieces]
            if over is not None:
                segments = list(Segment.apply_style(segments, post_style=over))
            strip = self._strips[key] = Strip(segments).apply_style(base)
        if self.ELLIPSIS and strip.cell_length > scroll_x + width > 0:
            return Strip.join([strip.crop(scroll_x, scroll_x + width - 1), Strip([Segment("…", base)])])
        return strip.crop_extend(scroll_x, scroll_x + width, base)

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._strips.clear()
        self._base = None

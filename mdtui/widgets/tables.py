"""DataTable with render caches sized to what it can show.

DataTable keys its render caches on an update counter, so every ``update_cell`` leaves the
previous renders behind until its LRUs (up to 10,000 cells) evict them.  With updates
arriving many times a second those stale renders were ~100,000 objects for the cyclic
garbage collector to walk; a few screens' worth of cache is all a small table needs.
"""

from __future__ import annotations

from typing import TypeVar

from textual.widgets import DataTable

CellType = TypeVar("CellType")


class CompactTable(DataTable[CellType]):
    CACHED_LINES = 200

    def on_mount(self) -> None:
        self._row_render_cache.maxsize = self.CACHED_LINES
        self._cell_render_cache.maxsize = self.CACHED_LINES * 8
        self._line_cache.maxsize = self.CACHED_LINES

"""A widget that shows one renderable and redraws it in place.

``Static.update`` re-lays out the whole screen on every call; the detail and the module list
change with most events (the owner module's refcnt moves with every sharer), and a layout is
only needed when their height grows.  Shorter content keeps the space it had (the lines
below it are blank) until the caller says the subject changed or the screen is laid out for
another reason: a holder coming and going does not make the panels below jump each time.
"""

from __future__ import annotations

from rich.console import RenderableType
from rich.text import Text
from textual.widget import Widget


class InPlace(Widget):
    DEFAULT_CSS = "InPlace { height: auto; }"

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._renderable: RenderableType = Text("")
        self._height = -1

    def render(self) -> RenderableType:
        return self._renderable

    def set_renderable(self, renderable: RenderableType, *, new_subject: bool = True) -> None:
        self._renderable = renderable
        console = self.app.console
        width = self.content_size.width or self.app.size.width
        height = len(console.render_lines(renderable, console.options.update_width(max(1, width)), pad=False))
        self.refresh(layout=height > self.content_size.height or (new_subject and height != self._height))
        self._height = height

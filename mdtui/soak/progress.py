"""Progress on a terminal: a rich progress bar per scenario, with its loops and the errors
found so far.  Drawn on standard error, and only when it is a terminal: nothing of it reaches
a pipe, a file or a test's output."""

from __future__ import annotations

from typing import IO, Any

from .scenarios import Progress, ScenarioResult


def for_stream(stream: IO[str]) -> Progress:
    """A progress bar on ``stream`` when it is a terminal, else one that draws nothing."""
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):
        tty = False
    return Bar(stream) if tty else Progress()


class Bar(Progress):
    def __init__(self, stream: IO[str]) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
        from rich.progress import Progress as RichProgress

        self.bar = RichProgress(
            TextColumn("{task.description:<24}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loops"),
            TextColumn("[{task.fields[style]}]{task.fields[errors]} errors"),
            TimeElapsedColumn(),
            console=Console(file=stream),
            transient=True,
        )
        self.tasks: dict[str, Any] = {}
        self.totals: dict[str, int | None] = {}
        self.started = False

    def start(self, scenario: str, total: int | None) -> None:
        if not self.started:
            self.bar.start()
            self.started = True
        self.tasks[scenario] = self.bar.add_task(scenario, total=total, errors=0, style="green")
        self.totals[scenario] = total

    def update(self, scenario: str, done: int, errors: int) -> None:
        style = "red" if errors else "green"
        self.bar.update(self.tasks[scenario], completed=done, errors=errors, style=style)

    def finish(self, scenario: str, result: ScenarioResult) -> None:
        style = "red" if result.errors else "green"
        total = self.totals.get(scenario) or result.loops
        self.bar.update(self.tasks[scenario], total=total, completed=result.loops, errors=result.errors, style=style)

    def stop(self) -> None:
        if self.started:
            self.bar.stop()
            self.started = False

"""One lifecycle command with its arguments (the registry of commands: mdtui/commands.py).
Standard library only, Python 3.8: the remote agent takes steps too."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Step:
    """One lifecycle command with its arguments, as a script line or a choice makes it."""

    line: int  # the script line it came from; 0 when it came from elsewhere
    command: str
    args: tuple[str, ...]
    host: str = ""  # the machine to take it on, with several sources ("": the only one)

    def __str__(self) -> str:
        return " ".join((self.command, *self.args))

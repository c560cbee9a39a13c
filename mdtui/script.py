"""Lifecycle scripts: one command per line, in the words a user types on a real system.

    # comments and blank lines are ignored
    modprobe au0828
    plug hvr950q [1-3]
    unbind au0828 1-1:1.0
    open /dev/video0
    close /dev/video0

The whole file is parsed before anything runs; a malformed line is refused with its line
number.  When it runs, a step the kernel refuses (rmmod of a busy module) becomes an error
event with its errno name and the script goes on.
"""

from __future__ import annotations

from pathlib import Path

from .commands import COMMANDS, LIFECYCLE, Step

#: the largest script read (a lifecycle of ~10,000 lines); anything longer is refused unread
MAX_BYTES = 256 * 1024


class ScriptError(ValueError):
    """A malformed script, with where: ``FILE:LINE: message``."""

    def __init__(self, path: str, line: int, message: str) -> None:
        super().__init__(f"{path}:{line}: {message}" if line else f"{path}: {message}")
        self.line = line


def parse(text: str, path: str = "<script>") -> list[Step]:
    steps = []
    for number, raw in enumerate(text.splitlines(), start=1):
        words = raw.split("#", 1)[0].split()
        if not words:
            continue
        command, args = words[0], tuple(words[1:])
        spec = COMMANDS.get(command)
        if spec is None or not spec.lifecycle:
            known = ", ".join(c.name for c in LIFECYCLE)
            raise ScriptError(path, number, f"unknown command '{command}' (known: {known})")
        low, high = spec.arity
        if not low <= len(args) <= high:
            raise ScriptError(path, number, f"usage: {command} {spec.usage}")
        if command in ("open", "close") and not args[0].startswith("/dev/"):
            raise ScriptError(path, number, f"{command}: NODE must be a /dev path, not '{args[0]}'")
        steps.append(Step(number, command, args))
    return steps


def load(path: str | Path) -> list[Step]:
    """Read and parse a script file.  What is read is bounded (``/dev/zero`` or a huge file
    is refused, not read into memory), it must be UTF-8 text (a byte-order mark is allowed)."""
    p = Path(path)
    try:
        with p.open("rb") as f:
            data = f.read(MAX_BYTES + 1)
    except OSError as exc:
        raise ScriptError(str(p), 0, f"cannot read: {exc.strerror}") from exc
    if b"\0" in data:
        raise ScriptError(str(p), data[: data.index(b"\0")].count(b"\n") + 1, "not a text file (NUL byte)")
    if len(data) > MAX_BYTES:
        raise ScriptError(str(p), 0, f"too long: a script is at most {MAX_BYTES // 1024} KiB")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ScriptError(str(p), line, f"not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    return parse(text, str(p))

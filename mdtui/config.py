"""The configuration file, and ``mdtui config``.

One file is read: the one ``--config PATH`` names, else ``$MDTUI_CONFIG``, else
``$XDG_CONFIG_HOME/mdtui/config.toml`` (``~/.config`` when XDG_CONFIG_HOME is unset); only
the last may be missing.  It is parsed with ``tomllib`` and checked whole before anything is
used: a bad file is refused with its line and the key named, never half-applied.  What the
command line says wins over the file; ``mdtui config --print`` shows every effective value
and where it came from.
"""

from __future__ import annotations

import argparse
import dataclasses
import errno
import json
import os
import re
import stat
import sys
import tomllib
import unicodedata
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO

from .commands import COMMANDS

#: confirmation policies: ask before a destructive step (unbind, unplug, rmmod) ...
CONFIRM = {
    "live": "on a live or remote machine (the default)",
    "always": "everywhere, the simulation too",
    "never": "never",
}
#: the event log's length: entries kept for filtering
EVENT_LOG_DEFAULT = 5000
EVENT_LOG_RANGE = (100, 1_000_000)

DESCRIPTION = """\
Show the configuration mdtui runs with: each value, and where it came from (the command
line, the configuration file and its line, the theme last chosen in the palette, or the
default).  The file is the one --config names, else $MDTUI_CONFIG, else
$XDG_CONFIG_HOME/mdtui/config.toml (~/.config/mdtui/config.toml).  What is printed is itself
a valid configuration file.  A bad file is refused with its line and key (exit status 2).

keys:
  theme = "NAME"             the TUI's theme, one of Textual's (see mdtui --help)
  sources = ["SOURCE", ...]  the default --source list (sim, live, auto, bundle:FILE, ssh:HOST)
  hosts = ["[USER@]HOST[:PORT]", ...]
                             remote machines shown beside the sources (as ssh:HOST)
  confirm = "live"           ask before unbind, unplug, rmmod: live (on a live or remote
                             machine), always (the simulation too) or never
  event_log = 5000           events the log keeps for filtering (100 to 1000000)
  [keymap]                   a binding's id = its keys, as Textual's keymaps take them:
                             unbind = "U" or bind = "ctrl+b,B" (ids: see below)

binding ids: {ids}

examples:
  mdtui config --print
  mdtui --config ~/lab.toml --theme nord config --print
""".format(ids=", ".join(COMMANDS))

#: how the origin of a theme remembered from the palette ends
PALETTE = "(the palette's last choice)"

#: the keys a file may set, each with the kind of value it takes
KEYS = ("theme", "sources", "hosts", "confirm", "event_log", "keymap")

#: the keys Textual's App binds itself (no id, so no keymap can move them)
TEXTUAL_KEYS = {"ctrl+p": "the command palette", "ctrl+q": "Textual's quit", "ctrl+c": "Textual's quit"}

MODIFIERS = ("ctrl", "shift", "alt", "meta", "super", "hyper")


class ConfigError(ValueError):
    """A configuration file mdtui refuses, with the line and key it refuses it for."""

    def __init__(self, path: Path, message: str, key: str | None = None, line: int | None = None) -> None:
        self.path, self.message, self.key, self.line = path, message, key, line
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else str(self.path)
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"


@dataclasses.dataclass(frozen=True)
class Config:
    """A file's settings, checked: only the keys it set, each with its line."""

    path: Path | None = None
    #: how the path was found: --config, $MDTUI_CONFIG, $XDG_CONFIG_HOME or ~/.config
    found_by: str = ""
    values: Mapping[str, object] = dataclasses.field(default_factory=dict)
    lines: Mapping[str, int] = dataclasses.field(default_factory=dict)

    def origin(self, key: str) -> str:
        return f"{self.path}:{self.lines[key]}" if key in self.lines else str(self.path)


def locate(explicit: str | None, environ: Mapping[str, str] = os.environ) -> tuple[Path, str, bool]:
    """The file to read, how it was found, and whether it must exist (it must when named)."""
    if explicit is not None:
        return Path(explicit).expanduser(), "--config", True
    if environ.get("MDTUI_CONFIG"):
        return Path(environ["MDTUI_CONFIG"]).expanduser(), "$MDTUI_CONFIG", True
    if environ.get("XDG_CONFIG_HOME"):
        return Path(environ["XDG_CONFIG_HOME"]) / "mdtui" / "config.toml", "$XDG_CONFIG_HOME", False
    return Path.home() / ".config" / "mdtui" / "config.toml", "~/.config", False


def load(explicit: str | None = None, environ: Mapping[str, str] = os.environ) -> Config:
    """Read and check the configuration file.  Raises ``ConfigError`` for a file mdtui
    refuses, ``OSError`` for a named file that cannot be read."""
    if explicit == "":
        raise OSError(errno.EINVAL, "--config '': name a file")
    path, found_by, required = locate(explicit, environ)
    try:
        data = _read(path)
    except FileNotFoundError:
        if required:
            raise FileNotFoundError(2, f"{found_by} {path}: no such file", str(path)) from None
        return Config(found_by=found_by)
    except OSError as exc:
        raise type(exc)(exc.errno, f"{found_by} {path}: {exc.strerror}", str(path)) from None
    try:
        text = data.decode().removeprefix("\ufeff")  # a BOM, as some editors write one
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigError(path, f"not UTF-8 (byte {data[exc.start]:#04x})", line=line) from None
    lines, twice = key_lines(text)
    try:
        table = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        if twice:  # tomllib says where it noticed ("at end of document"), not which key
            key, (first, again) = next(iter(twice.items()))
            raise ConfigError(path, f"set twice (first at line {first})", key, again) from None
        raise ConfigError(path, f"not TOML: {exc}", line=_decode_error_line(exc)) from None
    values = check(table, lambda key, message: ConfigError(path, message, key, lines.get(key)))
    return Config(path, found_by, values, {k: v for k, v in lines.items() if k in values or "." in k})


#: a configuration file is a few hundred bytes; anything this big is something else
LIMIT = 1 << 20


def _read(path: Path) -> bytes:
    """The file's bytes: a regular file of at most ``LIMIT`` bytes (not /dev/zero, not a
    FIFO that nobody writes to: opened without blocking, then looked at)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
        data = f.read(LIMIT + 1)
    if len(data) > LIMIT:
        raise OSError(errno.EFBIG, f"larger than {LIMIT >> 20} MiB: not a configuration file")
    return data


def _decode_error_line(exc: tomllib.TOMLDecodeError) -> int | None:
    found = re.search(r"at line (\d+)", str(exc))
    return int(found.group(1)) if found else None


#: a key as a person writes it: bare, "quoted" or 'quoted', dotted (keymap.unbind)
KEY = r"""(?:"[^"]*"|'[^']*'|[A-Za-z0-9_\-]+)"""
KEY_PARTS = re.compile(r"""("[^"]*"|'[^']*'|[A-Za-z0-9_\-]+)""")


def key_lines(text: str) -> tuple[dict[str, int], dict[str, tuple[int, int]]]:
    """Where each key is set (``theme``, ``keymap``, ``keymap.unbind`` → its line; a table
    → its header's line), and the keys set twice (→ both lines).  Keys are found as a person
    writes them: bare, quoted, dotted, under a ``[table]`` header or in an inline table."""
    lines: dict[str, int] = {}
    twice: dict[str, tuple[int, int]] = {}

    def found(path: list[str], number: int, leaf: bool) -> None:
        for depth in range(1, len(path) + 1):
            name = ".".join(path[:depth])
            if name in lines and leaf and depth == len(path) and name not in twice:
                twice[name] = (lines[name], number)
            lines.setdefault(name, number)

    table: list[str] = []
    inside = ""  # the quotes of a multi-line string the lines are part of
    for number, line in enumerate(text.split("\n"), 1):  # TOML's lines: str.splitlines knows more
        if inside:
            inside = "" if line.count(inside) % 2 else inside
            continue
        inside = next((q for q in ('"""', "'''") if line.count(q) % 2), "")
        header = re.match(rf"\s*\[\s*({KEY}(?:\s*\.\s*{KEY})*)\s*\]\s*(#.*)?$", line)
        if header:
            table = [p.strip("\"'") for p in KEY_PARTS.findall(header.group(1))]
            found(table, number, leaf=True)
            continue
        key = re.match(rf"\s*({KEY}(?:\s*\.\s*{KEY})*)\s*=\s*(.*)", line)
        if key:
            path = [*table, *(p.strip("\"'") for p in KEY_PARTS.findall(key.group(1)))]
            found(path, number, leaf=True)
            inline = re.match(r"\{(.*)\}", key.group(2).strip())
            for inner in re.findall(rf"({KEY})\s*=", inline.group(1) if inline else ""):
                found([*path, inner.strip("\"'")], number, leaf=True)
    return lines, twice


def check(table: Mapping[str, object], error: Callable[[str, str], ConfigError]) -> dict[str, object]:
    """Every key of the file checked; the values as mdtui uses them.  ``error(key, message)``
    makes the exception raised for the first bad one."""
    from .cli import THEMES, source_name  # the command line's own checks

    values: dict[str, object] = {}
    for key, value in table.items():
        if key not in KEYS:
            raise error(key, f"not a setting (known: {', '.join(KEYS)})")
        if key == "theme":
            if value not in THEMES:
                raise error(key, f"no theme {_brief(repr(value))} (known: {', '.join(THEMES)})")
        elif key in ("sources", "hosts"):
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise error(key, f"a list of strings, not {_brief(_toml(value))}")
            if key == "sources" and not value:
                raise error(key, "no source at all: name one, or leave the setting out (auto)")
            for item in value:
                try:
                    source_name(item if key == "sources" else f"ssh:{item}")
                except argparse.ArgumentTypeError as exc:
                    raise error(key, _brief(str(exc), 200)) from None
            value = tuple(value)
        elif key == "confirm":
            if value not in CONFIRM:
                raise error(key, f"{_brief(_toml(value))}: one of {', '.join(map(repr, CONFIRM))}")
        elif key == "event_log":
            low, high = EVENT_LOG_RANGE
            if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
                raise error(key, f"a whole number from {low} to {high}, not {_brief(_toml(value))}")
        elif key == "keymap":
            value = check_keymap(value, error)
        values[key] = value
    return values


def check_keymap(keymap: object, error: Callable[[str, str], ConfigError]) -> dict[str, str]:
    """``[keymap]``: binding ids (the commands' names) to keys; two bindings on one key are
    refused, as is a key Textual has no name for."""
    if not isinstance(keymap, dict):
        raise error("keymap", f"a table ([keymap]), not {_brief(_toml(keymap))}")
    for name, keys in keymap.items():
        if name not in COMMANDS:
            raise error(f"keymap.{name}", f"no binding with that id (ids: {', '.join(COMMANDS)})")
        if not isinstance(keys, str) or not keys.strip():
            raise error(f"keymap.{name}", f'keys as a string ("U", "ctrl+u,U"), not {_brief(_toml(keys))}')
        for key in keys.split(","):
            if not key.strip():
                raise error(f"keymap.{name}", f"{_brief(repr(keys))}: an empty key (a comma is written 'comma')")
            problem = key_problem(key.strip())
            if problem is not None:
                raise error(f"keymap.{name}", _brief(problem, 200))
    # a key, one spelling → the binding and the key as written; Textual's own keys first
    taken: dict[str, tuple[str, str]] = {k: (what, k) for k, what in TEXTUAL_KEYS.items()}
    for name, command in COMMANDS.items():
        for key in (k.strip() for k in keymap.get(name, command.key).split(",")):
            norm = normal_key(key)
            if norm in taken:  # named at the keymap's line: the change that made the clash
                other, other_key = taken[norm]
                mapped, kept, written = (name, other, key) if name in keymap else (other, name, other_key)
                raise error(f"keymap.{mapped}", f"{written!r} is {kept}'s key too")
            taken[norm] = (name, key)
    return dict(keymap)


#: keys a terminal sends as another one: the binding would never fire
SENT_AS = {
    "ctrl+h": "backspace",
    "ctrl+i": "tab",
    "ctrl+m": "enter",
    "ctrl+j": "enter",
    "ctrl+left_square_bracket": "escape",
}


def key_problem(key: str) -> str | None:
    """Why ``key`` cannot be a binding's key, or None: it must be a key as Textual names it
    (a character ``U``, ``/``; a name ``f5``, ``escape``, ``slash``, ``question_mark``; with
    modifiers ``ctrl+u``), and one a terminal sends as itself."""
    from textual.keys import Keys  # only when a keymap is given: Textual's names are the truth

    *mods, base = key.split("+") if key != "+" else ["+"]
    if not base or any(m not in MODIFIERS for m in mods) or len(set(mods)) < len(mods):
        return f"{key!r} is not a key Textual knows"
    if mods and len(base) == 1 and base.isupper():
        return f"{key!r}: a terminal sends no case with a modifier: write {'+'.join([*mods, base.lower()])!r}"
    named = "+".join([*mods, _name(base)])
    if named in SENT_AS:
        return f"{key!r} reaches a program as {SENT_AS[named]}: it would never fire"
    if base in {k.value for k in Keys}:
        return None
    char = _character(base)
    if char is None or not char.isprintable() or char.isspace():
        return f"{key!r} is not a key Textual knows"
    return None


def _name(base: str) -> str:
    """A character's key name as Textual writes it (``[`` → ``left_square_bracket``)."""
    if len(base) == 1 and not base.isalnum():
        return unicodedata.name(base, base).lower().replace(" ", "_").replace("-", "_")
    return base


def normal_key(key: str) -> str:
    """One spelling per key, so that ``/`` and ``slash`` are seen as the same one."""
    *mods, base = key.split("+") if key != "+" else ["+"]
    return "+".join([*mods, _character(base) or base])


def _character(base: str) -> str | None:
    """The character a key name stands for (``slash`` → ``/``), as Textual maps them."""
    from textual.keys import REPLACED_KEYS, key_to_character

    if len(base) == 1:
        return base
    try:
        return key_to_character(base) or unicodedata.lookup(REPLACED_KEYS.get(base, base).replace("_", " "))
    except KeyError:
        return None


# -- the effective configuration ----------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Setting:
    value: object
    origin: str


def effective(args: argparse.Namespace, config: Config, theme: bool = True) -> dict[str, Setting]:
    """Every setting as this run uses it: the command line's, else the file's, else (for the
    theme) the one remembered, else the default; each with where it came from.  ``theme``:
    whether to work the theme out at all (only the TUI and ``config`` show one; the
    terminal's colours are read for the default)."""

    def pick(key: str, cli: object, cli_name: str, fallback: object) -> Setting:
        if cli is not None:
            return Setting(cli, cli_name)
        if key in config.values:
            return Setting(config.values[key], config.origin(key))
        return Setting(fallback, "default")

    given = getattr(args, "source", None)
    settings = {
        "sources": pick("sources", tuple(given) if given else None, "--source", ("auto",)),
        "hosts": Setting((), "--source") if given else pick("hosts", None, "", ()),
        "confirm": pick("confirm", None, "", "live"),
        "event_log": pick("event_log", None, "", EVENT_LOG_DEFAULT),
        "keymap": pick("keymap", None, "", {}),
    }
    if not theme:
        return settings
    from .theme import default, remembered, remembered_path

    chosen = pick("theme", getattr(args, "theme", None), "--theme", None)
    if chosen.value is None:
        last = remembered()
        chosen = Setting(last, f"{remembered_path()} {PALETTE}") if last else Setting(*default())
    return {"theme": chosen, **settings}


def sources(settings: Mapping[str, Setting]) -> list[str]:
    """The ``--source`` list the settings make: the sources, then each host over ssh."""
    return [*settings["sources"].value, *(f"ssh:{h}" for h in settings["hosts"].value)]  # type: ignore[attr-defined]


def render(settings: Mapping[str, Setting], config: Config) -> str:
    """The effective configuration as a TOML file, each value's origin in a comment."""
    if config.path is None:
        head = "# no configuration file (none at the default place)"
    else:
        head = f"# configuration file: {config.path} (found by {config.found_by})"

    def line(key: str, value: object, origin: str) -> str:
        """A setting; one nobody set (a default, the palette's theme) commented out, so
        that the file printed, used as it is, changes nothing and fixes nothing."""
        chosen = origin != "default" and not origin.startswith("default (") and not origin.endswith(PALETTE)
        return f"{('' if chosen else '# ') + f'{key} = {_toml(value)}':<40} # {origin}"

    out = [head]
    out += [line(key, s.value, s.origin) for key, s in settings.items() if key != "keymap"]
    keymap: Mapping[str, str] = settings["keymap"].value  # type: ignore[assignment]
    out += ["", "[keymap]"]
    for name, command in COMMANDS.items():
        if name in keymap:
            out.append(line(name, keymap[name], config.origin(f"keymap.{name}")))
        else:
            out.append(line(name, command.key, "default"))
    return "\n".join(out) + "\n"


def _brief(text: str, limit: int = 60) -> str:
    """A value as an error message quotes it: at most ``limit`` characters."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _toml(value: object) -> str:
    """A value as TOML writes it (strings, numbers, lists of strings: what a file holds)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + "}"
    return str(value)


# -- mdtui config -------------------------------------------------------------------------


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config",
        metavar="PATH",
        default=argparse.SUPPRESS,
        help="the configuration file to show (as 'mdtui --config PATH config')",
    )
    p.add_argument(
        "--print",
        action="store_true",
        dest="print_config",
        help="print the effective configuration and where each value came from (the default)",
    )
    p.add_argument(
        "--path", action="store_true", help="print only the configuration file's path (whether or not it exists)"
    )


def run(args: argparse.Namespace, out: IO[str]) -> int:
    if args.path:
        if getattr(args, "config", None) == "":
            print("mdtui: --config '': name a file (EINVAL)", file=sys.stderr)
            return 2
        path, _, _ = locate(getattr(args, "config", None))
        out.write(f"{path}\n")
        return 0
    loaded = load_or_say(args)
    if loaded is None:
        return 2
    out.write(render(effective(args, loaded), loaded))
    return 0


def load_or_say(args: argparse.Namespace) -> Config | None:
    """``load`` for the command line: None after saying on stderr why the file is refused."""
    try:
        return load(getattr(args, "config", None))
    except ConfigError as exc:
        print(f"mdtui: {exc}", file=sys.stderr)
    except OSError as exc:
        print(f"mdtui: {exc.strerror} ({errno.errorcode.get(exc.errno or 0, '?')})", file=sys.stderr)
        return None

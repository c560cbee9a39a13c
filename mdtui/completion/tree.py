"""The one argparse parser (``mdtui.cli.parser()``) walked into a tree of commands,
options and positionals, each value with the kind of thing it completes to; and what the
three shells' scripts share (quoting, the version, the value lookups)."""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Value:
    """How an argument's value completes.  ``kind``: choices (``words``), file, dir, device,
    host, forms (``words``, and ``prefixed``: PREFIX then a value of a kind, e.g.
    ``("bundle:", "file")``), command (a command line of its own), self (the program's own
    options again: serve's ``-- MDTUI_ARGS``), subcommands, or free."""

    kind: str
    words: tuple[str, ...] = ()
    prefixed: tuple[tuple[str, str], ...] = ()

    def spec(self) -> str:
        """The value as the bash and fish scripts' helpers take it: ``choices a b``,
        ``forms sim live bundle:%file``, ``file``..."""
        parts = [self.kind, *self.words, *(f"{p}%{k}" for p, k in self.prefixed)]
        return " ".join(parts)


@dataclass(frozen=True)
class Option:
    """An option: its strings (``-f``, ``--follow``), help, value (None: a flag) and whether
    it may be given again (``action="append"``)."""

    strings: tuple[str, ...]
    help: str
    value: Value | None
    repeat: bool
    exits: bool  # --help, --version: nothing else goes with it
    metavar: str


@dataclass(frozen=True)
class Positional:
    """A positional argument: its metavar, dest, help, value and whether it takes the rest."""

    name: str  # its metavar
    dest: str
    help: str
    value: Value
    many: bool  # takes every word from here on (nargs *, +, REMAINDER)


@dataclass(frozen=True)
class Command:
    """A parser: the program or one of its subcommands."""

    name: str
    summary: str
    description: str
    options: tuple[Option, ...]
    positionals: tuple[Positional, ...]
    subcommands: tuple[Command, ...]


#: metavars whose values are names of things the shells can list
METAVAR_KINDS = {"FILE": "file", "PATH": "file", "DIR": "dir", "DEVICE": "device"}
#: in a form's placeholder (bundle:FILE, ssh:[USER@]HOST[:PORT]): what follows the prefix
PLACEHOLDER_KINDS = (("FILE", "file"), ("PATH", "file"), ("HOST", "host"))


def help_text(action: argparse.Action, prog: str = "mdtui") -> str:
    """An action's help with ``%(default)s`` and the like filled in, on one line."""
    if not action.help or action.help == argparse.SUPPRESS:
        return ""
    text = argparse.HelpFormatter(prog)._expand_help(action)
    return " ".join(text.split())


def metavar_of(action: argparse.Action) -> str:
    """The metavar argparse shows for an action's value."""
    if isinstance(action.metavar, str):
        return action.metavar
    if action.choices is not None:
        return "{" + ",".join(map(str, action.choices)) + "}"
    return action.dest.upper() if action.option_strings else action.dest


def value_of(action: argparse.Action, prog: str = "mdtui") -> Value | None:
    """How an action's value completes; None when it takes none (a flag)."""
    if action.nargs == 0:
        return None
    if action.nargs == argparse.REMAINDER:  # -- COMMAND, or (serve's -- MDTUI_ARGS) mdtui's own options
        return Value("self" if prog.split()[0].upper() in metavar_of(action) else "command")
    if isinstance(action, argparse._SubParsersAction):
        return Value("subcommands", tuple(action.choices))
    if action.choices is not None:
        return Value("choices", tuple(str(c) for c in action.choices))
    metavar = metavar_of(action)
    if metavar.startswith("{") and metavar.endswith("}"):
        words, prefixed = [], []
        for form in metavar[1:-1].split(","):
            prefix, colon, placeholder = form.partition(":")
            if not colon:
                words.append(form)
                continue
            kind = next((k for key, k in PLACEHOLDER_KINDS if key in placeholder), "free")
            prefixed.append((prefix + colon, kind))
        return Value("forms", tuple(words), tuple(prefixed))
    return Value(METAVAR_KINDS.get(metavar, "free"))


def walk(p: argparse.ArgumentParser, name: str | None = None, summary: str = "") -> Command:
    """The parser as a tree of commands (hidden options left out)."""
    options, positionals, subcommands = [], [], []
    for action in p._actions:
        if action.help == argparse.SUPPRESS and not isinstance(action, argparse._SubParsersAction):
            continue
        if action.option_strings:
            options.append(
                Option(
                    strings=tuple(action.option_strings),
                    help=help_text(action, p.prog),
                    value=value_of(action, p.prog),
                    repeat=isinstance(action, (argparse._AppendAction, argparse._CountAction)),
                    exits=isinstance(action, (argparse._HelpAction, argparse._VersionAction)),
                    metavar=metavar_of(action),
                )
            )
            continue
        value = value_of(action, p.prog)
        assert value is not None
        many = action.nargs in ("*", "+", argparse.REMAINDER)
        positionals.append(Positional(metavar_of(action), action.dest, help_text(action, p.prog), value, many))
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            for sub_name, sub in action.choices.items():
                subcommands.append(walk(sub, sub_name, helps.get(sub_name, "")))
    return Command(
        name=name if name is not None else p.prog,
        summary=summary,
        description=p.description or "",
        options=tuple(options),
        positionals=tuple(positionals),
        subcommands=tuple(subcommands),
    )


def short(text: str, limit: int = 90) -> str:
    """A help text shortened for a completion menu: no parenthesized asides, its first
    clause, at most ``limit`` characters."""
    previous = None
    while previous != text:
        previous, text = text, re.sub(r"\s*\([^()]*\)", "", text)
    text = text.split("; ")[0].strip().rstrip(":,")
    if len(text) > limit:
        text = text[: limit - 3].rsplit(" ", 1)[0] + "..."
    return text


def version() -> str:
    from .. import __version__

    return __version__


def sq(text: str) -> str:
    """``text`` single-quoted for bash, zsh and fish (fish: no backslash or quote inside)."""
    return "'" + text.replace("'", "'\\''") + "'"


def fish_sq(text: str) -> str:
    """``text`` single-quoted for fish (a backslash and a quote escaped with a backslash)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def commands(root: Command) -> list[tuple[str, Command]]:
    """Every command with the key the scripts name it by: '' for the program itself."""
    return [("", root), *((c.name, c) for c in root.subcommands)]


def value_cases(root: Command) -> dict[str, list[str]]:
    """Value spec → the ``"COMMAND OPTION"`` keys that take such a value."""
    cases: dict[str, list[str]] = {}
    for key, cmd in commands(root):
        for opt in cmd.options:
            if opt.value is not None:
                for s in opt.strings:
                    cases.setdefault(opt.value.spec(), []).append(f"{key} {s}")
    return cases

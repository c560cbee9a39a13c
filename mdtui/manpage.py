"""mdtui(1), the man page, generated from the one argparse parser (``mdtui.cli.parser()``).

``python -m mdtui.manpage`` prints it; ``make man`` writes it to man/mdtui.1, which the
wheel installs as share/man/man1/mdtui.1 (``man mdtui``; from the tree: ``man -l
man/mdtui.1``).  A test compares that file with what this module makes, so it cannot go
stale.

Each parser's description, epilog and help texts are argparse's raw text (the layout of
``--help``): paragraphs of prose become filled paragraphs; indented lines (examples, tables)
are kept as they are; a line such as ``examples:`` alone heads what follows.  Everything
is escaped for roff: backslashes, hyphens (``\\-``, so that options copy as typed), quotes,
a dot or an apostrophe opening a line, characters outside ASCII.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterable

from . import __version__
from .completion.tree import help_text, metavar_of

#: what the page says of the environment: (variable, text)
ENVIRONMENT = (
    (
        "MDTUI_CONFIG",
        "The configuration file to read when --config is not given (instead of "
        "$XDG_CONFIG_HOME/mdtui/config.toml). 'mdtui config' shows which file is read and what it sets.",
    ),
    (
        "MDTUI_SSH",
        "The command that --source ssh:HOST runs instead of ssh, split as a shell would split it "
        "(as GIT_SSH is), e.g. 'ssh -F ~/.ssh/lab_config'. It is run with BatchMode=yes and "
        "server-alive probes.",
    ),
    (
        "NO_COLOR",
        "When set to anything but the empty string, output is printed without colour (watch, soak, "
        "compare) and the TUI is drawn without colours (https://no-color.org).",
    ),
    (
        "XDG_CONFIG_HOME",
        "Where the configuration file is looked for (default: ~/.config).",
    ),
    (
        "XDG_STATE_HOME",
        "Where mdtui keeps what it remembers: the theme last chosen in the palette, and the "
        "traceback of a crash (default: ~/.local/state).",
    ),
)

FILES = (
    (
        "$XDG_CONFIG_HOME/mdtui/config.toml",
        "The configuration file (~/.config/mdtui/config.toml): sources, hosts, theme, confirmations, "
        "the event log, key bindings. 'mdtui config --print' shows the effective configuration and "
        "where each value came from.",
    ),
    (
        "$XDG_STATE_HOME/mdtui/theme",
        "The theme last chosen with the palette's 'Change theme' (~/.local/state/mdtui/theme); "
        "--theme and the configuration's theme take precedence.",
    ),
)

SEE_ALSO = ("media-ctl", "v4l2-ctl", "v4l2-compliance")


# -- roff ------------------------------------------------------------------------------------


def escape(text: str) -> str:
    """``text`` for a roff text line or a macro's argument: backslashes, hyphens (``\\-``),
    quotes and apostrophes, characters outside ASCII (``\\[uXXXX]``).  A word that is an
    option, a path or a name (``--format``, ``/dev/media0``, ``$XDG_STATE_HOME``,
    ``bus_info``) is never hyphenated (``\\%``)."""
    return re.sub(r"\S+", lambda m: ("\\%" if _WHOLE.search(m[0]) else "") + _escape(m[0]), text)


#: a word that hyphenation must not break
_WHOLE = re.compile(r"^\W*[-$~]|[/_:.@=]\w")


def _escape(text: str) -> str:
    out = []
    for ch in text:
        if ch == "\\":
            out.append("\\e")
        elif ch == "-":
            out.append("\\-")
        elif ch == "'":
            out.append("\\(aq")
        elif ch == "`":
            out.append("\\(ga")
        elif ch == '"':
            out.append("\\(dq")
        elif ord(ch) > 127:
            out.append(f"\\[u{ord(ch):04X}]")
        else:
            out.append(ch)
    return "".join(out)


def line(text: str) -> str:
    """A roff text line: one that opens with a dot or an apostrophe is guarded with ``\\&``
    (it would be read as a request), and so is one opening with a space."""
    return "\\&" + text if text[:1] in (".", "'", " ") else text


def bold(text: str) -> str:
    """``text`` in bold (an option's name)."""
    return f"\\fB{_escape(text)}\\fR"


def italic(text: str) -> str:
    """``text`` in italics (a metavar, a heading)."""
    return f"\\fI{_escape(text)}\\fR"


def whole(text: str) -> str:
    """Roff text whose every word is kept whole (``\\%`` first: never hyphenated)."""
    return re.sub(r"(?:(?<=^)|(?<= ))(?=\S)", lambda _: "\\%", text)


def metavar_text(metavar: str) -> str:
    """A metavar in a synopsis or an option's heading: a name (FILE) in italics; a list of
    choices ({text,json,dot}) as it is."""
    return _escape(metavar) if metavar.startswith("{") or metavar.startswith("--") else italic(metavar)


def block(text: str) -> list[str]:
    """argparse's raw text (a description, an epilog) as roff lines."""
    out: list[str] = []
    for para in re.split(r"\n\s*\n", text.strip("\n")):
        lines = para.split("\n")
        i = 0
        while i < len(lines):
            if lines[i].startswith(" "):
                verbatim = []
                while i < len(lines) and (lines[i].startswith(" ") or not lines[i].strip()):
                    verbatim.append(lines[i].rstrip())
                    i += 1
                indent = min(len(v) - len(v.lstrip()) for v in verbatim if v.strip())
                out += [".RS 4", ".nf", *(line(escape(v[indent:])) for v in verbatim), ".fi", ".RE"]
                continue
            prose = []
            while i < len(lines) and not lines[i].startswith(" "):
                prose.append(lines[i].strip())
                i += 1
            if len(prose) == 1 and re.fullmatch(r"[\w' -]+:", prose[0]):  # "examples:" heading what follows
                out += [".PP", italic(prose[0][:1].upper() + prose[0][1:])]
            else:
                out += [".PP", *(line(escape(p)) for p in prose)]
    return out


# -- the parser ------------------------------------------------------------------------------


def _formatter(prog: str) -> argparse.HelpFormatter:
    """argparse's formatter at a fixed width: the page must not depend on the terminal."""
    return argparse.HelpFormatter(prog, width=10_000)


def heading(action: argparse.Action) -> str:
    """An option's ``.TP`` heading: its strings in bold, its value's metavar."""
    if not action.option_strings:
        return whole(metavar_text(metavar_of(action)))
    names = ", ".join(bold(s) for s in action.option_strings)
    return whole(names if action.nargs == 0 else f"{names} {metavar_text(metavar_of(action))}")


def synopsis(p: argparse.ArgumentParser) -> list[str]:
    """A parser's usage as a ``.SY`` block: option names in bold, metavars in italics."""
    fmt = _formatter(p.prog)
    visible = [a for a in p._actions if a.help != argparse.SUPPRESS]
    fmt.add_usage(None, visible, p._mutually_exclusive_groups, prefix="")
    usage = " ".join(fmt.format_help().split())
    words = usage[len(p.prog) :].strip()
    text = re.sub(
        r"(--?[A-Za-z][\w-]*)|(\{[^}]*\})|([A-Z][A-Z0-9_]*(?::[A-Z][A-Z0-9_]*)?)|(.)",
        lambda m: bold(m[1]) if m[1] else _escape(m[2]) if m[2] else italic(m[3]) if m[3] else _escape(m[4]),
        words,
    )
    return [f'.SY "{_escape(p.prog)}"', line(whole(text)), ".YS"]


def options(p: argparse.ArgumentParser) -> list[str]:
    """A parser's arguments and options as ``.TP`` paragraphs (hidden ones left out)."""
    out: list[str] = []
    for action in p._actions:
        if action.help == argparse.SUPPRESS or isinstance(action, argparse._SubParsersAction):
            continue
        out += [".TP", heading(action), line(escape(help_text(action, p.prog)))]
    return out


def subcommands(p: argparse.ArgumentParser) -> list[tuple[str, str, argparse.ArgumentParser]]:
    """(name, summary, parser) of each subcommand."""
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            return [(name, helps.get(name, ""), sub) for name, sub in action.choices.items()]
    return []


def _definitions(items: Iterable[tuple[str, str]], font: str = "B") -> list[str]:
    out = []
    for name, text in items:
        out += [".TP", f"\\f{font}{escape(name)}\\fR", line(escape(text))]
    return out


def _split_examples(description: str) -> tuple[str, str]:
    """The top-level description's prose, and its examples block (for the EXAMPLES section)."""
    head, sep, tail = description.partition("\nexamples:\n")
    return (head, "examples:\n" + tail) if sep else (description, "")


# -- the page --------------------------------------------------------------------------------


def render(p: argparse.ArgumentParser | None = None) -> str:
    """The man page of the parser (``mdtui.cli.parser()`` when None), as roff."""
    if p is None:
        from .cli import parser

        p = parser()
    prog = p.prog
    description, examples = _split_examples(p.description or "")
    summary = description.strip().split("\n")[0].rstrip(".")
    summary = summary[:1].lower() + summary[1:]
    out = [
        f'.\\" {prog}({1}): generated from its argparse parser by `python -m mdtui.manpage` (make man); do not edit',
        f'.TH {_escape(prog.upper())} 1 "" "{_escape(prog)} {_escape(__version__)}" "User Commands"',
        ".ad l",  # ragged right
        ".SH NAME",
        f"{escape(prog)} \\- {escape(summary)}",
        ".SH SYNOPSIS",
        *synopsis(p),
    ]
    subs = subcommands(p)
    for _, _, sub in subs:
        out += synopsis(sub)
    out += [".SH DESCRIPTION", *block(description)]
    if p.epilog:
        out += block(p.epilog)
    out += [".SH OPTIONS", *options(p)]
    if subs:
        out += [".SH COMMANDS", *_definitions((name, summary) for name, summary, _ in subs)]
    for _, summary, sub in subs:
        out += [f'.SS "{escape(sub.prog)}"', line(escape(summary[:1].upper() + summary[1:] + ".")), *synopsis(sub)]
        out += block(sub.description or "")
        out += [".PP", italic("Options:"), *options(sub)]
    if examples:
        out += [".SH EXAMPLES", *block(examples)[2:]]
    out += [".SH ENVIRONMENT", *_definitions(ENVIRONMENT)]
    out += [".SH FILES", *_definitions(FILES, font="I")]
    out += [".SH SEE ALSO", ",\n".join(f"{bold(name)}(1)" for name in SEE_ALSO)]
    return "\n".join(out) + "\n"


def main() -> None:
    """``python -m mdtui.manpage``: the page on stdout."""
    sys.stdout.write(render())


if __name__ == "__main__":
    main()

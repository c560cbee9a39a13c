"""mdtui(1) and the help it is made of: man/mdtui.1 is what mdtui/manpage.py makes of the
parser, man renders it without a warning, and every command's help has a description, two
examples and its choices explained."""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mdtui import manpage
from mdtui.cli import parser

PAGE = Path(__file__).resolve().parents[2] / "man" / "mdtui.1"
BIN = Path(sys.executable).parent


def parsers(p: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    """The parser and every subcommand's."""
    yield p
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from parsers(sub)


def env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("MAN", "GROFF"))} | {
        "MANPAGER": "cat",
        "PAGER": "cat",
        "MANWIDTH": "80",
        "LC_ALL": "C.UTF-8",
    }


def man(path: Path, *options: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["man", *options, "-l", str(path)], env=env(), capture_output=True, text=True, timeout=60, check=False
    )


def groff_warnings(path: Path) -> str:
    result = subprocess.run(
        ["groff", "-ww", "-man", "-z", str(path)], env=env(), capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stderr


# -- the page --------------------------------------------------------------------------------


def test_the_committed_page_is_the_generated_one() -> None:
    assert PAGE.exists(), "man/mdtui.1 is missing: run `make man`"
    assert PAGE.read_text() == manpage.render(), "man/mdtui.1 is stale: run `make man` (and commit it)"


def test_python_m_mdtui_manpage_prints_it() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mdtui.manpage"],
        env=env() | {"COLUMNS": "33"},  # the terminal's width changes nothing
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == manpage.render()


def test_man_renders_it_with_every_section_and_command() -> None:
    result = man(PAGE)
    assert (result.returncode, result.stderr) == (0, "")
    text = result.stdout
    lines = text.splitlines()
    for section in ("NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "COMMANDS", "ENVIRONMENT", "FILES", "SEE ALSO"):
        assert section in lines, section
    assert "       mdtui - inspect media devices shared through the Media Device Allocator" in lines
    p = parser()
    commands = [sub.prog for sub in parsers(p)][1:]
    assert len(commands) >= 9
    for command in commands:  # a section each, with its synopsis, options and examples
        assert f"   {command}" in lines, command
        section = text.split(f"\n   {command}\n", 1)[1].split("\n   mdtui ", 1)[0]
        assert f"       {command} [-h]" in section, command
        assert "Examples:" in section and "Options:" in section, command
        assert "-h, --help" in section, command
    for variable in ("MDTUI_CONFIG", "MDTUI_SSH", "NO_COLOR", "XDG_CONFIG_HOME", "XDG_STATE_HOME"):
        assert f"       {variable}" in lines, variable
    assert "       $XDG_CONFIG_HOME/mdtui/config.toml" in lines
    assert "       $XDG_STATE_HOME/mdtui/theme" in lines
    assert "       media-ctl(1), v4l2-ctl(1), v4l2-compliance(1)" in lines
    # options as typed: hyphens, not the typographic dash groff makes of a bare "-"
    assert "       --format {text,json,dot}" in lines
    assert "\u2010-" not in text and "\u2212" not in text


def test_groff_and_man_have_no_warnings() -> None:
    assert groff_warnings(PAGE) == ""
    result = man(PAGE, "--warnings")
    assert (result.returncode, result.stderr) == (0, "")


def test_roff_is_escaped(tmp_path: Path) -> None:
    """Text that roff would take as requests, escapes or dashes comes out as written."""
    p = argparse.ArgumentParser(
        prog="mdtui",
        description='.dot opens this line\n\'quote opens this one\nC:\\path\\n -- "quoted" \u2192 caf\u00e9',
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--weird", metavar="FILE", help=".also a dot; 'and' a \\fB backslash")
    page = manpage.render(p)
    lines = page.splitlines()
    assert "\\(aqquote opens this one" in lines
    assert not [line for line in lines if line.startswith((".dot", ".also", "'"))]
    path = tmp_path / "weird.1"
    path.write_text(page)
    assert groff_warnings(path) == ""
    result = man(path)
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())
    for written in (
        ".dot opens this line",
        "'quote opens this one",
        'C:\\path\\n -- "quoted" \u2192 caf\u00e9',
        "--weird FILE",
        ".also a dot; 'and' a \\fB backslash",
    ):
        assert written in text, written


def test_escape() -> None:
    assert manpage.escape("a-b") == "a\\-b"
    assert manpage.escape("--format") == "\\%\\-\\-format"  # an option: never hyphenated
    assert manpage.escape("C:\\x") == "C:\\ex"
    assert manpage.escape("/dev/media0") == "\\%/dev/media0"
    assert manpage.escape("\u2192") == "\\[u2192]"
    assert manpage.line(".TH") == "\\&.TH"
    assert manpage.line("text") == "text"


# -- the help it is made of ------------------------------------------------------------------


def examples(description: str) -> list[str]:
    """The lines of a description's examples block."""
    _, sep, block = description.partition("\nexamples:\n")
    if not sep and description.startswith("examples:\n"):
        block = description[len("examples:\n") :]
    lines = []
    for line in block.split("\n"):
        if not line.startswith("  "):
            break
        lines.append(line.strip())
    return lines


def test_every_command_has_a_description_and_two_examples() -> None:
    found = []
    for p in parsers(parser()):
        assert p.description and len(p.description.split()) >= 8, f"{p.prog}: no description"
        lines = examples(p.description)
        commands = [line for line in lines if re.match(r"(sudo )?mdtui\b|source <\(mdtui ", line)]
        assert len(commands) >= 2, f"{p.prog}: {len(commands)} examples (two at least)"
        name = p.prog.removeprefix("mdtui").strip()
        assert all(re.search(rf"\b{name}\b", c) for c in commands), f"{p.prog}: examples of another command"
        assert "examples:" in p.format_help(), p.prog  # shown by --help, as written
        found.append(p.prog.removeprefix("mdtui").strip())
    assert {"", "watch", "dump", "rig", "soak", "compare", "metrics", "serve", "completion", "config"} <= set(found)


def test_every_choice_is_explained() -> None:
    """An option with choices names each of them in its help (--format text, json, dot)."""
    checked = []
    for p in parsers(parser()):
        for action in p._actions:
            if action.choices is None or isinstance(action, argparse._SubParsersAction):
                continue
            if action.help == argparse.SUPPRESS:
                continue
            for choice in action.choices:
                assert re.search(rf"(?<![\w-]){re.escape(str(choice))}(?![\w-])", action.help or ""), (
                    f"{p.prog} {'/'.join(action.option_strings) or action.dest}: {choice!r} not explained"
                )
            checked.append(f"{p.prog} {action.option_strings[-1] if action.option_strings else action.dest}")
    assert {"mdtui dump --format", "mdtui compare --format", "mdtui completion shell"} <= set(checked)


@pytest.mark.parametrize("command", ["dump", "compare"])
def test_format_help_says_what_each_format_is(command: str) -> None:
    sub = next(p for p in parsers(parser()) if p.prog == f"mdtui {command}")
    [fmt] = [a for a in sub._actions if "--format" in a.option_strings]
    for choice in fmt.choices:
        # "text: ..." or "text (...)": the choice is followed by what it prints
        assert re.search(rf"\b{choice}\b( \(|: )", fmt.help), f"{command} --format {choice}"

"""The configuration file (mdtui/config.py): which file, which value wins, a bad file
refused whole with its line and key, ``config --print`` as a file that loads back, and the
settings reaching the TUI (a keymap remapping a binding, the confirmation policy, the event
log's length)."""

from __future__ import annotations

import io
import tomllib
from pathlib import Path

import pytest

from mdtui import config, theme
from mdtui.cli import main, parser
from mdtui.scenarios import make_app, settle
from mdtui.screens.choice import ChoiceScreen, ConfirmScreen
from mdtui.screens.help import key_table


@pytest.fixture(autouse=True)
def own_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test has its own XDG directories and no MDTUI_CONFIG."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.delenv("MDTUI_CONFIG", raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")  # the default theme depends on the terminal's colours
    monkeypatch.delenv("TEXTUAL_COLOR_SYSTEM", raising=False)
    return tmp_path


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def settings(*argv: str) -> dict[str, config.Setting]:
    args = parser().parse_args([*argv, "config"])
    return config.effective(args, config.load(args.config))


def printed(*argv: str) -> str:
    out = io.StringIO()
    assert main([*argv, "config", "--print"], stdout=out) == 0
    return out.getvalue()


# -- which file --------------------------------------------------------------------------


def test_the_file_is_option_then_environment_then_xdg(own_dirs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    xdg = write(own_dirs / "config" / "mdtui" / "config.toml", 'theme = "nord"\n')
    env = write(own_dirs / "env.toml", 'theme = "dracula"\n')
    option = write(own_dirs / "option.toml", 'theme = "monokai"\n')
    assert settings()["theme"] == config.Setting("nord", f"{xdg}:1")
    monkeypatch.setenv("MDTUI_CONFIG", str(env))
    assert settings()["theme"] == config.Setting("dracula", f"{env}:1")
    assert settings("--config", str(option))["theme"] == config.Setting("monokai", f"{option}:1")
    assert "found by --config" in printed("--config", str(option))


def test_no_file_at_the_default_place_is_no_error_but_a_named_one_is(
    own_dirs: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert settings()["confirm"] == config.Setting("live", "default")
    assert main(["--config", str(own_dirs / "nowhere.toml"), "dump", "--source", "sim"]) == 2
    assert f"--config {own_dirs / 'nowhere.toml'}: no such file (ENOENT)" in capsys.readouterr().err
    monkeypatch.setenv("MDTUI_CONFIG", str(own_dirs / "gone.toml"))
    assert main(["dump", "--source", "sim"]) == 2
    assert "$MDTUI_CONFIG" in capsys.readouterr().err


# -- which value -------------------------------------------------------------------------


def test_the_command_line_beats_the_file_which_beats_the_remembered_theme_and_the_default(own_dirs: Path) -> None:
    assert settings()["theme"] == config.Setting(theme.DEFAULT, "default")
    theme.remember("gruvbox")  # the palette's last choice
    assert settings()["theme"].value == "gruvbox"
    assert "the palette's last choice" in settings()["theme"].origin
    write(own_dirs / "config" / "mdtui" / "config.toml", 'theme = "nord"\nsources = ["sim"]\nhosts = ["pi@board-a"]\n')
    assert settings()["theme"].value == "nord"
    assert settings("--theme", "dracula")["theme"] == config.Setting("dracula", "--theme")
    assert config.sources(settings()) == ["sim", "ssh:pi@board-a"]
    given = settings("--source", "live")  # --source replaces the file's sources and hosts
    assert config.sources(given) == ["live"]
    assert given["sources"].origin == "--source"


def test_the_file_s_sources_are_what_dump_reads(own_dirs: Path) -> None:
    bundle = own_dirs / "report.tar.gz"  # a source that "auto" never is
    assert main(["dump", "--source", "sim", "--bundle", str(bundle)]) == 0
    write(own_dirs / "config" / "mdtui" / "config.toml", f'sources = ["bundle:{bundle}"]\n')
    out = io.StringIO()
    assert main(["dump", "--format", "json"], stdout=out) == 0
    assert "bundle report.tar.gz: sim state of" in out.getvalue()


def test_print_is_a_file_that_loads_back_to_the_same_settings(own_dirs: Path) -> None:
    path = write(
        own_dirs / "lab.toml",
        'theme = "textual-light"\nconfirm = "always"\nevent_log = 200\nhosts = ["pi@board-a:2222"]\n\n'
        '[keymap]\nunbind = "U"\nbind = "ctrl+b,B"\n',
    )
    text = printed("--config", str(path))
    assert 'unbind = "U"' in text and f"# {path}:7" in text
    assert '\ntheme = "textual-light"' in text
    assert '\n# rmmod = "r"  ' in text and '\n# sources = ["auto"]  ' in text  # defaults: commented out
    again = write(own_dirs / "again.toml", text)
    first, second = settings("--config", str(path)), settings("--config", str(again))
    assert {k: s.value for k, s in first.items() if k != "keymap"} == {
        k: s.value for k, s in second.items() if k != "keymap"
    }
    assert second["keymap"].value["unbind"] == "U"  # type: ignore[index]
    assert tomllib.loads(text)["keymap"]["bind"] == "ctrl+b,B"


# -- a bad file --------------------------------------------------------------------------

BAD = [
    ('theme = "nord"\nconfirm = "sometimes"\n', ":2: confirm: ", "'live', 'always', 'never'"),
    ('theme = "nord\n', ":1: not TOML", "column"),
    ('theme = "no-such"\n', ":1: theme: no theme 'no-such'", "textual-light"),
    ('themes = "nord"\n', ":1: themes: not a setting", "known: theme,"),
    ("event_log = 5\n", ":1: event_log: a whole number from 100 to 1000000", "not 5"),
    ("event_log = true\n", ":1: event_log:", "not true"),
    ('sources = "live"\n', ":1: sources: a list of strings", '"live"'),
    ('sources = ["live", "nfs:x"]\n', ":1: sources: invalid choice: 'nfs:x'", "ssh:"),
    ('hosts = ["pi@"]\n', ":1: hosts:", "ssh:pi@"),
    ("keymap = 3\n", ":1: keymap: a table", "not 3"),
    ('# keys\n[keymap]\nunbnd = "U"\n', ":3: keymap.unbnd: no binding with that id", "unbind"),
    ('[keymap]\nunbind = "ctrl+frob"\n', ":2: keymap.unbind: 'ctrl+frob' is not a key", "Textual"),
    ('[keymap]\nunbind = "b"\n', ":2: keymap.unbind: 'b' is bind's key too", ""),
    ('[keymap]\nhelp = "/"\n', ":2: keymap.help: '/' is filter's key too", ""),  # / and slash: one key
    ('theme = "nord"\n\ntheme = "dracula"\n', ":3: theme: set twice (first at line 1)", ""),
    ('[keymap]\nunbind = "U"\n[keymap]\nbind = "B"\n', ":3: keymap: set twice (first at line 1)", ""),
    ('keymap.unbind = "b"\n', ":1: keymap.unbind: 'b' is bind's key too", ""),
    ('keymap = {unbind = "U", bind = "U"}\n', ":1: keymap.bind: 'U' is unbind's key too", ""),
    ("sources = []\n", ":1: sources: no source at all", "auto"),
    ('[keymap]\nunbind = "u,"\n', ":2: keymap.unbind: 'u,': an empty key (a comma is written 'comma')", ""),
    ('[keymap]\nunbind = "u,ctrl+p"\n', ":2: keymap.unbind: 'ctrl+p' is the command palette's key too", ""),
    ('[keymap]\nunbind = ""\n', ":2: keymap.unbind: keys as a string", ""),
]


@pytest.mark.parametrize(("text", "where", "also"), BAD)
def test_a_bad_file_is_refused_with_its_line_and_key_and_nothing_runs(
    own_dirs: Path, capsys: pytest.CaptureFixture[str], text: str, where: str, also: str
) -> None:
    path = write(own_dirs / "bad.toml", text)
    out = io.StringIO()
    assert main(["--config", str(path), "dump", "--source", "sim"], stdout=out) == 2
    err = capsys.readouterr().err
    assert f"mdtui: {path}{where}" in err and also in err, err
    assert out.getvalue() == ""  # never half-applied: nothing ran
    assert main(["--config", str(path), "config", "--print"], stdout=out) == 2


@pytest.mark.parametrize("special", ["/dev/zero", "directory", "fifo", "big", "binary"])
def test_hostile_files_are_refused_quickly(own_dirs: Path, capsys: pytest.CaptureFixture[str], special: str) -> None:
    import os

    path = {"/dev/zero": Path("/dev/zero"), "directory": own_dirs}.get(special, own_dirs / special)
    if special == "fifo":
        os.mkfifo(path)  # nobody writes to it: must not block
    elif special == "big":
        path.write_bytes(b"#" * (config.LIMIT + 1))
    elif special == "binary":
        path.write_bytes(b"theme = \xff\xfe\n")
    assert main(["--config", str(path), "config"], stdout=io.StringIO()) == 2
    err = capsys.readouterr().err
    assert err.startswith("mdtui: ") and str(path) in err and "Traceback" not in err, err


def test_keys_textual_names_and_characters_are_accepted() -> None:
    for key in ("U", "/", "?", "ctrl+u", "f5", "escape", "question_mark", "ctrl+shift+x", "+"):
        assert config.key_problem(key) is None, key
    for key in ("", "ctrl+", "frob", "hyperspace+u", " ", "f25", "ctrl+ctrl+u"):
        assert config.key_problem(key) == f"{key!r} is not a key Textual knows", key
    assert config.key_problem("ctrl+P") == "'ctrl+P': a terminal sends no case with a modifier: write 'ctrl+p'"
    for key, sent in (("ctrl+h", "backspace"), ("ctrl+i", "tab"), ("ctrl+m", "enter"), ("ctrl+[", "escape")):
        assert config.key_problem(key) == f"{key!r} reaches a program as {sent}: it would never fire"


# -- the settings in the TUI ---------------------------------------------------------------


@pytest.mark.asyncio
async def test_a_keymap_remaps_a_binding() -> None:
    app = make_app(keymap={"unbind": "U"})
    async with app.run_test() as pilot:
        await settle(app)
        await pilot.press("u")  # its old key does nothing now
        await settle(app)
        assert not isinstance(app.screen, ChoiceScreen)
        await pilot.press("U")
        await settle(app)
        assert isinstance(app.screen, ChoiceScreen)
        assert app.screen.query_one("OptionList")  # what to unbind
    assert "| `U` | " in key_table(app.keymap)
    assert "| `u` | " not in key_table(app.keymap)


@pytest.mark.asyncio
@pytest.mark.parametrize("policy", ["live", "always"])
async def test_confirm_always_asks_on_the_simulation_too(policy: str) -> None:
    app = make_app(confirm=policy)
    async with app.run_test() as pilot:
        await settle(app)
        refcount = app.snapshot.media_devices[0].refcount
        await pilot.press("u")
        await settle(app)
        await pilot.press("enter")  # the first choice
        await settle(app)
        assert isinstance(app.screen, ConfirmScreen) is (policy == "always")
        if policy == "always":
            await pilot.press("y")
            await settle(app)
        assert app.snapshot.media_devices[0].refcount == refcount - 1


@pytest.mark.asyncio
async def test_the_event_log_keeps_as_many_entries_as_configured() -> None:
    from mdtui.app import MdtuiApp
    from mdtui.sources.sim import build, fake_clock
    from mdtui.widgets.event_log import EventLog

    app = MdtuiApp(build(clock=fake_clock())[0], event_log=100)
    async with app.run_test() as pilot:
        await settle(app)
        for _ in range(12):  # each unbind and bind: about ten entries
            app.action_perform("unbind au0828 1-1:1.0")
            await settle(app)
            app.action_perform("bind au0828 1-1:1.0")
            await settle(app)
        await pilot.pause()
        log = app.query_one(EventLog)
        assert log.entries.maxlen == 100 and len(log.entries) == 100


def test_the_readme_s_example_is_a_valid_file_that_sets_every_key(own_dirs: Path) -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    section = readme[readme.index("### Configuration") :]
    example = section[section.index("```toml\n") + 8 : section.index("```\n", section.index("```toml"))]
    path = write(own_dirs / "example.toml", example)
    loaded = config.load(str(path))
    assert set(loaded.values) == set(config.KEYS)
    assert loaded.values["keymap"] == {"unbind": "U", "bind": "B,ctrl+b", "tab_graph": "g"}


def test_dotted_keys_inline_tables_and_a_bom_are_files_like_any_other(own_dirs: Path) -> None:
    path = write(own_dirs / "c.toml", '\ufefftheme = "nord"\nkeymap.unbind = "U"\nkeymap = {}\n')
    assert main(["--config", str(path), "config"], stdout=io.StringIO()) == 2  # keymap twice: refused
    path.write_text('\ufefftheme = "nord"\n# the keys\nkeymap.unbind = "U"\n')
    text = printed("--config", str(path))
    assert f'unbind = "U"                             # {path}:3' in text
    path.write_text('keymap = {unbind = "U"}\n')
    assert f"# {path}:1" in printed("--config", str(path))


def test_config_takes_config_after_it_too_and_refuses_an_empty_name(
    own_dirs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(own_dirs / "c.toml", 'theme = "nord"\n')
    out = io.StringIO()
    assert main(["config", "--config", str(path), "--print"], stdout=out) == 0
    assert f"# {path}:1" in out.getvalue()
    assert main(["config", "--config", str(path), "--path"], stdout=out) == 0
    assert out.getvalue().endswith(f"{path}\n")
    assert main(["--config", "", "config"], stdout=out) == 2
    assert "mdtui: --config '': name a file (EINVAL)" in capsys.readouterr().err


def test_a_theme_nobody_chose_is_printed_commented_out(own_dirs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What --print shows, used as a file, fixes nothing the terminal or the palette decides."""
    monkeypatch.setenv("TERM", "xterm")
    assert '\n# theme = "ansi-dark"' in printed()
    theme.remember("gruvbox")
    assert '\n# theme = "gruvbox"' in printed()


@pytest.mark.asyncio
async def test_the_help_screen_names_the_keymap_s_keys_and_closes_on_its_help_key() -> None:
    from textual.widgets import Markdown

    from mdtui.screens.help import HelpScreen

    app = make_app(keymap={"help": "h", "filter": "f", "toggle_folds": "z"})
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app)
        await pilot.press("h")
        await settle(app)
        assert isinstance(app.screen, HelpScreen)
        text = app.screen.query_one(Markdown).source
        assert "`f` filters" in text and "`z` unfolds" in text and "`/` filters" not in text
        await pilot.press("h")
        await settle(app)
        assert not isinstance(app.screen, HelpScreen)


def test_keys_with_markdown_s_characters_show_as_they_are() -> None:
    from mdtui.screens.help import code

    assert code("|") == "`\\|`" and code("`") == "`` ` ``" and code("u") == "`u`"
    table = key_table({"toggle_folds": "|", "export_dot": "`"})
    assert "| `\\|` | " in table and "| `` ` `` | " in table


def test_line_numbers_count_toml_s_lines_only_and_skip_multi_line_strings(
    own_dirs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(own_dirs / "c.toml", 'theme = "nord" # \u2028 a line separator in a comment\nconfirm = "x"\n')
    assert main(["--config", str(path), "config"], stdout=io.StringIO()) == 2
    assert f"{path}:2: confirm:" in capsys.readouterr().err
    path.write_text("theme = '''\n[keymap]\n'''\nconfirm = \"x\"\n")
    assert main(["--config", str(path), "config"], stdout=io.StringIO()) == 2
    assert f"{path}:1: theme: no theme" in capsys.readouterr().err
    path.write_text('event_log = 200\nhosts = ["a"]\nx = """\nconfirm = 1\n"""\n')
    assert main(["--config", str(path), "config"], stdout=io.StringIO()) == 2
    assert f"{path}:3: x: not a setting" in capsys.readouterr().err


def test_a_huge_value_is_quoted_briefly(own_dirs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(own_dirs / "c.toml", 'theme = "' + "x" * 500_000 + '"\n')
    assert main(["--config", str(path), "config"], stdout=io.StringIO()) == 2
    assert len(capsys.readouterr().err) < 1000

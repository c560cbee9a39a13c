"""The zsh script: ``_arguments`` specs for the program and each subcommand (compsys)."""

from __future__ import annotations

import re

from .tree import Command, Value, short, sq, version

ZSH = r"""#compdef mdtui
# zsh completion for mdtui (@VERSION@), generated from its command line parser by
# `mdtui completion zsh`: regenerate it rather than edit it.  Install it as _mdtui in a
# directory of $fpath, before compinit runs:
#   mdtui completion zsh > ~/.zfunc/_mdtui    (and in ~/.zshrc: fpath=(~/.zfunc $fpath))
# or source it from ~/.zshrc after compinit:  source <(mdtui completion zsh)

# what mdtui itself lists (devices, catalog): the mdtui being completed is asked
_mdtui_list() {
  local -a found expl
  local prog=${_mdtui_prog:-mdtui}
  found=(${(f)"$(${prog/#\~/$HOME} completion --list $1 2>/dev/null </dev/null)"})
  _wanted $1 expl "${2:-$1}" compadd -a found
}

# the command a subcommand runs (rig -- COMMAND), completed as zsh completes it alone
_mdtui_command() {
  if [[ $words[1] == -- ]]; then
    shift words
    (( CURRENT-- ))
  fi
  _normal
}

# the program's own options again (serve -- MDTUI_ARGS): words[1] is skipped as a command
# name, and is -- only when -- was not taken as the end of options
_mdtui_self() {
  if [[ $words[1] != -- ]]; then
    words=(-- "$words[@]")
    (( CURRENT++ ))
  fi
  _mdtui_options
}

# words, and PREFIX%KIND forms: bundle:%file completes bundle:, then a file after it
_mdtui_forms() {
  local c
  local -a plain prefixes
  for c in "$@"; do
    if [[ $c == *%* ]]; then
      if compset -P "${(b)c%\%*}"; then
        case ${c#*\%} in
          file) _files ;;
          dir) _files -/ ;;
          host) _hosts ;;
          *) _message -e values "${c%\%*}..." ;;
        esac
        return
      fi
      prefixes+=(${c%\%*})
    else
      plain+=($c)
    fi
  done
  compadd -a plain
  compadd -S '' -a prefixes
}

@FUNCTIONS@

_mdtui() {
  local _mdtui_prog=$words[1]
  local curcontext=$curcontext state line ret=1
  typeset -A opt_args
  _arguments -C -S \
@ROOT@
    '(-)*:: :->command' && ret=0
  if [[ $state == command ]]; then
    curcontext=${curcontext%:*:*}:mdtui-$words[1]:
    case $words[1] in
@DISPATCH@
    esac
  fi
  return ret
}

_mdtui_commands() {
  local -a commands
  commands=(
@COMMANDS@
  )
  _describe -t commands 'mdtui command' commands
}

if [[ $zsh_eval_context[-1] == loadautofunc ]]; then
  _mdtui "$@"
else
  compdef _mdtui mdtui
fi
"""


def _zsh_escape(text: str) -> str:
    """Text for an _arguments spec's [explanation] or :message: part."""
    return re.sub(r"([\\\[\]:])", r"\\\1", text)


def _zsh_action(value: Value) -> str:
    if value.kind in ("choices", "subcommands"):
        return "(" + " ".join(re.sub(r"([\\()\s])", r"\\\1", w) for w in value.words) + ")"
    if value.kind == "file":
        return "_files"
    if value.kind == "dir":
        return "_files -/"
    if value.kind == "host":
        return "_hosts"
    if value.kind == "device":
        return " _mdtui_list devices 'media device'"  # a space first: called with these arguments alone
    if value.kind == "catalog":
        return " _mdtui_list catalog 'catalog name'"
    if value.kind == "forms":
        return " _mdtui_forms " + " ".join(value.spec().split()[1:]).replace(":", "\\:")  # : ends an action
    if value.kind == "command":
        return "_normal"
    return " "


def _zsh_message(metavar: str, name: str) -> str:
    """An argument's name in zsh's messages: its metavar, or ``name`` for a list of choices."""
    return _zsh_escape(name if metavar.startswith("{") else metavar)


def _zsh_specs(cmd: Command) -> list[str]:
    """The _arguments specs of a command's options and (non-subcommand) positionals."""
    specs = []
    for opt in cmd.options:
        exclusion = "(- *)" if opt.exits else "(" + " ".join(opt.strings) + ")" if len(opt.strings) > 1 else ""
        for s in opt.strings:
            head = ("*" if opt.repeat else "") + s
            text = f"[{_zsh_escape(short(opt.help))}]"
            if opt.value is None:
                specs.append(f"{exclusion}{head}{text}")
            else:
                sep = "=" if s.startswith("--") else "+"
                message = _zsh_message(opt.metavar, opt.strings[-1].lstrip("-"))
                specs.append(f"{exclusion}{head}{sep}{text}:{message}:{_zsh_action(opt.value)}")
    for n, pos in enumerate(cmd.positionals, 1):
        if pos.value.kind == "subcommands":
            specs.append("(-)1: :_mdtui_commands")  # (-): no option of this parser after it
        elif pos.value.kind == "command":
            specs.append("(-)*::command: _mdtui_command")
        elif pos.value.kind == "self":
            specs.append("(-)*::options: _mdtui_self")
        elif pos.many:
            specs.append(f"*:{_zsh_message(pos.name, pos.dest)}:{_zsh_action(pos.value)}")
        else:
            specs.append(f"{n}:{_zsh_message(pos.name, pos.dest)}:{_zsh_action(pos.value)}")
    return specs


def _zsh_function_name(name: str) -> str:
    return "_mdtui_" + re.sub(r"\W", "_", name)


def script(root: Command) -> str:
    """The zsh script: _arguments specs for the program and each subcommand."""
    functions = []
    dispatch = []
    for cmd in root.subcommands:
        fn = _zsh_function_name(cmd.name)
        body = " \\\n".join("    " + sq(s) for s in _zsh_specs(cmd))
        functions.append(f"{fn}() {{\n  _arguments -S \\\n{body}\n}}")
        dispatch.append(f"      {sq(cmd.name)}) {fn} && ret=0 ;;")
    root_specs = [s for s in _zsh_specs(root) if s != "(-)1: :_mdtui_commands"]
    body = " \\\n".join("    " + sq(s) for s in root_specs)
    functions.append(
        f"# the program's own options (serve -- MDTUI_ARGS)\n_mdtui_options() {{\n  _arguments -S \\\n{body}\n}}"
    )
    menu = [f"    {sq(c.name + ':' + short(c.summary))}" for c in root.subcommands]
    return (
        ZSH.replace("@VERSION@", version())
        .replace("@FUNCTIONS@", "\n\n".join(functions))
        .replace("@ROOT@", "".join(f"    {sq(s)} \\\n" for s in [*root_specs, "(-)1: :_mdtui_commands"]).rstrip("\n"))
        .replace("@DISPATCH@", "\n".join(dispatch))
        .replace("@COMMANDS@", "\n".join(menu))
    )

"""The bash script: the parser's tree as three lookups (values, positionals, options) and
the functions using them; bash-completion 2 when it is loaded, nothing else needed."""

from __future__ import annotations

from .tree import Command, commands, sq, value_cases, version

BASH = r"""# bash completion for mdtui (@VERSION@), generated from its command line parser by
# `mdtui completion bash`: regenerate it rather than edit it.  Install it with
#   mdtui completion bash > ~/.local/share/bash-completion/completions/mdtui
# (loaded on demand by bash-completion), or source it from ~/.bashrc:
#   source <(mdtui completion bash)
# With bash-completion loaded, file names and the command after 'mdtui rig --' complete as
# bash-completion completes them; without it, with compgen.

# _mdtui_value COMMAND OPTION: REPLY is how the value of OPTION (of COMMAND: '' before any)
# completes, empty when OPTION takes none
_mdtui_value()
{
    case "$1 $2" in
@VALUES@
        *) REPLY= ;;
    esac
}

# _mdtui_positional COMMAND N: REPLY is how COMMAND's positional argument N (from 0) completes
_mdtui_positional()
{
    case "$1 $2" in
@POSITIONALS@
        *) REPLY= ;;
    esac
}

# _mdtui_options COMMAND: REPLY is the options COMMAND takes
_mdtui_options()
{
    case $1 in
@OPTIONS@
        *) REPLY= ;;
    esac
}

# the words of the command line up to the cursor, with what readline split at = and :
# (COMP_WORDBREAKS) joined again: words, cword, cur (the word being completed), rl (the
# piece of it readline replaces), starts (each word's index in COMP_WORDS)
_mdtui_split()
{
    local line=${COMP_LINE:0:COMP_POINT} rest w i glued
    words=() starts=()
    for ((i = 0; i <= COMP_CWORD; i++)); do
        rest=${line#"${line%%[![:space:]]*}"}
        glued=$((i > 0 && ${#rest} == ${#line}))
        if ((i == COMP_CWORD)); then w=$rest; else w=${COMP_WORDS[i]}; fi
        line=${rest:${#w}}
        if ((glued)); then
            words[${#words[@]} - 1]+=$w
        else
            words+=("$w") starts+=("$i")
        fi
    done
    cword=$((${#words[@]} - 1))
    cur=${words[cword]}
    rl=$w
    [[ $rl == *[!=:]* ]] || rl=
}

# the arguments that start with $val, added to COMPREPLY
_mdtui_add()
{
    local c
    for c; do
        [[ $c == "$val"* ]] && COMPREPLY+=("$c")
    done
}

# file names (-d: directories) that start with $val
_mdtui_files()
{
    local cur=$val
    if declare -F _filedir >/dev/null; then
        _filedir "$@"
    else
        compopt -o filenames 2>/dev/null
        mapfile -t -O ${#COMPREPLY[@]} COMPREPLY < <(compgen "${1:--f}" -- "$cur")
    fi
}

# what mdtui itself lists (devices, catalog): the mdtui being completed is asked
_mdtui_list()
{
    local prog=${words[0]/#\~/$HOME}
    local -a found
    mapfile -t found < <("$prog" completion --list "$1" 2>/dev/null </dev/null)
    _mdtui_add "${found[@]}"
}

# _mdtui_complete SPEC: the values SPEC describes that start with $val, into COMPREPLY
_mdtui_complete()
{
    local -a spec
    read -ra spec <<<"$1"
    local c p v n
    case ${spec[0]} in
        choices | subcommands) _mdtui_add "${spec[@]:1}" ;;
        file) _mdtui_files ;;
        dir) _mdtui_files -d ;;
        device) _mdtui_list devices ;;
        catalog) _mdtui_list catalog ;;
        host) mapfile -t -O ${#COMPREPLY[@]} COMPREPLY < <(compgen -A hostname -- "$val") ;;
        executable) mapfile -t -O ${#COMPREPLY[@]} COMPREPLY < <(compgen -c -- "$val") ;;
        forms)
            for c in "${spec[@]:1}"; do
                if [[ $c != *%* ]]; then
                    _mdtui_add "$c"
                    continue
                fi
                p=${c%\%*}
                if [[ $val == "$p"* ]]; then
                    v=$val n=${#COMPREPLY[@]}
                    val=${v#"$p"}
                    _mdtui_complete "${c#*\%}"
                    val=$v
                    for ((; n < ${#COMPREPLY[@]}; n++)); do COMPREPLY[n]=$p${COMPREPLY[n]}; done
                else
                    _mdtui_add "$p"
                fi
            done
            [[ ${#COMPREPLY[@]} == 1 && ${COMPREPLY[0]} == *: ]] && compopt -o nospace 2>/dev/null
            ;;
    esac
}

_mdtui()
{
    local REPLY cur cword rl cmd= npos=0 skip= dashdash= nested= self= i w
    local -a words starts
    COMPREPLY=()
    _mdtui_split
    for ((i = 1; i < cword; i++)); do
        w=${words[i]}
        if [[ -n $skip ]]; then
            skip=
        elif [[ $w == -- && -z $dashdash ]]; then
            dashdash=1
            _mdtui_positional "$cmd" "$npos"
            [[ $REPLY == command ]] && nested=$((i + 1)) && break
            [[ $REPLY == self ]] && cmd= npos=0 dashdash= self=1
        elif [[ $w == -?* && -z $dashdash ]]; then
            [[ $w == *=* ]] && continue
            _mdtui_value "$cmd" "$w"
            [[ -n $REPLY ]] && skip=1
        else
            _mdtui_positional "$cmd" "$npos"
            case $REPLY in
                command) nested=$i && break ;;
                self) cmd= npos=0 self=1 && ((i--)) ;;
                subcommands*) [[ -z $self ]] && cmd=$w npos=0 dashdash= ;;
                *) ((npos++)) ;;
            esac
        fi
    done
    if [[ -n $nested ]] && declare -F _command_offset >/dev/null; then
        _command_offset "${starts[nested]}"
        return
    fi
    local val=$cur spec
    if [[ -n $nested ]]; then
        spec=file
        ((nested == cword)) && spec=executable
    elif [[ -n $skip ]]; then
        _mdtui_value "$cmd" "${words[cword - 1]}"
        spec=$REPLY
    elif [[ $cur == -* && -z $dashdash ]]; then
        if [[ $cur == -*=* ]]; then
            _mdtui_value "$cmd" "${cur%%=*}"
            spec=$REPLY val=${cur#*=}
        else
            _mdtui_options "$cmd"
            spec="choices $REPLY"
        fi
    else
        _mdtui_positional "$cmd" "$npos"
        spec=$REPLY
        [[ -n $self && $spec == subcommands* ]] && spec=
        if [[ $spec == command ]]; then
            if declare -F _command_offset >/dev/null; then
                _command_offset "${starts[cword]}"
                return
            fi
            spec=executable
        fi
    fi
    _mdtui_complete "$spec"
    # each candidate is a whole value of $cur; readline replaces only its last piece ($rl)
    local pre=${cur:0:${#cur}-${#val}} n=$((${#cur} - ${#rl}))
    for i in "${!COMPREPLY[@]}"; do
        w=$pre${COMPREPLY[i]}
        COMPREPLY[i]=${w:n}
    done
}

complete -F _mdtui mdtui
"""


def _bash_case(pattern_words: list[str], body: str) -> str:
    patterns = " | ".join(sq(w) for w in pattern_words)
    return f"        {patterns}) {body} ;;"


def script(root: Command) -> str:
    """The bash script: the parser's tree as three lookups, and the functions using them."""
    values = [_bash_case(keys, f"REPLY={sq(spec)}") for spec, keys in value_cases(root).items()]
    positionals, options = [], []
    for key, cmd in commands(root):
        for n, pos in enumerate(cmd.positionals):
            if pos.many:
                positionals.append(f"        {sq(key + ' ')}*) REPLY={sq(pos.value.spec())} ;;")
            else:
                positionals.append(_bash_case([f"{key} {n}"], f"REPLY={sq(pos.value.spec())}"))
        strings = [s for opt in cmd.options for s in opt.strings]
        options.append(_bash_case([key], f"REPLY={sq(' '.join(strings))}"))
    return (
        BASH.replace("@VERSION@", version())
        .replace("@VALUES@", "\n".join(values))
        .replace("@POSITIONALS@", "\n".join(positionals))
        .replace("@OPTIONS@", "\n".join(options))
    )

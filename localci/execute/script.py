"""The programs gitlab-runner's bash and sh shells generate for a job's script steps (§11.2,
§11.3): one implementation of the `$ command` echo, errexit/pipefail and after_script for every
executor (bash on the host; bash or, failing that, sh in a container).

Pure text generation: job variables, cwd and stdin come from the process that runs the program.
"""

from __future__ import annotations

from collections.abc import Sequence

from localci.errors import ConfigError

__all__ = ["SHELLS", "ScriptError", "after_script", "main_script"]

SHELLS = ("bash", "sh")

_BOLD_GREEN = "\033[32;1m"
_RESET = "\033[0;m"
# Go's strings.TrimSpace set (unicode.IsSpace); str.strip() would also strip \x1c-\x1f.
_GO_SPACE = (
    "\t\n\v\f\r \x85\xa0\u1680"
    + "".join(map(chr, range(0x2000, 0x200B)))
    + "\u2028\u2029\u202f\u205f\u3000"
)
_PIPEFAIL = {
    "bash": "set -o pipefail",
    # dash before 0.5.11 and other plain shells lack pipefail: use it only where it exists.
    "sh": "if (set -o pipefail) 2>/dev/null; then set -o pipefail; fi",
}


class ScriptError(ConfigError):
    """A command cannot be handed to bash (it contains a NUL character)."""


def main_script(
    commands: Sequence[str], *, trace: bool = False, color: bool = True, shell: str = "bash"
) -> str:
    """One `shell` program running before_script + script in a single shell, as GitLab does.

    Each command is announced as `$ command` (bold green when `color`) and then run as written;
    the first failing command ends the program with its exit code (errexit + pipefail).
    `trace` (CI_DEBUG_TRACE) turns on `set -o xtrace` for the commands.
    """
    return _program(commands, trace=trace, color=color, shell=shell)


def after_script(
    commands: Sequence[str], *, trace: bool = False, color: bool = True, shell: str = "bash"
) -> str:
    """The after_script program: same shape as `main_script`, meant for a fresh shell."""
    return _program(commands, trace=trace, color=color, shell=shell)


def _program(commands: Sequence[str], *, trace: bool, color: bool, shell: str) -> str:
    body = "".join(_command_lines(command, color=color) for command in commands)
    if trace:
        # Inside the eval'd body, so the trace shows each command rather than one huge `eval '…'`.
        body = "set -o xtrace\n" + body
    # The subshell keeps `set +e`, `exit` or traps of the user's commands away from the wrapper,
    # and its status is the status of the last command, as with gitlab-runner.
    run = f"( trap 'exit 1' TERM; eval {_quote(body)} ) < /dev/null"
    prologue = ("trap 'exit 1' TERM", _PIPEFAIL[shell], "set -o errexit", "set +o noclobber")
    return "\n".join((*prologue, run, "exit 0", ""))


def _command_lines(command: str, *, color: bool) -> str:
    if "\0" in command:
        raise ScriptError(f"a script command contains a NUL character: {command!r}")
    text = command.strip(_GO_SPACE)
    if not text:
        return "echo\n"
    first, newline, _ = text.partition("\n")
    notice = f"$ {first} # collapsed multi-line command" if newline else f"$ {text}"
    if color:
        notice = _BOLD_GREEN + notice + _RESET
    # printf, not echo: a user's `shopt -s xpg_echo` must not reinterpret backslashes.
    return f"printf '%s\\n' {_quote(notice)}\n{text}\n"


def _quote(text: str) -> str:
    """Single-quote for bash and sh: every character is literal except `'`, which is spliced in."""
    return "'" + text.replace("'", "'\\''") + "'"

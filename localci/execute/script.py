"""The bash programs gitlab-runner's bash shell generates for a job's script steps (§11.2, §11.3).

Pure text generation: job variables, cwd and stdin come from the process that runs the program.
"""

from __future__ import annotations

from collections.abc import Sequence

from localci.errors import ConfigError

__all__ = ["ScriptError", "after_script", "main_script"]

_BOLD_GREEN = "\033[32;1m"
_RESET = "\033[0;m"
# Go's strings.TrimSpace set (unicode.IsSpace); str.strip() would also strip \x1c-\x1f.
_GO_SPACE = (
    "\t\n\v\f\r \x85\xa0\u1680"
    + "".join(map(chr, range(0x2000, 0x200B)))
    + "\u2028\u2029\u202f\u205f\u3000"
)
_PROLOGUE = (
    "trap 'exit 1' TERM",
    "set -o pipefail",
    "set -o errexit",
    "set +o noclobber",
)


class ScriptError(ConfigError):
    """A command cannot be handed to bash (it contains a NUL character)."""


def main_script(commands: Sequence[str], *, trace: bool = False, color: bool = True) -> str:
    """One bash program running before_script + script in a single shell, as GitLab does.

    Each command is announced as `$ command` (bold green when `color`) and then run as written;
    the first failing command ends the program with its exit code (errexit + pipefail).
    `trace` (CI_DEBUG_TRACE) turns on `set -o xtrace` for the commands.
    """
    return _program(commands, trace=trace, color=color)


def after_script(commands: Sequence[str], *, trace: bool = False, color: bool = True) -> str:
    """The after_script program: same shape as `main_script`, meant for a fresh shell."""
    return _program(commands, trace=trace, color=color)


def _program(commands: Sequence[str], *, trace: bool, color: bool) -> str:
    body = "".join(_command_lines(command, color=color) for command in commands)
    if trace:
        # Inside the eval'd body, so the trace shows each command rather than one huge `eval '…'`.
        body = "set -o xtrace\n" + body
    # The subshell keeps `set +e`, `exit` or traps of the user's commands away from the wrapper,
    # and its status is the status of the last command, as with gitlab-runner.
    run = f"( trap 'exit 1' TERM; eval {_quote(body)} ) < /dev/null"
    return "\n".join((*_PROLOGUE, run, "exit 0", ""))


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
    """Single-quote for bash: every character is literal except `'`, which is spliced in."""
    return "'" + text.replace("'", "'\\''") + "'"

"""The generated bash programs behave like gitlab-runner's: one shell, errexit, echo format."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from localci.execute.process import ProcessOutcome, run_bash
from localci.execute.script import ScriptError, after_script, main_script

pytestmark = pytest.mark.slow

GREEN = "\033[32;1m"
RESET = "\033[0;m"


def run(program: str, cwd: Path, **env: str) -> tuple[ProcessOutcome, list[str]]:
    lines: list[str] = []
    base = {"PATH": os.environ["PATH"], "HOME": "/home/ci", "LC_ALL": "C.UTF-8"}
    outcome = run_bash(program, cwd=cwd, env={**base, **env}, on_output=lines.append)
    return outcome, lines


def run_main(commands: list[str], cwd: Path, **env: str) -> tuple[ProcessOutcome, list[str]]:
    return run(main_script(commands, color=False), cwd, **env)


# (command, expected output lines after the `$ command` line)
QUOTING = [
    ("echo 'single quotes'", ["single quotes"]),
    ('echo "double $HOME"', ["double /home/ci"]),
    ("echo \\$literal '$HOME'", ["$literal $HOME"]),
    ("printf '%s\\n' 'it'\\''s'", ["it's"]),
    ("echo \"a\\\\b\" 'c\\d'", ["a\\b c\\d"]),
    ("echo 'back\\slash\\n'", ["back\\slash\\n"]),
    ('echo "$(echo nested "inner quotes")"', ["nested inner quotes"]),
    ("echo `echo backticks`", ["backticks"]),
    ("echo ünïcödé ✓ 日本語 🙂", ["ünïcödé ✓ 日本語 🙂"]),
    ('echo "tab\tinside"', ["tab\tinside"]),
    ('x=\'a"b\'"c\'d"; echo "$x"', ["a\"bc'd"]),
    ("echo '!bang' \"!\" '%s %d %%'", ["!bang ! %s %d %%"]),
    ("echo \"'\\\"'\" ''\\'''", ["'\"' '"]),
    ("echo a # a comment with 'quote", ["a"]),
    ("echo ';' '&&' '|' \"\\`\"", ["; && | `"]),
    ("echo -e '\\x41\\t|'", ["A\t|"]),
    ('echo "x\ry"', ["x\ry"]),
    ('echo ${#HOME} "${HOME/ci/CI}"', ["8 /home/CI"]),
    ("echo '{}' [a] '*' ~nosuchuser", ["{} [a] * ~nosuchuser"]),
]


@pytest.mark.parametrize(("command", "expected"), QUOTING)
def test_weird_quoting_echoes_and_runs_exactly(
    tmp_path: Path, command: str, expected: list[str]
) -> None:
    outcome, lines = run_main([command], tmp_path)
    assert outcome.exit_code == 0, lines
    assert lines == [f"$ {command}", *expected]


def test_heredoc_multiline_command(tmp_path: Path) -> None:
    command = "cat <<'EOF'\n$HOME 'q' \"dq\" \\n `x`\nEOF\necho after"
    outcome, lines = run_main([command], tmp_path)
    assert outcome.exit_code == 0
    assert lines == [
        "$ cat <<'EOF' # collapsed multi-line command",
        "$HOME 'q' \"dq\" \\n `x`",
        "after",
    ]


def test_crlf_command_runs_as_written(tmp_path: Path) -> None:
    outcome, lines = run_main(["echo a\r\necho b"], tmp_path)
    assert outcome.exit_code == 0
    assert lines == ["$ echo a\r # collapsed multi-line command", "a\r", "b"]


def test_echo_format_single_multiline_empty_with_color(tmp_path: Path) -> None:
    program = main_script(["  echo one  ", "", "   ", "echo two\necho three\n"])
    outcome, lines = run(program, tmp_path)
    assert outcome.exit_code == 0
    assert lines == [
        f"{GREEN}$ echo one{RESET}",
        "one",
        "",
        "",
        f"{GREEN}$ echo two # collapsed multi-line command{RESET}",
        "two",
        "three",
    ]


def test_trim_uses_go_whitespace(tmp_path: Path) -> None:
    # \x1c is not whitespace for Go's TrimSpace: it stays part of the command.
    outcome, lines = run_main(["\u00a0echo nbsp\u3000", "echo x\x1c"], tmp_path)
    assert outcome.exit_code == 0
    assert lines == ["$ echo nbsp", "nbsp", "$ echo x\x1c", "x\x1c"]


def test_exit_code_of_first_failing_command(tmp_path: Path) -> None:
    outcome, lines = run_main(["echo before", "(exit 7)", "echo never"], tmp_path)
    assert outcome.exit_code == 7
    assert "never" not in lines
    assert lines[-1] == "$ (exit 7)"


def test_explicit_exit_zero_ends_successfully(tmp_path: Path) -> None:
    outcome, lines = run_main(["exit 0", "echo never"], tmp_path)
    assert outcome.exit_code == 0
    assert "never" not in lines


def test_pipefail(tmp_path: Path) -> None:
    outcome, lines = run_main(["false | true", "echo never"], tmp_path)
    assert outcome.exit_code == 1
    assert "never" not in lines


def test_errexit_holes(tmp_path: Path) -> None:
    commands = [
        "false && true",
        "if false; then :; fi",
        "! true",
        "false || echo or-branch",
        "f() { local x=$(exit 4); echo local-hole; }; f",
        "echo reached",
    ]
    outcome, lines = run_main(commands, tmp_path)
    assert outcome.exit_code == 0
    assert [line for line in lines if not line.startswith("$ ")] == [
        "or-branch",
        "local-hole",
        "reached",
    ]


def test_failing_assignment_substitution_aborts(tmp_path: Path) -> None:
    outcome, lines = run_main(["x=$(exit 3)", "echo never"], tmp_path)
    assert outcome.exit_code == 3
    assert "never" not in lines


def test_last_command_status_is_job_status(tmp_path: Path) -> None:
    # As with gitlab-runner: the eval's status is the status of its last command.
    outcome, _ = run_main(["echo x", "false && true"], tmp_path)
    assert outcome.exit_code == 1
    outcome, _ = run_main(["set +e", "false", "echo ok"], tmp_path)
    assert outcome.exit_code == 0
    outcome, _ = run_main(["set +e", "false"], tmp_path)
    assert outcome.exit_code == 1


def test_state_persists_between_commands(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    commands = [
        "cd sub",
        "export FOO=bar; PLAIN=plain",
        'greet() { echo "hello $1"; }',
        "alias_dir=$(pwd)",
        'echo "$PWD $FOO $PLAIN"',
        "greet world",
        "bash -c 'echo child sees ${FOO:-nothing} ${PLAIN:-nothing}'",
    ]
    outcome, lines = run_main(commands, tmp_path)
    assert outcome.exit_code == 0
    output = [line for line in lines if not line.startswith("$ ")]
    assert output == [f"{tmp_path}/sub bar plain", "hello world", "child sees bar nothing"]


def test_job_variables_come_from_the_environment(tmp_path: Path) -> None:
    outcome, lines = run_main(['echo "$CI_JOB_NAME"'], tmp_path, CI_JOB_NAME="test 1/2")
    assert outcome.exit_code == 0
    assert lines[-1] == "test 1/2"
    assert "export" not in main_script(['echo "$CI_JOB_NAME"'])


def test_stdin_is_dev_null(tmp_path: Path) -> None:
    outcome, lines = run_main(
        ["cat", "read -r x || echo eof", "readlink /proc/self/fd/0"], tmp_path
    )
    assert outcome.exit_code == 0
    assert [line for line in lines if not line.startswith("$ ")] == ["eof", "/dev/null"]


def test_noclobber_off(tmp_path: Path) -> None:
    outcome, _ = run_main(["echo a > f", "echo b > f"], tmp_path)
    assert outcome.exit_code == 0
    assert (tmp_path / "f").read_text() == "b\n"


def test_trace_shows_commands(tmp_path: Path) -> None:
    outcome, lines = run(main_script(["echo traced"], trace=True, color=False), tmp_path)
    assert outcome.exit_code == 0
    assert any(line.lstrip("+") == " echo traced" for line in lines)
    assert "traced" in lines


def test_after_script_runs_in_a_new_shell(tmp_path: Path) -> None:
    main = main_script(["export FROM_SCRIPT=1", "f() { :; }", "mkdir d", "cd d"], color=False)
    assert run(main, tmp_path)[0].exit_code == 0
    after = after_script(
        ['echo "${FROM_SCRIPT:-unset} $CI_JOB_STATUS"', "type f || echo no-f", "pwd"],
        color=False,
    )
    outcome, lines = run(after, tmp_path, CI_JOB_STATUS="failed")
    assert outcome.exit_code == 0
    output = [line for line in lines if not line.startswith("$ ")]
    assert output[0] == "unset failed"
    assert output[-2:] == ["no-f", str(tmp_path)]


def test_after_script_stops_at_first_failure(tmp_path: Path) -> None:
    outcome, lines = run(after_script(["false", "echo never"], color=False), tmp_path)
    assert outcome.exit_code == 1
    assert "never" not in lines


def test_syntax_error_in_a_command_fails_the_job(tmp_path: Path) -> None:
    outcome, lines = run_main(["echo first", "echo 'unterminated", "echo never"], tmp_path)
    assert outcome.exit_code not in (0, None)
    assert "first" in lines
    assert "never" not in lines


def test_nul_is_rejected() -> None:
    with pytest.raises(ScriptError):
        main_script(["echo a\0b"])


def test_program_shape() -> None:
    program = main_script(["echo hi"])
    head = program.splitlines()[:4]
    assert head == ["trap 'exit 1' TERM", "set -o pipefail", "set -o errexit", "set +o noclobber"]
    assert program.endswith("exit 0\n")
    assert "xtrace" not in program
    assert "xtrace" in main_script(["echo hi"], trace=True)
    assert "\033" not in main_script(["echo hi"], color=False)

"""The `localci` command group and its exit codes: the only place errors become exit codes.

Each command lives in one module of this package, imported only when that command is invoked
(or when `--help` lists them all): `localci list` does not pay for importing `run`."""

from __future__ import annotations

import os
import sys
from importlib import import_module
from pathlib import Path

import click

from localci import __version__, interrupts
from localci.cli.help_examples import add_examples
from localci.cli.options import Options, echo_err
from localci.errors import LocalCIError, UsageError

# Command name -> "module:attribute" of its click command.
COMMANDS = {
    "artifacts": "localci.cli.outputs:artifacts",
    "cache": "localci.cli.outputs:cache",
    "config": "localci.cli.lint:config",
    "doctor": "localci.cli.prepare:doctor",
    "explain": "localci.cli.pipeline:explain",
    "graph": "localci.cli.pipeline:graph",
    "hook": "localci.cli.prepare:hook",
    "lint": "localci.cli.lint:lint",
    "list": "localci.cli.pipeline:list_jobs",
    "logs": "localci.cli.outputs:logs",
    "prune": "localci.cli.outputs:prune",
    "pull": "localci.cli.prepare:pull",
    "report": "localci.cli.outputs:report",
    "run": "localci.cli.run:run_command",
}


class LazyGroup(click.Group):
    """A group whose commands are imported by name, when first asked for."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module, attribute = target.split(":")
        command = getattr(import_module(module), attribute)
        assert isinstance(command, click.Command)
        add_examples(command, cmd_name)
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="localci")
@click.option(
    "-C",
    "--directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=".",
    help="Run as if localci was started in DIR.",
)
@click.option(
    "--file",
    "config_file",
    default=".gitlab-ci.yml",
    show_default=True,
    help="The pipeline file, relative to the project directory.",
)
@click.pass_context
def cli(ctx: click.Context, directory: Path, config_file: str) -> None:
    """Run a repository's GitLab CI pipeline locally: offline, no Docker, no runner."""
    if not directory.is_dir():
        raise UsageError(f"-C {directory}: no such directory")
    ctx.obj = Options(directory=directory.resolve(), file=config_file)


add_examples(cli)  # the commands get theirs as they are loaded (LazyGroup.get_command)


def run_and_exit(argv: list[str] | None = None) -> None:
    """Run the CLI and turn every outcome into an exit code."""
    code = 130
    try:
        code = run(argv)
    except KeyboardInterrupt:
        pass  # a late Ctrl-C (while printing the outcome): keep the outcome's code
    finally:
        _ignore_late_signals()
    sys.exit(code)


def _ignore_late_signals() -> None:
    import signal

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)


def run(argv: list[str] | None = None) -> int:
    interrupts.reset()
    interrupts.install()
    try:
        cli.main(args=argv, prog_name="localci", standalone_mode=False)
    except click.exceptions.Abort:
        echo_err("interrupted")
        return 130
    except click.ClickException as exc:
        exc.show()
        return 2
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
    except LocalCIError as exc:
        echo_err(f"localci: {exc.render()}")
        return exc.exit_code
    except KeyboardInterrupt:
        echo_err("interrupted")
        return 130
    except BrokenPipeError:
        return 0
    except Exception:
        return _internal_error()
    return 0


def _internal_error() -> int:
    import tempfile
    import traceback

    text = f"localci {__version__}, Python {sys.version.split()[0]}\n{traceback.format_exc()}"
    log = Path(tempfile.gettempdir()) / f"localci-crash-{os.getpid()}.log"
    try:
        log.write_text(text)
        where = f"details in {log}"
    except OSError:
        where = "and the crash log could not be written:\n" + text
    echo_err(f"localci: internal error (a bug in localci, not in your pipeline); {where}")
    echo_err("please report it with that file")
    return 4

"""The examples that end each command's `--help`: two or three real command lines with what
they do. Job names are those of examples/data-science, so each line can be tried there."""

from __future__ import annotations

import click

__all__ = ["EXAMPLES", "add_examples"]

EXAMPLES: dict[str, tuple[tuple[str, str], ...]] = {
    "": (
        ("localci run", "run this branch's pipeline"),
        ("localci run --stage lint", "only the lint stage (try it on localci's own repository)"),
        ("localci list --branch main", "the jobs a push to main would create"),
    ),
    "lint": (
        ("localci lint", "validate .gitlab-ci.yml; every error with file:line"),
        ("localci lint --strict", "GitLab schema warnings fail too (exit 3)"),
        ("localci --file ci/release.yml lint", "validate another pipeline file"),
    ),
    "config": (
        ("localci config", "the merged configuration as YAML"),
        ("localci config --json --branch main", "as JSON, for a push to main"),
    ),
    "list": (
        ("localci list", "the jobs of this branch's pipeline, by stage"),
        ("localci list --all --tag v1.2.0", "every job for a tag pipeline, and why it is (not) in"),
        ("localci list --json --source schedule", "a scheduled pipeline's jobs as JSON"),
    ),
    "explain": (
        ("localci explain deploy-model", "why deploy-model is (not) in this branch's pipeline"),
        ("localci explain deploy-model --branch main", "... in a pipeline for main"),
        ("localci explain unit-tests --var RUN_SLOW=1", "... with a pipeline variable set"),
    ),
    "run": (
        ("localci run", "the whole pipeline of this branch"),
        ("localci run --stage test -j 2 --python 3.11", "one stage, 2 jobs at once, Python 3.11"),
        ("localci run --executor container --dry-run", "where each job would run, in its image"),
    ),
    "logs": (
        ("localci logs", "the jobs of the latest run and their status"),
        ("localci logs unit-tests", "the full log of unit-tests in the latest run"),
        ("localci logs unit-tests --pipeline 3", "... in run #3"),
    ),
    "artifacts": (
        ("localci artifacts", "the artifacts of the latest run, by job"),
        ("localci artifacts train-model --to out/", "copy train-model's artifacts to out/"),
    ),
    "graph": (
        ("localci graph", "stages as columns, with needs"),
        ("localci graph --format mermaid > pipeline.mmd", "Mermaid source for documentation"),
        ("localci graph --format dot | dot -Tsvg > pipeline.svg", "a Graphviz picture"),
    ),
    "prune": (
        ("localci prune --dry-run", "which old runs would go, and the space they take"),
        ("localci prune --keep 10", "keep the 10 newest runs (and what later runs need)"),
    ),
    "cache": (
        ("localci cache list", "this project's job caches"),
        ("localci cache clear", "remove them all"),
    ),
    "cache list": (
        ("localci cache list", "key, size, files and the job that saved each cache"),
        ("localci -C ../other cache list", "another project's caches"),
    ),
    "cache clear": (
        ("localci cache clear", "remove every cache of this project"),
        ("localci cache clear pip-cache", "remove the cache with key pip-cache"),
    ),
    "doctor": (
        ("localci doctor", "interpreters, git, container engine and disk localci would use"),
        ("localci -C ../other doctor", "the same, for another project's .localci/"),
    ),
    "pull": (
        ("localci pull", "pull the images of the jobs that run in containers (then --offline)"),
        ("localci pull --executor container", "also the Python images auto runs in venvs"),
    ),
    "report": (
        ("localci report --open", "open the latest run's page in the browser"),
        ("localci report --pipeline 3 -o run3.html", "write run #3's page elsewhere"),
        ("localci report --history", "recent runs with status, tests and coverage charts"),
    ),
    "hook": (
        ("localci hook install", "run the pipeline before every git push"),
        ("localci hook uninstall", "remove localci's hook"),
    ),
    "hook install": (
        ("localci hook install", "a pre-push hook that runs the branch's pipeline"),
        ("localci hook install --stage lint --stage test", "only these stages before a push"),
        ("localci hook install --force", "keep an existing hook as a backup, run it first"),
    ),
    "hook uninstall": (
        ("localci hook uninstall", "remove localci's pre-push hook (never another one)"),
        ("localci hook uninstall --hook pre-commit", "remove localci's pre-commit hook"),
    ),
}


def _epilog(examples: tuple[tuple[str, str], ...]) -> str:
    width = max(len(command) for command, _ in examples)
    # click rewraps paragraphs; one starting with \b is printed as written.
    lines = [f"  {command:<{width}}  # {what}" for command, what in examples]
    return "Examples:\n\n\b\n" + "\n".join(lines)


def add_examples(command: click.Command, path: str = "") -> None:
    """Give `command` and its subcommands their examples as the end of their help."""
    examples = EXAMPLES.get(path)
    if examples:
        command.epilog = _epilog(examples)
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            add_examples(sub, f"{path} {name}".strip())

"""Merged mapping -> validated, frozen `Pipeline`: GitLab's entry tree (docs/SEMANTICS.md §0,
steps 3-6)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from localci.config import keywords as kw
from localci.config import rule_keywords, variable_keywords
from localci.config.fields import Reader, describe
from localci.config.merge import flatten_commands, resolve_extends, resolve_references
from localci.config.model import DEFAULT_STAGES, Job, Pipeline, Workflow
from localci.config.yaml_source import LocDict, location_of
from localci.errors import ConfigError, Location, Problem

GLOBAL_KEYS = frozenset(
    {
        "default",
        "include",
        "before_script",
        "image",
        "services",
        "after_script",
        "variables",
        "stages",
        "types",
        "cache",
        "workflow",
        "spec",
    }
)
DEFAULT_KEYS = frozenset(
    {
        "after_script",
        "artifacts",
        "before_script",
        "cache",
        "hooks",
        "id_tokens",
        "identity",
        "image",
        "interruptible",
        "retry",
        "services",
        "tags",
        "timeout",
    }
)
LEGACY_GLOBALS = ("image", "services", "cache", "before_script", "after_script")
SCRIPT_KEYS = ("before_script", "script", "after_script")


def build_pipeline(config: LocDict, files: tuple[str, ...], warnings: list[str]) -> Pipeline:
    """Resolve extends/!reference/default and validate; raises ConfigError with every problem."""
    problems: list[Problem] = []
    config = resolve_references(resolve_extends(config, problems), problems)
    root = Reader(config, None, "", problems, config.loc, warnings)
    stages = _stages(root)
    variables = variable_keywords.variables(root, "variables", allow_options=True) or ()
    defaults = _defaults(config, root)
    workflow = _workflow(root)
    jobs: list[Job] = []
    merged_jobs: dict[str, Any] = {}
    for name, value in config.items():
        if name in GLOBAL_KEYS or name.startswith("."):
            continue
        raw = _job_mapping(name, value, config, problems, defaults)
        if raw is None:
            continue
        job = _job(name, raw, stages, problems, warnings, config.where(name))
        jobs.append(job)
        merged_jobs[name] = _merged_view(raw, job)
    _check_job_references(jobs, stages, problems)
    if not jobs and not problems:
        problems.append(
            Problem(
                "the configuration should contain at least one visible job",
                config.loc,
                hint="add a job with a `script:`",
            )
        )
    if problems:
        raise ConfigError(problems)
    merged = _merged_root(config, stages, merged_jobs)
    return Pipeline(
        stages=stages,
        variables=variables,
        workflow=workflow,
        jobs=tuple(jobs),
        files=files,
        merged=merged,
        warnings=tuple(warnings),
    )


def _stages(root: Reader) -> tuple[str, ...]:
    key = "stages" if "stages" in root.mapping else "types"
    if key not in root.mapping:
        return DEFAULT_STAGES
    declared = root.strings(key) or ()
    if key == "types":
        root.warnings.append(f"{root.where(key)}: `types` is deprecated; use `stages`")
    middle = [s for s in dict.fromkeys(declared) if s not in (".pre", ".post")]
    return (".pre", *middle, ".post")


def _defaults(config: LocDict, root: Reader) -> dict[str, Any]:
    """Deprecated globals first, then `default:` (which wins for the same keyword)."""
    defaults: dict[str, Any] = {k: config[k] for k in LEGACY_GLOBALS if k in config}
    default = root.mapping_of("default")
    if default is not None:
        reader = root.child("default", default)
        reader.unknown_keys(DEFAULT_KEYS, "default config")
        defaults.update({k: v for k, v in default.items() if k in DEFAULT_KEYS})
    return defaults


def _workflow(root: Reader) -> Workflow:
    workflow = root.mapping_of("workflow")
    if workflow is None:
        return Workflow()
    reader = root.child("workflow", workflow)
    reader.unknown_keys(frozenset({"rules", "name", "auto_cancel"}), "workflow config")
    rules = rule_keywords.rules(reader, "rules", workflow=True) if "rules" in workflow else None
    on_failure = "none"
    auto_cancel = reader.mapping_of("auto_cancel")
    if auto_cancel is not None:
        on_failure = (
            reader.child("auto_cancel", auto_cancel).choice(
                "on_job_failure", ("none", "all"), "none"
            )
            or "none"
        )
    return Workflow(rules=rules, name=reader.string("name"), on_job_failure=on_failure)


def _job_mapping(
    name: str, value: Any, config: LocDict, problems: list[Problem], defaults: Mapping[str, Any]
) -> dict[str, Any] | None:
    where = config.where(name)
    if not isinstance(value, dict):
        problems.append(
            Problem(
                f"should be a mapping with a `script:`, not {describe(value)}",
                where,
                job=name,
                hint="indent the job's keywords under its name",
            )
        )
        return None
    if not any(k in value for k in ("script", "trigger", "run")):
        problems.append(
            Problem(
                "config should implement the script:, run:, or trigger: keyword",
                where,
                job=name,
                hint="add `script:` (or make it a template by starting its name with a dot)",
            )
        )
        return None
    return _apply_defaults(name, value, defaults, problems)


def _apply_defaults(
    name: str, job: dict[str, Any], defaults: Mapping[str, Any], problems: list[Problem]
) -> dict[str, Any]:
    inherit = job.get("inherit") if isinstance(job.get("inherit"), dict) else {}
    allowed = inherit.get("default", True) if inherit else True
    merged = LocDict(job, loc=location_of(job))
    merged.key_locs.update(getattr(job, "key_locs", {}))
    if "trigger" in job:
        return merged
    for key, value in defaults.items():
        if key in job or not _inherits(allowed, key):
            continue
        merged[key] = value
    return merged


def _inherits(allowed: Any, key: str) -> bool:
    if isinstance(allowed, bool):
        return allowed
    if isinstance(allowed, list):
        return key in allowed
    return True


def _job(
    name: str,
    raw: dict[str, Any],
    stages: tuple[str, ...],
    problems: list[Problem],
    warnings: list[str],
    where: Location | None,
) -> Job:
    reader = Reader(raw, name, "", problems, where, warnings)
    reader.unknown_keys(kw.JOB_KEYS, f"jobs:{name} config")
    stage = _job_stage(reader, stages)
    return kw.job(reader, name, stage, where)


def _job_stage(reader: Reader, stages: tuple[str, ...]) -> str:
    stage = reader.string("stage") or reader.string("type") or "test"
    if stage not in stages:
        available = ", ".join(stages)
        reader.fail(
            "stage" if "stage" in reader.mapping else "script",
            f"chosen stage {stage!r} does not exist; available stages are {available}",
            hint=f"add {stage!r} to `stages:` or pick one of the listed stages",
        )
    return stage


def _merged_view(raw: Mapping[str, Any], job: Job) -> dict[str, Any]:
    """The job as GitLab's full-configuration view shows it."""
    out: dict[str, Any] = {"stage": job.stage}
    for key, value in raw.items():
        if key in ("extends", "stage", "type"):
            continue
        if key in SCRIPT_KEYS:
            out[key] = _flat_script(value)
        else:
            out[key] = plain(value)
    return out


def _flat_script(value: Any) -> list[Any]:
    if not isinstance(value, list):
        return [plain(value)]
    try:
        return [plain(item) for item in flatten_commands(value)]
    except ValueError:  # nested too deeply: already reported by the job's reader
        return [plain(value)]


def _merged_root(config: LocDict, stages: tuple[str, ...], jobs: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"stages": list(stages)}
    for key in ("variables", "workflow", "default"):
        if key in config:
            out[key] = plain(config[key])
    out.update(jobs)
    return out


def plain(value: Any) -> Any:
    """Plain dict/list/scalar copies (no location wrappers) for JSON and YAML output."""
    if value.__class__ in _SCALARS:
        return value
    if isinstance(value, dict):
        return {str(k): v if v.__class__ in _SCALARS else plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [v if v.__class__ in _SCALARS else plain(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


_SCALARS = frozenset({str, int, float, bool, type(None)})


def _check_job_references(
    jobs: list[Job], stages: tuple[str, ...], problems: list[Problem]
) -> None:
    """needs/dependencies must name jobs of the current or earlier stages (GitLab validation)."""
    stage_of = {job.name: stages.index(job.stage) for job in jobs if job.stage in stages}
    for job in jobs:
        if job.name not in stage_of:
            continue
        here = stage_of[job.name]
        for need in job.needs or ():
            if need.external or need.optional:
                continue
            _check_target(job, "needs", need.job, stage_of, here, problems)
        for name in job.dependencies or ():
            _check_target(job, "dependencies", name, stage_of, here, problems)


def _check_target(
    job: Job,
    key: str,
    target: str,
    stage_of: Mapping[str, int],
    here: int,
    problems: list[Problem],
) -> None:
    index = stage_of.get(_base_name(target, stage_of))
    if index is None:
        problems.append(
            Problem(
                f"{key} names {target!r}, which is not defined",
                job.location,
                job=job.name,
                path=key,
                hint="fix the job name",
            )
        )
    elif index > here:
        # GitLab's YamlProcessor#validate_job_dependency!: the same for needs and dependencies.
        problems.append(
            Problem(
                f"{key}: {target!r} is not defined in current or prior stages",
                job.location,
                job=job.name,
                path=key,
                hint=f"{target!r} runs in a later stage; move one of the jobs",
            )
        )


def _base_name(name: str, known: Mapping[str, int]) -> str:
    """`build 1/3` and `build: [a, b]` name instances of the parallel job `build`."""
    if name in known:
        return name
    for suffix in (r" \d+/\d+$", r": \[.*\]$"):
        base = re.sub(suffix, "", name)
        if base in known:
            return base
    return name

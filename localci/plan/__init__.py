"""Planning: from a resolved configuration and a pipeline context to the jobs that will run.

A pure function of its inputs (plus the git facts `changes`/`exists` read, injectable).
"""

from __future__ import annotations

from localci.plan.model import Plan, PlannedJob, PlannedNeed
from localci.plan.planner import build_plan, explain_job, select_jobs
from localci.plan.repo_facts import GitFacts, RepoFacts, StaticFacts

__all__ = [
    "GitFacts",
    "Plan",
    "PlannedJob",
    "PlannedNeed",
    "RepoFacts",
    "StaticFacts",
    "build_plan",
    "explain_job",
    "select_jobs",
]

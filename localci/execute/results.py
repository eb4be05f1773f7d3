"""The old home of localci/results.py (the status and result vocabulary, beside the events),
kept so that executor modules import unchanged while they are being reworked."""

from localci.results import (
    COMPLETE,
    Downstream,
    JobResult,
    RunResult,
    Status,
    TestSummary,
    composite,
    composite_of,
    contribution,
    decide,
    pipeline_status,
    with_downstream_status,
)

__all__ = [
    "COMPLETE",
    "Downstream",
    "JobResult",
    "RunResult",
    "Status",
    "TestSummary",
    "composite",
    "composite_of",
    "contribution",
    "decide",
    "pipeline_status",
    "with_downstream_status",
]

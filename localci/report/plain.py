"""Line-oriented live output: `[job] line`, no control codes (pipes, CI, --no-tty)."""

from __future__ import annotations

import threading

from rich.console import Console
from rich.text import Text

from localci.events import (
    Event,
    JobFinished,
    JobOutput,
    JobStarted,
    Notice,
    PipelineFinished,
    PipelineStarted,
)
from localci.report.summary import prepare_page, print_summary, status_label

JOB_STYLES = ("cyan", "magenta", "green", "yellow", "blue", "bright_cyan", "bright_magenta")


class PlainReporter:
    """Prints events as they come; `verbosity` 0 = quiet, 1 = normal, 2 = every output line."""

    def __init__(self, console: Console, *, verbosity: int = 1) -> None:
        self.console = console
        self.verbosity = verbosity
        self.width = 12
        self.styles: dict[str, str] = {}
        self.lock = threading.Lock()

    def __call__(self, event: Event) -> None:
        with self.lock:
            self._handle(event)

    def _handle(self, event: Event) -> None:
        if isinstance(event, PipelineStarted):
            prepare_page()
            self.width = min(30, max((len(n) for n, _, _ in event.jobs), default=8))
            if self.verbosity:
                self.console.print(
                    f"Pipeline #{event.pipeline_id}: {len(event.jobs)} job(s); "
                    f"records in {event.record_dir}"
                )
        elif isinstance(event, JobStarted):
            self._line(
                event.name,
                f"started (stage {event.stage})"
                + (f", attempt {event.attempt}" if event.attempt > 1 else ""),
            )
        elif isinstance(event, JobOutput):
            if self.verbosity >= 1:
                self._line(event.name, event.line)
        elif isinstance(event, JobFinished):
            self._finished(event)
        elif isinstance(event, Notice):
            if self.verbosity:
                prefix = f"[{event.job}] " if event.job else ""
                self.console.print(
                    Text(f"{prefix}warning: {event.text}", style="yellow"), soft_wrap=True
                )
        elif isinstance(event, PipelineFinished):
            print_summary(self.console, event.result)

    def _finished(self, event: JobFinished) -> None:
        result = event.result
        label, style = status_label(result)
        detail = f" ({result.duration_s:.1f}s)" if result.attempts else ""
        if result.reason and not result.attempts:
            detail = f": {result.reason}"
        elif result.reason and result.status.value != "success":
            detail += f": {result.reason}"
        if self.verbosity or result.status.value == "failed":
            self._line(result.name, Text(label, style=style) + detail)

    def _line(self, job: str, text: str | Text) -> None:
        if self.verbosity == 0:
            return
        if len(job) > self.width and " > " in job:  # a child pipeline's job, shown in full
            self.width = min(30, len(job))
        style = self.styles.setdefault(job, JOB_STYLES[len(self.styles) % len(JOB_STYLES)])
        # Padded for alignment up to `width`, never cut: a long matrix name cut short would
        # give its instances the same prefix.
        prefix = Text(f"[{job:<{self.width}}] ", style=style)
        body = text if isinstance(text, Text) else Text.from_ansi(text)
        self.console.print(prefix + body, soft_wrap=True)

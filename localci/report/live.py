"""The live board on a terminal: every job by stage with its status, elapsed time and last line.

Owns the board's state (fed by events from worker threads) and its three layouts.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import TracebackType

from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.live import Live
from rich.table import Table
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
from localci.report.plain import JOB_STYLES
from localci.report.summary import prepare_page, print_summary, status_label, tests_summary
from localci.results import JobResult, Status

COMPACT_WIDTH = 60
COLUMN_WIDTH = 26
FLUSH_INTERVAL = 0.1
SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
ICONS: dict[str, tuple[str, str]] = {
    "pending": ("○", "dim"),
    "running": ("", "bold blue"),  # the spinner frame
    "passed": ("✔", "green"),
    "failed": ("✘", "bold red"),
    "allowed": ("⚠", "yellow"),
    "skipped": ("»", "dim"),
    "manual": ("▶", "cyan"),
    "canceled": ("⊘", "magenta"),
    "blocked": ("⏸", "yellow"),
}
PHASES = {
    Status.SUCCESS: "passed",
    Status.FAILED: "failed",
    Status.CANCELED: "canceled",
    Status.SKIPPED: "skipped",
    Status.MANUAL: "manual",
    Status.CREATED: "blocked",
    Status.RUNNING: "running",
}
# When the board is taller than the terminal, these collapse to one line per stage, in order.
FOLD_ORDER = ("passed", "skipped", "manual", "pending", "blocked", "canceled", "allowed")


@dataclass(frozen=True, slots=True)
class JobView:
    """What the board knows about one job."""

    name: str
    stage: str
    when: str
    style: str
    started: float | None = None
    attempt: int = 1
    last_line: str = ""
    result: JobResult | None = None

    @property
    def phase(self) -> str:
        if self.result is None:
            return "pending" if self.started is None else "running"
        if self.result.failed_allowed and self.result.status is Status.FAILED:
            return "allowed"
        return PHASES[self.result.status]


@dataclass(frozen=True, slots=True)
class Folded:
    """Several jobs of one stage in the same phase, shown as one line."""

    phase: str
    count: int


@dataclass(frozen=True, slots=True)
class BoardState:
    """A consistent snapshot of the board, taken under the reporter's lock."""

    pipeline_id: int | None
    stages: tuple[str, ...]
    jobs: tuple[JobView, ...]
    started: float
    now: float
    by_stage: Mapping[str, tuple[JobView, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Every layout walks the jobs by stage several times per frame: group them once.
        groups: dict[str, list[JobView]] = {stage: [] for stage in self.stages}
        for job in self.jobs:
            groups.setdefault(job.stage, []).append(job)
        object.__setattr__(self, "by_stage", {s: tuple(jobs) for s, jobs in groups.items()})

    def stage_jobs(self, stage: str) -> tuple[JobView, ...]:
        return self.by_stage.get(stage, ())


class Board:
    """The renderable: picks a layout from the width and folds finished jobs to fit the height."""

    def __init__(self, state: BoardState) -> None:
        self.state = state

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = options.max_width
        height = max(options.size.height - 1, 4)
        state = self.state
        if width < COMPACT_WIDTH:
            yield Group(*compact_lines(state, width, height))
        elif len(state.stages) > 1 and len(state.stages) * (COLUMN_WIDTH + 2) <= width:
            yield columns_table(state, width, height)
        else:
            yield Group(*section_lines(state, width, height))


class LiveReporter:
    """Renders events as a live board; `verbosity` 0 = summary only, 1 = board, 2 = board + lines.

    Use as a context manager around the run so that the display always stops (Ctrl-C too).
    """

    def __init__(
        self,
        console: Console,
        *,
        verbosity: int = 1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.console = console
        self.verbosity = verbosity
        self.clock = clock
        self.lock = threading.Lock()
        self.live: Live | None = None
        self.pipeline_id: int | None = None
        self.views: dict[str, JobView] = {}
        self.stages: list[str] = []
        self.started = clock()
        self.ended: float | None = None
        self.prefix_width = 12
        self.pending: list[RenderableType] = []
        self.print_lock = threading.Lock()
        self.flusher: _Flusher | None = None

    def __enter__(self) -> LiveReporter:
        if self.verbosity >= 1:
            self.live = Live(
                console=self.console,
                get_renderable=self.board,
                transient=False,
                refresh_per_second=8,
                redirect_stdout=False,
                redirect_stderr=False,
            )
            self.live.start(refresh=True)
        if self.verbosity >= 2:
            self.flusher = _Flusher(self.flush, FLUSH_INTERVAL)
            self.flusher.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop the display (idempotent); the last frame stays on the screen."""
        flusher, self.flusher = self.flusher, None
        if flusher is not None:
            flusher.done.set()
            flusher.join()
        self.flush()
        with self.lock:
            live, self.live = self.live, None
            if self.ended is None:
                self.ended = self.clock()
        if live is not None:
            live.stop()

    def flush(self) -> None:
        """Print the lines waiting above the board, in one batch (one board redraw)."""
        with self.print_lock:
            with self.lock:
                items, self.pending = self.pending, []
            if items:
                self.console.print(Group(*items), soft_wrap=True)

    def board(self) -> Board:
        return Board(self.snapshot())

    def snapshot(self) -> BoardState:
        with self.lock:
            return BoardState(
                pipeline_id=self.pipeline_id,
                stages=tuple(self.stages),
                jobs=tuple(self.views.values()),
                started=self.started,
                now=self.clock() if self.ended is None else self.ended,
            )

    def __call__(self, event: Event) -> None:
        # Never print while holding the lock: Live's refresh thread holds its own lock while it
        # asks for the board (which takes ours), and printing takes Live's lock.
        with self.lock:
            self.pending.extend(self._apply(event))
        # Each print redraws the board: job output is batched by the flusher (-v), the rest
        # is printed at once.
        if self.flusher is None or not isinstance(event, JobOutput):
            self.flush()
        if isinstance(event, PipelineFinished):
            self.stop()
            print_summary(self.console, event.result)

    def _apply(self, event: Event) -> Iterable[RenderableType]:
        if isinstance(event, PipelineStarted):
            return self._pipeline_started(event)
        if isinstance(event, JobStarted):
            return self._job_started(event)
        if isinstance(event, JobOutput):
            return self._job_output(event)
        if isinstance(event, JobFinished):
            return self._job_finished(event.result)
        if isinstance(event, Notice):
            if self.verbosity == 0:
                return ()
            prefix = f"[{event.job}] " if event.job else ""
            return (Text(f"{prefix}warning: {event.text}", style="yellow"),)
        for result in event.result.jobs:
            self._job_finished(result)
        self.ended = self.clock()
        return ()

    def _pipeline_started(self, event: PipelineStarted) -> Iterable[RenderableType]:
        prepare_page()
        self.pipeline_id = event.pipeline_id
        self.started = self.clock()
        for name, stage, when in event.jobs:
            style = JOB_STYLES[len(self.views) % len(JOB_STYLES)]
            self.views[name] = JobView(name, stage, when, style)
            if stage not in self.stages:
                self.stages.append(stage)
        self.prefix_width = min(30, max((len(name) for name in self.views), default=8))
        if self.verbosity == 0:
            return ()
        return (
            Text(
                f"Pipeline #{event.pipeline_id}: {len(event.jobs)} job(s); "
                f"records in {event.record_dir}",
                style="dim",
            ),
        )

    def _view(self, name: str, stage: str = "") -> JobView:
        view = self.views.get(name)
        if view is None:  # an event for a job PipelineStarted did not list: show it anyway
            view = JobView(name, stage, "on_success", JOB_STYLES[len(self.views) % len(JOB_STYLES)])
            self.views[name] = view
            self._nest(name)
            if stage and stage not in self.stages:
                self.stages.append(stage)
        return view

    def _nest(self, name: str) -> None:
        """A child pipeline's job (`trigger > job`) goes right after its trigger's other jobs."""
        trigger = name.rpartition(" > ")[0]
        if not trigger or trigger not in self.views:
            return
        names = [n for n in self.views if n != name]
        after = max(i for i, n in enumerate(names) if n == trigger or n.startswith(trigger + " > "))
        names.insert(after + 1, name)
        self.views = {n: self.views[n] for n in names}

    def _job_started(self, event: JobStarted) -> Iterable[RenderableType]:
        view = self._view(event.name, event.stage)
        self.views[event.name] = replace(
            view, started=self.clock(), attempt=event.attempt, last_line="", result=None
        )
        if self.verbosity < 2:
            return ()
        retry = f", attempt {event.attempt}" if event.attempt > 1 else ""
        return (self._prefixed(event.name, Text(f"started (stage {event.stage}{retry})")),)

    def _job_output(self, event: JobOutput) -> Iterable[RenderableType]:
        view = self._view(event.name)
        line = board_line(event.line)
        if line:
            self.views[event.name] = replace(view, last_line=line)
        if self.verbosity < 2:
            return ()
        body = Text.from_ansi(event.line) if "\x1b" in event.line else Text(event.line)
        return (self._prefixed(event.name, body),)

    def _job_finished(self, result: JobResult) -> Iterable[RenderableType]:
        view = self._view(result.name, result.stage)
        self.views[result.name] = replace(view, result=result)
        if self.verbosity < 2:
            return ()
        label, style = status_label(result)
        detail = f" ({result.duration_s:.1f}s)" if result.attempts else ""
        if result.reason and result.status is not Status.SUCCESS:
            detail += f": {result.reason}"
        return (self._prefixed(result.name, Text(label, style=style) + detail),)

    def _prefixed(self, name: str, body: Text) -> Text:
        width = self.prefix_width
        shown = name if len(name) <= width else name[: width - 1] + "…"
        style = self.views[name].style if name in self.views else ""
        return Text(f"[{shown:<{width}}] ", style=style) + body


class _Flusher(threading.Thread):
    def __init__(self, flush: Callable[[], None], interval: float) -> None:
        super().__init__(name="localci-live-output", daemon=True)
        self.flush = flush
        self.interval = interval
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(self.interval):
            self.flush()


def board_line(line: str) -> str:
    """A job's output line as the board shows it: no colour codes, no carriage-return history."""
    if "\x1b" in line:
        line = Text.from_ansi(line).plain
    if "\r" in line:
        line = next((part for part in reversed(line.split("\r")) if part.strip()), "")
    return line.expandtabs(4).strip()


def format_seconds(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    whole = int(seconds)
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def elapsed(view: JobView, now: float) -> str:
    if view.result is not None:
        return format_seconds(view.result.duration_s) if view.result.attempts else ""
    if view.started is not None:
        return format_seconds(max(now - view.started, 0.0))
    return ""


def icon(view: JobView | Folded, now: float) -> Text:
    phase = view.phase
    glyph, style = ICONS[phase]
    if phase == "running":
        glyph = SPINNER[int(now * 10) % len(SPINNER)]
    return Text(glyph, style=style)


def detail(view: JobView) -> Text:
    """The text right of a job: its last line while it runs, then its outcome."""
    phase = view.phase
    if phase == "pending":
        return Text(view.when if view.when not in ("on_success", "") else "", style="dim")
    if phase == "running":
        retry = f"(attempt {view.attempt})" if view.attempt > 1 else ""
        return Text(" ".join(part for part in (retry, view.last_line) if part), style="dim")
    result = view.result
    assert result is not None
    parts = [tests_text(result), result.python_substitution.split(" (")[0]]
    if result.coverage is not None:
        parts.append(f"coverage {result.coverage:g}%")
    if phase != "passed":
        parts.append(result.reason)
    style = ICONS[phase][1] if phase in ("failed", "allowed") else "dim"
    return Text(" · ".join(part for part in parts if part), style=style)


def tests_text(result: JobResult) -> str:
    counts = tests_summary(result)
    return f"tests: {counts}" if counts else ""


def fit(text: str | Text, width: int, *, style: str = "", pad: bool = False) -> Text:
    """`text` cut to `width` cells with an ellipsis (and padded to it with `pad`)."""
    out = text.copy() if isinstance(text, Text) else Text(text, style=style)
    out.truncate(max(width, 0), overflow="ellipsis", pad=pad)
    return out


def header(state: BoardState, width: int) -> Text:
    done = sum(1 for job in state.jobs if job.result is not None)
    number = f"#{state.pipeline_id}" if state.pipeline_id is not None else ""
    clock = format_seconds(max(state.now - state.started, 0.0))
    if width < COMPACT_WIDTH:
        return fit(Text(f"{number} {done}/{len(state.jobs)} jobs · {clock}", style="bold"), width)
    if state.pipeline_id is None:
        return Text("Starting the pipeline…", style="bold")
    text = Text(f"Pipeline {number}", style="bold")
    running = sum(1 for job in state.jobs if job.phase == "running")
    text.append(f"  {done}/{len(state.jobs)} jobs done", style="")
    if running:
        text.append(f", {running} running")
    text.append(f"  {clock}", style="dim")
    return fit(text, width)


def stage_header(state: BoardState, stage: str, width: int) -> Text:
    jobs = state.stage_jobs(stage)
    done = sum(1 for job in jobs if job.result is not None)
    text = Text(stage, style="bold underline")
    text.append(f" {done}/{len(jobs)}", style="dim")
    return fit(text, width)


def entries(jobs: Sequence[JobView], folded: frozenset[str]) -> list[JobView | Folded]:
    """The stage's lines: its jobs in order, with folded phases counted on one line at the end."""
    out: list[JobView | Folded] = [job for job in jobs if job.phase not in folded]
    for phase in FOLD_ORDER:
        count = sum(1 for job in jobs if phase in folded and job.phase == phase)
        if count:
            out.append(Folded(phase, count))
    return out


def folds(height: Callable[[frozenset[str]], int], limit: int) -> frozenset[str]:
    """The fewest phases to fold (in FOLD_ORDER) for the board to fit; everything if never."""
    folded: frozenset[str] = frozenset()
    for phase in FOLD_ORDER:
        if height(folded) <= limit:
            return folded
        folded |= {phase}
    return folded


def phase_heights(state: BoardState, stages: Iterable[str]) -> list[list[tuple[str, int]]]:
    return [[(job.phase, 1) for job in state.stage_jobs(stage)] for stage in stages]


def folded_height(jobs: Sequence[tuple[str, int]], folded: frozenset[str]) -> int:
    shown = sum(lines for phase, lines in jobs if phase not in folded)
    return shown + len({phase for phase, _ in jobs if phase in folded})


def folded_line(item: Folded, width: int, indent: str) -> Text:
    glyph, style = ICONS[item.phase]
    label = {"allowed": "failed (allowed)", "pending": "pending"}.get(item.phase, item.phase)
    return fit(Text(f"{indent}{glyph} {item.count} {label}", style=style), width)


def section_lines(state: BoardState, width: int, height: int) -> list[Text]:
    """One section per stage, one line per job: icon, name, elapsed, last line or outcome."""
    name_width = min(max((len(job.name) for job in state.jobs), default=8), max(12, width // 3))

    used = [stage for stage in state.stages if state.stage_jobs(stage)]
    heights = phase_heights(state, used)
    folded = folds(lambda f: 1 + sum(1 + folded_height(h, f) for h in heights), height)
    lines = [header(state, width)]
    for stage in used:
        jobs = state.stage_jobs(stage)
        if not jobs:
            continue
        lines.append(stage_header(state, stage, width))
        for item in entries(jobs, folded):
            if isinstance(item, Folded):
                lines.append(folded_line(item, width, "  "))
                continue
            line = Text("  ") + icon(item, state.now) + " "
            line += fit(Text(item.name, style=item.style), name_width, pad=True)
            line += Text(f" {elapsed(item, state.now):>7}  ")
            rest = width - line.cell_len
            if rest >= 8:
                line += fit(detail(item), rest)
            lines.append(fit(line, width))
    return lines


def compact_lines(state: BoardState, width: int, height: int) -> list[Text]:
    """Narrow terminals: one line per job (icon, name, elapsed) under a one-line header."""

    heights = phase_heights(state, state.stages)
    folded = folds(lambda f: 1 + sum(folded_height(h, f) for h in heights), height)
    lines = [header(state, width)]
    for stage in state.stages:
        for item in entries(state.stage_jobs(stage), folded):
            if isinstance(item, Folded):
                lines.append(folded_line(item, width, f"{stage}: "))
                continue
            time_text = elapsed(item, state.now)
            room = width - 3 - (len(time_text) + 1 if time_text else 0)
            line = icon(item, state.now) + " " + fit(Text(item.name), room, pad=True)
            if time_text:
                line += " " + time_text
            lines.append(fit(line, width))
    return lines


def columns_table(state: BoardState, width: int, height: int) -> Group:
    """GitLab's pipeline page: a column per stage, a cell per job (a second line for detail)."""
    stages = [s for s in state.stages if state.stage_jobs(s)] or list(state.stages)
    column = (width - 2 * (len(stages) - 1)) // max(len(stages), 1)

    def cells(stage: str, folded: frozenset[str]) -> list[Text]:
        out: list[Text] = []
        for item in entries(state.stage_jobs(stage), folded):
            out.extend(column_cell(item, state.now, column))
        return out

    heights = [[(job.phase, cell_height(job)) for job in state.stage_jobs(s)] for s in stages]
    folded = folds(lambda f: 2 + max(folded_height(h, f) for h in heights), height)
    table = Table.grid(padding=(0, 2))
    for _ in stages:
        table.add_column(width=column, no_wrap=True, overflow="ellipsis")
    table.add_row(*(stage_header(state, stage, column) for stage in stages))
    table.add_row(*(Group(*cells(stage, folded)) for stage in stages))
    return Group(header(state, width), table)


def cell_detail(job: JobView) -> Text | None:
    """The second line of a job's cell: only for what needs attention, and junit counts."""
    phase = job.phase
    if phase in ("running", "failed", "allowed", "canceled") or (
        phase == "passed" and job.result is not None and job.result.tests is not None
    ):
        more = detail(job)
        return more if more.plain else None
    return None


def cell_height(job: JobView) -> int:
    return 1 if cell_detail(job) is None else 2


def column_cell(item: JobView | Folded, now: float, width: int) -> list[Text]:
    if isinstance(item, Folded):
        return [folded_line(item, width, "")]
    time_text = elapsed(item, now)
    room = width - 2 - (len(time_text) + 1 if time_text else 0)
    line = icon(item, now) + " " + fit(Text(item.name, style=item.style), room, pad=True)
    if time_text:
        line += Text(" " + time_text, style="dim")
    out = [fit(line, width)]
    more = cell_detail(item)
    if more is not None:
        out.append(fit(Text("  ") + more, width))
    return out

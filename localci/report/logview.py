"""A job log as the pipeline page shows it: ANSI colours as HTML, GitLab's collapsible sections
(`section_start`/`section_end` markers) and localci's own phases, each line escaped.

The output is a flat list of tokens (open a section, a line, close a section), so nested and
unbalanced markers from a user's script never produce unbalanced HTML.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import NamedTuple

from markupsafe import Markup, escape

#: A log longer than this shows its last lines only (with a link to the whole file).
MAX_LINES = 20_000

_SECTION = re.compile(
    r"section_(start|end):(\d+):([A-Za-z0-9_.-]+)(?:\[([^\]\r\n]*)\])?\r?(?:\x1b\[0?K)?"
)
_CSI = re.compile(r"\x1b\[([0-9;:?]*)([@-~])")
# OSC (title, hyperlinks), DCS, and two-character escapes: none of them are text.
_OTHER_ESCAPES = re.compile(
    r"\x1b(?:[\]P^_][^\x07\x1b]*(?:\x07|\x1b\\)?|[()#][0-9A-Za-z]|[=>78NOMDEHc])"
)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # ESC left over included
_PREPARE = "Preparing workspace "
_PHASE_STARTS = frozenset("PR$\x1b")  # the first characters of the lines that start a phase
_AFTER = "Running after script..."


class LogToken(NamedTuple):
    """`kind` is 'open' (a section: its title, collapsed), 'line' or 'close'; `html` is escaped.

    A named tuple: one is made per log line, and tuples are made fastest."""

    kind: str
    html: str = ""
    number: int = 0
    collapsed: bool = False
    phase: bool = False
    duration: str = ""


class _Style(NamedTuple):
    fg: str = ""
    bg: str = ""
    flags: tuple[str, ...] = ()
    inline: str = ""


_PLAIN = _Style()


@lru_cache(maxsize=512)
def _open_tag(style: _Style) -> str:
    """The span that draws `style` ('' for the terminal's default)."""
    if style == _PLAIN:
        return ""
    classes = " ".join(c for c in (style.fg, style.bg, *style.flags) if c)
    # classes and inline colours are made here from numbers: nothing to escape in them
    inline = f' style="{style.inline}"' if style.inline else ""
    return f'<span class="{classes}"{inline}>'


@dataclass
class _Parser:
    before_script: int
    tokens: list[LogToken] = field(default_factory=list)
    style: _Style = _PLAIN
    depth: int = 0  # open GitLab sections inside the current phase
    phase: str = ""
    announces: int = 0
    number: int = 0
    open_at: list[tuple[int, str, int]] = field(default_factory=list)  # token, name, start

    def feed(self, line: str) -> None:
        """One line of the log, already escaped: escaping leaves escape sequences, section
        markers and phase lines as they are, so they are parsed in the escaped text."""
        self.number += 1
        if "\x1b" not in line and "\r" not in line and "section_" not in line:
            if not self.depth and line[:1] in _PHASE_STARTS:
                self._phase(line)
            if line.isprintable() or not _CONTROL.search(line):
                tag = _open_tag(self.style)
                html = f"{tag}{line}</span>" if tag and line else line
                self.tokens.append(LogToken("line", html, self.number))
                return
        line = line.rstrip("\r")
        if "section_" in line and _SECTION.search(line):
            self._markers(line)
            return
        if not self.depth and line[:1] in _PHASE_STARTS and _may_start_phase(line):
            self._phase(_plain_text(line))
        self._line(line)

    def _line(self, text: str) -> None:
        if "\r" in text:  # a progress bar redrawn in place: the terminal shows the last state
            text = next((part for part in reversed(text.split("\r")) if part), "")
        self.tokens.append(LogToken("line", self._render(text), self.number))

    def _markers(self, line: str) -> None:
        position = 0
        for match in _SECTION.finditer(line):
            before = line[position : match.start()]
            if before.strip():
                self._line(before)
            kind, stamp, name, options = match.groups()
            position = match.end()
            if kind == "start":
                header = line[position:]
                self._open(header or name, name, int(stamp), "collapsed=true" in (options or ""))
                return
            self._close_named(name, int(stamp))
        rest = line[position:]
        if rest.strip():
            self._line(rest)

    def _open(self, header: str, name: str, stamp: int, collapsed: bool) -> None:
        self.open_at.append((len(self.tokens), name, stamp))
        self.tokens.append(LogToken("open", self._render(header), self.number, collapsed))
        self.depth += 1

    def _close_named(self, name: str, stamp: int) -> None:
        names = [entry[1] for entry in self.open_at]
        if name not in names:
            return  # an end without its start: nothing to close
        while self.open_at:
            index, opened, started = self.open_at.pop()
            self.depth -= 1
            self.tokens[index] = _with_duration(self.tokens[index], stamp - started)
            self.tokens.append(LogToken("close"))
            if opened == name:
                return

    def _phase(self, plain: str) -> None:
        if plain.startswith(_PREPARE):
            self._switch("prepare", "Preparing the environment")
            self.announces = 0
        elif plain == _AFTER:
            self._switch("after_script", "after_script")
        elif plain.startswith("$ ") and self.phase in ("", "prepare", "before_script"):
            self.announces += 1
            if self.announces == 1 and self.before_script:
                self._switch("before_script", "before_script")
            elif self.announces == self.before_script + 1:
                self._switch("script", "script")

    def _switch(self, phase: str, title: str) -> None:
        self.close_all()
        self.phase = phase
        self.tokens.append(LogToken("open", str(escape(title)), self.number, phase=True))
        self.open_at.append((len(self.tokens) - 1, f"\0{phase}", -1))

    def close_all(self) -> None:
        for _ in self.open_at:
            self.tokens.append(LogToken("close"))
        self.open_at.clear()
        self.depth = 0

    def _render(self, text: str) -> str:
        """HTML of one (escaped) line with its colours; the runs of text between escape
        sequences come from one C-speed split."""
        if text.count("\x1b") != text.count("\x1b["):
            text = _OTHER_ESCAPES.sub("", text)
        parts = _CSI.split(text)  # text, (params, final, text)*
        out = [self._styled(parts[0])]
        style = self.style
        for index in range(1, len(parts), 3):
            if parts[index + 1] == "m":
                style = self.style = _next_style(style, parts[index])
            out.append(self._styled(parts[index + 2]))
        return "".join(out)

    def _styled(self, text: str) -> str:
        """`text` (escaped already) in the current style."""
        if not text:
            return ""
        if not text.isprintable():
            text = _CONTROL.sub("", text)
        tag = _open_tag(self.style)
        return f"{tag}{text}</span>" if tag else text


def _with_duration(token: LogToken, seconds: int) -> LogToken:
    if seconds < 0:
        return token
    minutes, secs = divmod(seconds, 60)
    return token._replace(duration=f"{minutes:02d}:{secs:02d}")


def _may_start_phase(line: str) -> bool:
    return "$ " in line or _PREPARE in line or _AFTER in line


def _plain_text(line: str) -> str:
    return _CSI.sub("", line)


_BASIC = {30 + i: i for i in range(8)} | {90 + i: 8 + i for i in range(8)}
_FLAGS = {1: "bo", 2: "di", 3: "it", 4: "un"}
_UNSET = {22: ("bo", "di"), 23: ("it",), 24: ("un",)}


@lru_cache(maxsize=1024)
def _next_style(style: _Style, params: str) -> _Style:
    """The style after an SGR sequence (`ESC[<params>m`)."""
    codes = [int(p) if p.isdigit() else 0 for p in re.split("[;:]", params)] if params else [0]
    fg, bg, flags, inline = style
    index = 0
    while index < len(codes):
        code = codes[index]
        index += 1
        if code == 0:
            fg, bg, flags, inline = "", "", (), ""
        elif code in _FLAGS and _FLAGS[code] not in flags:
            flags = (*flags, _FLAGS[code])
        elif code in _UNSET:
            flags = tuple(f for f in flags if f not in _UNSET[code])
        elif code in _BASIC:
            fg, inline = f"f{_BASIC[code]}", ""
        elif code - 10 in _BASIC:
            bg = f"b{_BASIC[code - 10]}"
        elif code == 39:
            fg, inline = "", ""
        elif code == 49:
            bg = ""
        elif code in (38, 48):
            colour, index = _extended(codes, index)
            if code == 38 and colour:
                fg, inline = colour
    return _Style(fg, bg, flags, inline)


def _extended(codes: list[int], index: int) -> tuple[tuple[str, str] | None, int]:
    """38/48;5;n and 38/48;2;r;g;b as (class, inline style); only foregrounds are kept."""
    if index < len(codes) and codes[index] == 5 and index + 1 < len(codes):
        colour = codes[index + 1]
        return ((f"f{colour}", "") if colour < 16 else ("", f"color:{_xterm(colour)}")), index + 2
    if index < len(codes) and codes[index] == 2 and index + 3 < len(codes):
        r, g, b = (min(255, c) for c in codes[index + 1 : index + 4])
        return ("", f"color:#{r:02x}{g:02x}{b:02x}"), index + 4
    return None, len(codes)


def _xterm(colour: int) -> str:
    if colour >= 232:
        level = 8 + (min(colour, 255) - 232) * 10
        return f"#{level:02x}{level:02x}{level:02x}"
    colour -= 16
    steps = [0, 95, 135, 175, 215, 255]
    r, g, b = steps[colour // 36 % 6], steps[colour // 6 % 6], steps[colour % 6]
    return f"#{r:02x}{g:02x}{b:02x}"


@dataclass(frozen=True, slots=True)
class RenderedLog:
    tokens: tuple[LogToken, ...]
    total_lines: int
    omitted: int  # lines left out at the start of a very long log


def render_log(lines: Iterable[str], *, before_script: int = 0, skipped: int = 0) -> RenderedLog:
    """The tokens of a log's lines (the last MAX_LINES of them); `skipped` lines before these
    were not even read."""
    kept = list(lines)
    omitted = max(0, len(kept) - MAX_LINES)
    kept = kept[omitted:]
    omitted += skipped
    # One C-speed escape of the whole text; escaping never adds or removes a newline.
    escaped = str(escape("\n".join(kept))).split("\n") if kept else []
    parser = _Parser(before_script)
    parser.number = omitted
    feed = parser.feed
    for line in escaped:
        feed(line)
    parser.close_all()
    return RenderedLog(tuple(parser.tokens), omitted + len(kept), omitted)


def log_html(tokens: Iterable[LogToken]) -> Markup:
    """The log's HTML: a line per `div`, sections as `details` (open unless collapsed).

    Built here rather than in the template: a template loop over thousands of lines costs
    more than the rest of the page."""
    out: list[str] = []
    add = out.append
    for token in tokens:
        if token.kind == "line":
            add(f'<div class="l" data-n="{token.number}">{token.html}</div>\n')
        elif token.kind == "open":
            classes = "sec phase" if token.phase else "sec"
            number = "" if token.phase else str(token.number)
            duration = f'<span class="dur">{token.duration}</span>' if token.duration else ""
            add(
                f'<details class="{classes}"{"" if token.collapsed else " open"}><summary>'
                f'<div class="l" data-n="{number}">{token.html}</div>{duration}</summary>\n'
            )
        else:
            add("</details>\n")
    return Markup("".join(out))  # noqa: S704 - every text in it went through escape()

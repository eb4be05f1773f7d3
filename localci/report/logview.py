"""A job log as the pipeline page shows it: ANSI colours as HTML, GitLab's collapsible sections
(`section_start`/`section_end` markers) and localci's own phases, each line escaped.

The output is a flat list of tokens (open a section, a line, close a section), so nested and
unbalanced markers from a user's script never produce unbalanced HTML.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

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
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1a\x1c-\x1f\x7f]")
_ANNOUNCE = re.compile(r"\$ ")
_PREPARE = "Preparing workspace "
_AFTER = "Running after script..."


@dataclass(frozen=True, slots=True)
class LogToken:
    """`kind` is 'open' (title, collapsed), 'line' (html, number) or 'close'."""

    kind: str
    html: Markup = field(default_factory=Markup)
    number: int = 0
    collapsed: bool = False
    phase: bool = False
    duration: str = ""


@dataclass
class _Style:
    fg: str = ""
    bg: str = ""
    flags: tuple[str, ...] = ()
    inline: str = ""

    def classes(self) -> str:
        return " ".join(c for c in (self.fg, self.bg, *self.flags) if c)

    def plain(self) -> bool:
        return not (self.fg or self.bg or self.flags or self.inline)


@dataclass
class _Parser:
    before_script: int
    tokens: list[LogToken] = field(default_factory=list)
    style: _Style = field(default_factory=_Style)
    depth: int = 0  # open GitLab sections inside the current phase
    phase: str = ""
    announces: int = 0
    number: int = 0
    open_at: list[tuple[int, str, int]] = field(default_factory=list)  # token, name, start

    def feed(self, raw: str) -> None:
        self.number += 1
        line = raw.rstrip("\r")
        if "section_" in line and _SECTION.search(line):
            self._markers(line)
            return
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
        if self.depth:
            return
        if plain.startswith(_PREPARE):
            self._switch("prepare", "Preparing the environment")
            self.announces = 0
        elif plain == _AFTER:
            self._switch("after_script", "after_script")
        elif _ANNOUNCE.match(plain) and self.phase in ("", "prepare", "before_script"):
            self.announces += 1
            if self.announces == 1 and self.before_script:
                self._switch("before_script", "before_script")
            elif self.announces == self.before_script + 1:
                self._switch("script", "script")

    def _switch(self, phase: str, title: str) -> None:
        self.close_all()
        self.phase = phase
        self.tokens.append(LogToken("open", escape(title), self.number, phase=True))
        self.open_at.append((len(self.tokens) - 1, f"\0{phase}", -1))

    def close_all(self) -> None:
        for _ in self.open_at:
            self.tokens.append(LogToken("close"))
        self.open_at.clear()
        self.depth = 0

    def _render(self, text: str) -> Markup:
        text = _OTHER_ESCAPES.sub("", text)
        if "\x1b" not in text:
            return self._styled(_CONTROL.sub("", text))
        out: list[str] = []
        position = 0
        for match in _CSI.finditer(text):
            out.append(self._styled(_CONTROL.sub("", text[position : match.start()])))
            if match.group(2) == "m":
                _apply_sgr(self.style, match.group(1))
            position = match.end()
        out.append(self._styled(_CONTROL.sub("", text[position:].replace("\x1b", ""))))
        return Markup("").join(out)

    def _styled(self, text: str) -> Markup:
        if not text:
            return Markup()
        if self.style.plain():
            return escape(text)
        if self.style.inline:
            return Markup('<span class="{}" style="{}">{}</span>').format(
                self.style.classes(), self.style.inline, text
            )
        return Markup('<span class="{}">{}</span>').format(self.style.classes(), text)


def _with_duration(token: LogToken, seconds: int) -> LogToken:
    if seconds < 0:
        return token
    minutes, secs = divmod(seconds, 60)
    text = f"{minutes:02d}:{secs:02d}"
    return LogToken(token.kind, token.html, token.number, token.collapsed, token.phase, text)


def _plain_text(line: str) -> str:
    return _CSI.sub("", line)


_BASIC = {30 + i: i for i in range(8)} | {90 + i: 8 + i for i in range(8)}
_FLAGS = {1: "bo", 2: "di", 3: "it", 4: "un"}
_UNSET = {22: ("bo", "di"), 23: ("it",), 24: ("un",)}


def _apply_sgr(style: _Style, params: str) -> None:
    codes = [int(p) if p.isdigit() else 0 for p in re.split("[;:]", params)] if params else [0]
    index = 0
    while index < len(codes):
        code = codes[index]
        index += 1
        if code == 0:
            style.fg, style.bg, style.flags, style.inline = "", "", (), ""
        elif code in _FLAGS and _FLAGS[code] not in style.flags:
            style.flags = (*style.flags, _FLAGS[code])
        elif code in _UNSET:
            style.flags = tuple(f for f in style.flags if f not in _UNSET[code])
        elif code in _BASIC:
            style.fg, style.inline = f"f{_BASIC[code]}", ""
        elif code - 10 in _BASIC:
            style.bg = f"b{_BASIC[code - 10]}"
        elif code == 39:
            style.fg = ""
        elif code == 49:
            style.bg = ""
        elif code in (38, 48):
            index = _extended(style, code, codes, index)


def _extended(style: _Style, code: int, codes: list[int], index: int) -> int:
    """38/48;5;n and 38/48;2;r;g;b; only the foreground keeps a rare colour (inline style)."""
    if index < len(codes) and codes[index] == 5 and index + 1 < len(codes):
        colour = codes[index + 1]
        if code == 38 and colour < 16:
            style.fg, style.inline = f"f{colour}", ""
        elif code == 38:
            style.fg, style.inline = "", f"color:{_xterm(colour)}"
        return index + 2
    if index < len(codes) and codes[index] == 2 and index + 3 < len(codes):
        r, g, b = (min(255, c) for c in codes[index + 1 : index + 4])
        if code == 38:
            style.fg, style.inline = "", f"color:#{r:02x}{g:02x}{b:02x}"
        return index + 4
    return len(codes)


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


def render_log(lines: Iterable[str], *, before_script: int = 0) -> RenderedLog:
    """The tokens of a log's lines (the last MAX_LINES of them)."""
    kept = list(lines)
    omitted = max(0, len(kept) - MAX_LINES)
    parser = _Parser(before_script)
    parser.number = omitted
    for line in kept[omitted:]:
        parser.feed(line)
    parser.close_all()
    return RenderedLog(tuple(parser.tokens), len(kept), omitted)


def last_lines(tokens: Iterable[LogToken], count: int) -> Iterator[LogToken]:
    """The last `count` line tokens (for tests and summaries)."""
    lines = [t for t in tokens if t.kind == "line"]
    yield from lines[-count:]

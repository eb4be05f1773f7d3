"""GitLab's human durations (`timeout`, `start_in`, `expire_in`), as ChronicDuration reads them."""

from __future__ import annotations

import re

_UNITS = {
    "s": 1,
    "sec": 1,
    "secs": 1,
    "second": 1,
    "seconds": 1,
    "m": 60,
    "min": 60,
    "mins": 60,
    "minute": 60,
    "minutes": 60,
    "h": 3600,
    "hr": 3600,
    "hrs": 3600,
    "hour": 3600,
    "hours": 3600,
    "d": 86400,
    "day": 86400,
    "days": 86400,
    "w": 604800,
    "wk": 604800,
    "week": 604800,
    "weeks": 604800,
    "mo": 2592000,
    "month": 2592000,
    "months": 2592000,
    "y": 31536000,
    "yr": 31536000,
    "year": 31536000,
    "years": 31536000,
}
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([a-z]*)")


def parse_duration(text: str | int | float | None) -> float | None:
    """Seconds for '1h 30m', '90 minutes', '3600', '1 day and 2 hours'; None if unreadable."""
    if text is None:
        return None
    if isinstance(text, (int, float)):
        return float(text)
    cleaned = text.strip().lower().replace(",", " ").replace(" and ", " ")
    if cleaned in ("never", ""):
        return None
    if re.fullmatch(r"\d+(?:\.\d+)?", cleaned):
        return float(cleaned)
    if re.fullmatch(r"\d+:\d{2}(?::\d{2})?", cleaned):
        parts = [int(p) for p in cleaned.split(":")]
        return float(sum(p * 60**i for i, p in enumerate(reversed(parts))))
    total = 0.0
    position = 0
    for match in _PART.finditer(cleaned):
        if cleaned[position : match.start()].strip():
            return None
        unit = match.group(2) or "s"
        if unit not in _UNITS:
            return None
        total += float(match.group(1)) * _UNITS[unit]
        position = match.end()
    if cleaned[position:].strip() or position == 0:
        return None
    return total

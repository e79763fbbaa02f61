"""ISO 8601 dates as SDTM writes them (possibly partial, possibly with a time), made comparable.

A partial date compares by its first possible day (`1991-04` -> 1991-04-01). Two instants on different
days compare by day. On the same day they compare by time only when both carry one; otherwise they
count as the same moment (so a same-day score without a time is "on or before" a dose, never "after").
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, time
from functools import lru_cache

_ISO = re.compile(
    r"^(?P<y>\d{4})(?:-(?P<m>\d{2})(?:-(?P<d>\d{2})"
    r"(?:T(?P<H>\d{2})(?::(?P<M>\d{2})(?::(?P<S>\d{2})(?:\.\d+)?)?)?)?)?)?$"
)

__all__ = ["Instant", "days_inclusive", "parse_instant"]


@dataclass(frozen=True, order=True)
class Instant:
    """A point on the study calendar: its first possible day and, if written, its time of day."""

    day: date
    clock: time | None = None

    def sort_key(self) -> tuple[date, time]:
        """Chronological order; a missing time sorts before any written time of the same day."""
        return (self.day, self.clock if self.clock is not None else time.min)

    def _same_day_compare(self, other: Instant) -> int:
        if self.day != other.day:
            return -1 if self.day < other.day else 1
        if self.clock is None or other.clock is None or self.clock == other.clock:
            return 0
        return -1 if self.clock < other.clock else 1

    def on_or_before(self, other: Instant) -> bool:
        """True when this instant is not known to come after `other`."""
        return self._same_day_compare(other) <= 0

    def before(self, other: Instant) -> bool:
        """True when this instant is known to come strictly before `other`."""
        return self._same_day_compare(other) < 0

    def after(self, other: Instant) -> bool:
        """True when this instant is known to come strictly after `other`."""
        return self._same_day_compare(other) > 0


@lru_cache(maxsize=65536)
def parse_instant(text: str) -> Instant | None:
    """Parse an SDTM --DTC value; None for an empty or unreadable value (treated as missing)."""
    match = _ISO.match(text.strip())
    if match is None:
        return None
    try:
        day = date(int(match["y"]), int(match["m"] or 1), int(match["d"] or 1))
        clock = (
            time(int(match["H"]), int(match["M"] or 0), int(match["S"] or 0))
            if match["H"] is not None
            else None
        )
    except ValueError:
        return None
    return Instant(day, clock)


def days_inclusive(first: date, last: date) -> int:
    """Number of calendar days from `first` to `last`, both included (0 if `last` precedes `first`)."""
    return max(0, (last - first).days + 1)

"""Waits between attempts of a call that failed for a while (registration, lease, reports)."""

from __future__ import annotations


class Backoff:
    """Waits that double from `first` up to `longest`, until reset."""

    def __init__(self, first: float, longest: float) -> None:
        self._first, self._longest = first, longest
        self._next = first

    def next(self) -> float:
        delay, self._next = self._next, min(self._next * 2, self._longest)
        return delay

    def reset(self) -> None:
        self._next = self._first

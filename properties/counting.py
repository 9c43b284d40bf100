"""How many Hypothesis examples the property suite ran (printed by ``conftest.py``)."""

from __future__ import annotations

from collections import Counter

__all__ = ["count_example", "example_counts"]

_COUNTS: Counter[str] = Counter()


def count_example(name: str) -> None:
    """Record that property ``name`` ran one example (shrinking runs included)."""
    _COUNTS[name] += 1


def example_counts() -> dict[str, int]:
    return dict(_COUNTS)

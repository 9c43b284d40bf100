"""The malformed implementations of this folder: what breaks the contract, how, and on which cases.

Part of the catalogue (see :mod:`catalogue`); it imports nothing from the project.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

from catalogue_cases import HERE, Case, as_case, is_minimal

__all__ = ["MalformedEntry", "MALFORMED"]


def _always(case: Case) -> bool:
    return True


@dataclass(frozen=True)
class MalformedEntry:
    """An implementation that breaks the contract.

    On ``examples`` the report exits ``exit_status`` with ``message`` in its
    JSON ``"error"`` (or ``"notes"``) and ``implementation_status`` in its JSON.
    ``failing`` says on which cases it misbehaves (exit 1); on
    ``passing_examples`` it is correct (exit 0).
    """

    file: str
    description: str
    exit_status: int
    message: str
    examples: list[list[str]] = field(default_factory=lambda: [[]])
    implementation_status: str = "failed"
    failing: Callable[[Case], bool] = _always
    passing_examples: list[list[str]] = field(default_factory=list)

    @property
    def spec(self) -> str:
        """The ``--impl`` spec (an absolute path, so it works from any directory)."""
        return f"{HERE / self.file}:grads"

    def fails(self, config: Any, lengths: Sequence[int] | None = None) -> bool:
        """True when the report must exit 1 on ``config``/``lengths``."""
        return self.exit_status == 1 and self.failing(as_case(config, lengths))

    def minimal(self, case_json: Mapping[str, Any]) -> bool:
        """True when ``case_json`` is a minimal failing case (see :func:`is_minimal`)."""
        return is_minimal(self.fails, case_json)


def _unsorted_lengths(case: Case) -> bool:
    lengths = case["lengths"]
    return lengths is not None and any(b > a for a, b in pairwise(lengths))


MALFORMED: tuple[MalformedEntry, ...] = (
    MalformedEntry(
        file="bad_returns_list.py",
        description="returns [loss, grads]",
        exit_status=1,
        message="returned a list of length 2; the contract asks for a tuple",
    ),
    MalformedEntry(
        file="bad_wrong_shape.py",
        description="weight_hh_l0's gradient transposed",
        exit_status=1,
        message="gradient 'weight_hh_l0' has shape (5, 20), expected (20, 5)",
    ),
    MalformedEntry(
        file="bad_nan.py",
        description="NaN in bias_hh_l0's output-gate rows",
        exit_status=1,
        message="gradient 'bias_hh_l0' has a non-finite value nan at index (15,)",
    ),
    MalformedEntry(
        file="bad_raises.py",
        description="raises ValueError for lengths not sorted in decreasing order",
        exit_status=1,
        message="ValueError: lengths must be sorted in decreasing order, got [2, 6, 4]",
        examples=[["--lengths", "2,6,4"]],
        failing=_unsorted_lengths,
        passing_examples=[[], ["--lengths", "6,4,4"]],
    ),
    MalformedEntry(
        file="bad_unknown_key.py",
        description="an extra key 'weight_ih' without the layer suffix",
        exit_status=1,
        message="returned a gradient for unknown key 'weight_ih'",
    ),
    MalformedEntry(
        file="prints_to_stdout.py",
        description="correct but prints with print(): passes, its output goes to stderr",
        exit_status=0,
        message="the implementation printed to standard output or error",
        implementation_status="ok",
    ),
)

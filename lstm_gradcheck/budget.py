"""The report's time budget: what runs within it, estimated by the one cost model.

Note [Report budget]
--------------------
A report first pays its fixed costs, which every verdict needs: the implementation, the exact
answer and its conditioning probes, torch's start-up and oracle, and the screen's probes (the
judge without autodiff of every tensor, at any size). Their measured time calibrates the cost
model (Note [Cost model]) for the machine as it is now; the other oracles then run in RUN_ORDER
while MARGIN times their estimate fits in what is left of ``--budget``, and one that does not
is skipped with its estimate: nothing skipped counts as judged. The screen's search after a
failing probe, and step localization after a mismatch, get only what is left.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from lstm_gradcheck.oracles import cost
from lstm_gradcheck.reference.config import LSTMConfig

__all__ = ["DEFAULT_BUDGET", "RUN_ORDER", "FIXED", "MARGIN", "Budget", "localization_work"]

#: Seconds a report may spend unless ``--budget`` says otherwise (its fixed costs may exceed it).
DEFAULT_BUDGET = 10.0
#: The order in which the oracles get the budget: the fast exact ones, then the screen, which
#: judges every tensor at any size, then the full element checks, then the step-size probes.
RUN_ORDER = ("torch", "torch-nn", "screen", "complex-step", "fd", "richardson", "directional", "taylor")
#: Oracles that run whatever the budget: torch, the exact reference, and the screen, the one
#: judge without autodiff whose cost does not grow with the number of elements (its search
#: after a failing probe gets only what is left of the budget).
FIXED = ("torch", "screen")
#: An oracle runs only if this multiple of its estimate fits in what is left: calibrated estimates
#: measured 0.5 to 1.3 times the actual time (tests/test_screen.py), so the budget holds when they
#: fall short.
MARGIN = 2.0


@dataclass
class Budget:
    """``seconds`` from ``start`` (time.perf_counter()); ``speed`` the cost model's rates, once calibrated."""

    seconds: float
    start: float = field(default_factory=time.perf_counter)
    speed: cost.Speed = cost.SPEED
    estimates: dict[str, float] = field(default_factory=dict)

    def left(self) -> float:
        return self.seconds - (time.perf_counter() - self.start)

    def calibrate(self, seconds: float, work: cost.Work) -> None:
        """Scale the rates so that ``work`` takes the ``seconds`` it was just measured to take."""
        self.speed = cost.calibrated(seconds, work)

    def estimate(self, config: LSTMConfig, oracle: str, torch_seconds: float | None = None) -> float:
        """Estimated seconds of ``oracle``; torch-nn's is the torch oracle's measured time when known."""
        if oracle == "torch-nn" and torch_seconds is not None:
            seconds = torch_seconds
        else:
            seconds = self.speed.seconds(cost.oracle_work(config, oracle))
        self.estimates[oracle] = seconds
        return seconds

    def over(self, what: str, estimate: float) -> str | None:
        """Why ``what`` does not run (None if it fits in what is left)."""
        left = self.left()
        if MARGIN * estimate <= left:
            return None
        return (
            f"estimated {_seconds(estimate)} (x{MARGIN:g} for safety), more than the {_seconds(max(0.0, left))} "
            f"left of the {self.seconds:g} s budget; raise --budget to run it"
        )

    def as_dict(self) -> dict[str, object]:
        return {
            "seconds": self.seconds,
            "spent": time.perf_counter() - self.start,
            "estimates": dict(self.estimates),
        }


def localization_work(config: LSTMConfig, per_step: bool, max_steps: int) -> cost.Work:
    """Step localization's work beyond the implementation's own runs: torch's per-step run, or
    for each suffix length T' <= ``max_steps`` a judging context and a torch run of T' steps."""
    if per_step:
        return cost.oracle_work(config, "torch") * 3.0
    if config.seq_len > max_steps:
        return cost.Work()
    total = cost.Work()
    for steps in range(1, config.seq_len + 1):
        cut = config.replace(seq_len=steps)
        total = total + cost.conditioning_work(cut) + cost.reference_work(cut) + cost.oracle_work(cut, "torch")
    return total


def _seconds(value: float) -> str:
    return f"{value:.2g} s" if value < 100 else f"{value:.0f} s"

"""Every oracle by name, in one table: the single source of names, kinds and precedence.

The command line's ``--oracle`` choices and help, the report's choice of which
oracle's numbers a row shows, and the docs' oracle table all come from
:data:`ORACLES`. The torch oracles are described here and import torch only
when they run.
"""

from __future__ import annotations

import importlib
import sys
import time
from collections.abc import Mapping
from types import MappingProxyType

import numpy as np

from lstm_gradcheck.oracles.compare import compare_gradients
from lstm_gradcheck.oracles.complex_step import COMPLEX
from lstm_gradcheck.oracles.directional import DIRECTIONAL
from lstm_gradcheck.oracles.expressible import torch_nn_unfit
from lstm_gradcheck.oracles.finite_difference import FD, RICHARDSON
from lstm_gradcheck.oracles.judging import JudgingContext
from lstm_gradcheck.oracles.screen import SCREEN
from lstm_gradcheck.oracles.taylor import TAYLOR
from lstm_gradcheck.oracles.types import (
    FAIL,
    FULL,
    PASS,
    SKIPPED,
    FullGradient,
    LossFn,
    OracleAbstains,
    OracleReport,
    OracleSpec,
)
from lstm_gradcheck.reference.config import LSTMConfig

__all__ = [
    "ORACLES",
    "oracle_names",
    "oracle_help",
    "by_precedence",
    "default_oracles",
    "fitting_oracles",
    "run_oracle",
    "start_torch",
    "TORCH_MODULE",
]

#: The module of the torch oracles; importing it starts torch.
TORCH_MODULE = "lstm_gradcheck.oracles.torch_autograd"


def _torch(context: JudgingContext) -> FullGradient:
    result = importlib.import_module(TORCH_MODULE).torch_grads(context.case)
    return FullGradient(result.loss, result.grads, forward_passes=1)


def _torch_nn(context: JudgingContext) -> FullGradient:
    result = importlib.import_module("lstm_gradcheck.oracles.torch_nn").nn_grads(context.case)
    details = {"forward_backward_seconds": result.forward_backward_seconds}
    return FullGradient(result.loss, result.grads, 1, details=details)


TORCH = OracleSpec(
    "torch",
    "the contract's equations in torch float64 under autograd",
    kind=FULL,
    precedence=0,
    needs_torch=True,
    gradient=_torch,
)
TORCH_NN = OracleSpec(
    "torch-nn",
    "the real torch.nn.LSTM + nn.Linear + torch's loss modules, float64",
    kind=FULL,
    precedence=1,
    unfit=torch_nn_unfit,
    needs_torch=True,
    gradient=_torch_nn,
)

#: Every oracle by CLI name, in the order the CLI lists them.
ORACLES: Mapping[str, OracleSpec] = MappingProxyType(
    {spec.name: spec for spec in (TORCH, TORCH_NN, SCREEN, FD, RICHARDSON, COMPLEX, TAYLOR, DIRECTIONAL)}
)


def oracle_names() -> tuple[str, ...]:
    return tuple(ORACLES)


def by_precedence() -> tuple[str, ...]:
    """Oracle names, most precise first: a report row shows the first that judged its tensor."""
    return tuple(sorted(ORACLES, key=lambda name: ORACLES[name].precedence))


def oracle_help() -> str:
    """One line per oracle, ``name  summary``, for the command line's help."""
    width = max(len(name) for name in ORACLES)
    return "\n".join(f"  {name:<{width}}  {spec.summary}" for name, spec in ORACLES.items())


def default_oracles(config: LSTMConfig) -> tuple[str, ...]:
    """Every oracle that can judge the case and fits its size (the CLI's default)."""
    return tuple(name for name, spec in ORACLES.items() if spec.unfit(config) is None and spec.costly(config) is None)


def fitting_oracles(config: LSTMConfig) -> tuple[str, ...]:
    """Every oracle that can judge the case, whatever its cost (a report's budget chooses among them)."""
    return tuple(name for name, spec in ORACLES.items() if spec.unfit(config) is None)


def start_torch(names: tuple[str, ...] | list[str]) -> float:
    """Import torch if any of ``names`` needs it and it is not loaded yet; the seconds it took (the
    report shows torch's start-up apart from the oracles' own time)."""
    if TORCH_MODULE in sys.modules or not any(ORACLES[n].needs_torch for n in names):
        return 0.0
    start = time.perf_counter()
    importlib.import_module(TORCH_MODULE)
    return time.perf_counter() - start


def run_oracle(
    name: str,
    context: JudgingContext,
    loss: float | None,
    grads: Mapping[str, np.ndarray],
    loss_fn: LossFn | None = None,
    *,
    requested: bool = False,
    seconds: float | None = None,
) -> OracleReport:
    """Run oracle ``name`` on the context's case and judge the implementation's ``loss``/``grads``.

    ``loss_fn`` is what judging oracles differentiate numerically (None: the contract's
    model); full-gradient oracles ignore it. ``requested`` (asked for by name) runs an
    oracle that is only costly for the case. An oracle that cannot judge the case, or
    abstains on it, is skipped with its reason. ``seconds`` is the time an oracle that
    searches (the screen) may spend (None: its own default).
    """
    spec = ORACLES[name]
    config = context.case.config
    reason = context.unjudgeable or spec.unfit(config) or (None if requested else spec.costly(config))
    if reason is not None:
        return OracleReport(name, SKIPPED, 0.0, 0, reason=reason)
    start = time.perf_counter()
    try:
        if spec.judge is not None:
            extra = {"seconds": seconds} if spec.takes_seconds else {}
            report = spec.judge(context, loss, grads, loss_fn, **extra)
            return OracleReport(**{**report.__dict__, "seconds": time.perf_counter() - start})
        answer = spec.gradient(context)
    except OracleAbstains as abstained:
        return OracleReport(name, SKIPPED, time.perf_counter() - start, 0, reason=str(abstained))
    seconds = time.perf_counter() - start
    check = compare_gradients(
        context.case, loss, grads, answer.loss, answer.grads, name,
        tolerance=context.tolerance(answer.grads), oracle_errors=answer.errors,
    )  # fmt: skip
    verdict = PASS if check.ok else FAIL
    return OracleReport(name, verdict, seconds, answer.forward_passes, check, details=answer.details)

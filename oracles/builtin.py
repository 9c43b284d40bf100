"""Registers the built-in oracles; torch is imported only when a torch oracle runs.

The NumPy oracles (``fd``, ``richardson``, ``complex-step``, ``taylor``, ``directional``)
are imported lazily too, when they run or are asked whether they fit.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from lstm_gradcheck.oracles.registry import FullGradient, LossFn, OracleAbstains, OracleReport, OracleSpec, register
from lstm_gradcheck.reference.case import Case
from lstm_gradcheck.reference.config import LSTMConfig


def _torch(case: Case) -> FullGradient:
    from lstm_gradcheck.oracles.torch_autograd import torch_grads  # noqa: PLC0415 (torch loads only when used)

    result = torch_grads(case)
    return FullGradient(result.loss, result.grads, forward_passes=1)


def _torch_nn(case: Case) -> FullGradient:
    from lstm_gradcheck.oracles.torch_nn import nn_grads  # noqa: PLC0415

    result = nn_grads(case)
    return FullGradient(
        result.loss,
        result.grads,
        forward_passes=1,
        details={"forward_backward_seconds": result.forward_backward_seconds},
    )


def torch_nn_unfit(config: LSTMConfig) -> str | None:
    """Why torch.nn.LSTM cannot express ``config`` (None if it can)."""
    if config.cell_output != "tanh":
        return "cell_output 'identity' (h = o*c): torch.nn.LSTM always computes h = o*tanh(c)"
    return None


register(
    OracleSpec(
        "torch",
        "the contract's equations in torch float64 under autograd",
        unfit=lambda config: None,
        gradient=_torch,
    )
)
register(
    OracleSpec(
        "torch-nn",
        "the real torch.nn.LSTM + nn.Linear + torch's loss modules, float64",
        unfit=torch_nn_unfit,
        gradient=_torch_nn,
    )
)


def _full(result) -> FullGradient:
    return FullGradient(result.loss, result.grads, result.forward_passes, result.errors or None, result.details)


def _smooth_enough(case: Case, method: str) -> None:
    from lstm_gradcheck.oracles.finite_difference import too_rough  # noqa: PLC0415

    reason = too_rough(case, method)
    if reason is not None:
        raise OracleAbstains(reason)


def _fd(case: Case) -> FullGradient:
    from lstm_gradcheck.oracles.finite_difference import central_gradient  # noqa: PLC0415

    _smooth_enough(case, "fd")
    return _full(central_gradient(case))


def _richardson(case: Case) -> FullGradient:
    from lstm_gradcheck.oracles.finite_difference import richardson_gradient  # noqa: PLC0415

    _smooth_enough(case, "richardson")
    return _full(richardson_gradient(case))


def _complex_step(case: Case) -> FullGradient:
    from lstm_gradcheck.oracles.complex_step import complex_step_gradient  # noqa: PLC0415

    return _full(complex_step_gradient(case))


def _fd_unfit(config: LSTMConfig) -> str | None:
    from lstm_gradcheck.oracles.finite_difference import fd_unfit  # noqa: PLC0415

    return fd_unfit(config)


def _richardson_unfit(config: LSTMConfig) -> str | None:
    from lstm_gradcheck.oracles.finite_difference import richardson_unfit  # noqa: PLC0415

    return richardson_unfit(config)


def _complex_step_unfit(config: LSTMConfig) -> str | None:
    from lstm_gradcheck.oracles.complex_step import complex_step_unfit  # noqa: PLC0415

    return complex_step_unfit(config)


def _taylor(
    case: Case, loss: float, grads: Mapping[str, np.ndarray], conditioning: Mapping[str, float], loss_fn: LossFn
) -> OracleReport:
    from lstm_gradcheck.oracles.taylor import taylor_judge  # noqa: PLC0415

    return taylor_judge(case, loss, grads, conditioning, loss_fn)


def _directional(
    case: Case, loss: float, grads: Mapping[str, np.ndarray], conditioning: Mapping[str, float], loss_fn: LossFn
) -> OracleReport:
    from lstm_gradcheck.oracles.directional import directional_judge  # noqa: PLC0415

    return directional_judge(case, loss, grads, conditioning, loss_fn)


register(
    OracleSpec(
        "fd",
        "central differences of every element (float64, step eps^(1/3) max(|θ|,1)) with per-element error bounds",
        unfit=lambda config: None,
        costly=_fd_unfit,
        gradient=_fd,
    )
)
register(
    OracleSpec(
        "richardson",
        "Richardson-extrapolated central differences at H, 2H, 4H with per-element error bounds",
        unfit=lambda config: None,
        costly=_richardson_unfit,
        gradient=_richardson,
    )
)
register(
    OracleSpec(
        "complex-step",
        "Im L(θ + i h e_i)/h for every element, complex128 forward, no cancellation",
        unfit=lambda config: None,
        costly=_complex_step_unfit,
        gradient=_complex_step,
    )
)
register(
    OracleSpec(
        "taylor",
        "Taylor remainder |L(θ+hv) - L(θ) - h<g,v>| must fall as h² (slope 2), per tensor",
        unfit=lambda config: None,
        judge=_taylor,
    )
)
register(
    OracleSpec(
        "directional",
        "<g, v> against central differences along random v, per tensor and gate block",
        unfit=lambda config: None,
        judge=_directional,
    )
)

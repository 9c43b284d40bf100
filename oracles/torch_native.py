"""Torch-native implementations: a module or function in torch, checked through autograd in its own tensors.

A kernel writer's LSTM is a ``torch.nn.Module`` with ``torch.nn.LSTM``'s constructor and call
(``Module(input_size, hidden_size, num_layers=L)``, then ``module(x, (h0, c0)) -> (output,
(h_n, c_n))``), or a function ``lstm(x, (h0, c0), params) -> (output, (h_n, c_n))`` taking the
parameters by ``torch.nn.LSTM``'s names. This adapter builds the case's tensors in the case's
dtype (float64, float32 or bfloat16) on the asked device, copies the parameters in by name,
runs the forward, the contract's head and loss in the same dtype, and ``backward()``: so a
custom ``autograd.Function``'s own backward is what produces the gradients that are judged.

Note [Torch-native implementations]
-----------------------------------
Like torch.nn.LSTM, such code has no forget_bias: it is folded into ``bias_ih``'s forget
rows (a constant shift, which leaves every gradient as it is), and the identity cell and
other settings torch.nn.LSTM cannot express are refused (NotImplementedError). Variable
lengths arrive as a ``PackedSequence`` (``enforce_sorted=False``), as torch.nn.LSTM takes
them. The adapter runs in the implementation's worker process, never in the harness's.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping

import numpy as np
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from lstm_gradcheck.oracles.expressible import torch_nn_unfit
from lstm_gradcheck.oracles.torch_autograd import final_state_term, reduced_loss
from lstm_gradcheck.reference.case import Case
from lstm_gradcheck.reference.layout import HEAD_BIAS, HEAD_WEIGHT, STATE_INPUTS, gate_slice

__all__ = ["MODULE", "FUNCTION", "TORCH_DTYPES", "native_kind", "native_grads", "devices"]

MODULE, FUNCTION = "torch module", "torch function"
TORCH_DTYPES = {"float64": torch.float64, "float32": torch.float32, "bfloat16": torch.bfloat16}


def devices() -> tuple[str, ...]:
    """The devices this machine can run a torch-native implementation on."""
    return ("cpu", "cuda") if torch.cuda.is_available() else ("cpu",)


def native_kind(obj: object) -> str | None:
    """:data:`MODULE` for an ``nn.Module`` subclass, :data:`FUNCTION` for a function of three or
    more positional parameters ``(x, hx, params)``, None for a contract ``grads(case)``."""
    if isinstance(obj, type):
        return MODULE if issubclass(obj, torch.nn.Module) else None
    if isinstance(obj, torch.nn.Module):
        return MODULE
    try:
        parameters = inspect.signature(obj).parameters.values()
    except (TypeError, ValueError):
        return None
    positional = [
        p
        for p in parameters
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is inspect.Parameter.empty
    ]
    return FUNCTION if len(positional) >= 3 else None


def native_grads(obj: object, kind: str, device: str = "cpu") -> Callable[[Case], tuple[float, dict]]:
    """The contract's ``grads(case)`` of a torch module class (or instance) or function."""

    def grads(case: Case) -> tuple[float, dict[str, np.ndarray]]:
        return _grads(obj, kind, device, case)

    grads.__name__ = getattr(obj, "__name__", type(obj).__name__)
    return grads


def _tensor(array: np.ndarray, dtype: torch.dtype, device: str, leaf: bool = True) -> torch.Tensor:
    value = torch.tensor(np.asarray(array), device=device).to(dtype)
    return value.requires_grad_(True) if leaf else value


def _run(obj: object, kind: str, case: Case, x, hx, params: Mapping[str, torch.Tensor]):
    """The forward: ``(output, (h_n, c_n))`` and the tensors whose gradients are the parameters'."""
    cfg = case.config
    if kind == FUNCTION:
        return obj(x, hx, dict(params)), params
    module = obj
    if isinstance(obj, type):
        extra: dict[str, object] = {"proj_size": cfg.proj_size} if cfg.proj_size else {}
        if cfg.bidirectional:
            extra["bidirectional"] = True
        try:
            module = obj(cfg.input_size, cfg.hidden_size, num_layers=cfg.num_layers, **extra)
        except TypeError as exc:
            raise NotImplementedError(
                f"its constructor does not take torch.nn.LSTM's arguments {extra}: {exc}"
            ) from None
    first = params[next(iter(params))]
    module = module.to(device=first.device, dtype=first.dtype)
    own = dict(module.named_parameters())
    missing = [name for name in params if name not in own]
    if missing:
        raise ValueError(
            f"the module has no parameter {missing[0]!r} (lstm-gradcheck sets its parameters by torch.nn.LSTM's "
            f"names); it has {', '.join(own) or 'none'}"
        )
    with torch.no_grad():
        for name, value in params.items():
            if own[name].shape != value.shape:
                raise ValueError(
                    f"the module's {name} has shape {tuple(own[name].shape)}, expected {tuple(value.shape)}"
                )
            own[name].copy_(value)
    return module(x, hx), {name: own[name] for name in params}


def _grads(obj: object, kind: str, device: str, case: Case) -> tuple[float, dict[str, np.ndarray]]:
    cfg = case.config
    reason = torch_nn_unfit(cfg)
    if reason is not None:
        raise NotImplementedError(f"a torch-native LSTM with torch.nn.LSTM's interface cannot take it: {reason}")
    dtype = TORCH_DTYPES[cfg.dtype]
    leaves = {name: _tensor(a, dtype, device) for name, a in case.params.items()}
    states = {name: _tensor(getattr(case, name), dtype, device) for name in STATE_INPUTS}
    lstm_params = {n: p for n, p in leaves.items() if n not in (HEAD_WEIGHT, HEAD_BIAS)}
    shift = torch.zeros(4 * cfg.hidden_size, dtype=dtype, device=device)
    shift[gate_slice("f", cfg.hidden_size)] = cfg.forget_bias
    folded = {n: (p + shift if n.startswith("bias_ih_l") else p) for n, p in lstm_params.items()}
    x = states["x"]
    if case.lengths is not None:
        x = pack_padded_sequence(x, torch.tensor(np.asarray(case.lengths)), enforce_sorted=False)
    (out, (h_n, c_n)), used = _run(obj, kind, case, x, (states["h0"], states["c0"]), folded)
    if kind == FUNCTION:
        used = lstm_params  # the leaves under the folded biases: the shift leaves their gradients as they are
    if case.lengths is not None:
        out, _ = pad_packed_sequence(out, total_length=cfg.seq_len)
    y = out @ leaves[HEAD_WEIGHT].T + leaves[HEAD_BIAS] if cfg.has_head else out
    loss = reduced_loss(y, case)
    if cfg.final_state:
        loss = loss + final_state_term(case, h_n, c_n)
    targets = {**used, **{n: leaves[n] for n in (HEAD_WEIGHT, HEAD_BIAS) if n in leaves}, **states}
    got = torch.autograd.grad(loss, list(targets.values()), allow_unused=True)
    out_dtype = torch.float32 if dtype == torch.bfloat16 else dtype
    grads = {
        name: (np.zeros(tuple(t.shape)) if g is None else g.detach().to(out_dtype).cpu().numpy())
        for (name, t), g in zip(targets.items(), got, strict=True)
    }
    return float(loss.detach().to(torch.float64).cpu()), grads

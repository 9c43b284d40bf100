"""``report --plot FILE.png``: the error per gate and time step of each mismatching tensor."""

from __future__ import annotations

import math

import numpy as np

from lstm_gradcheck.implementation import Implementation, UsageError
from lstm_gradcheck.reference.layout import GATE_NAMES, GATES
from lstm_gradcheck.report import Report
from lstm_gradcheck.summaries import StepLocalization

__all__ = ["plot_report"]


def _matrix(step: StepLocalization) -> tuple[np.ndarray, list[str]]:
    """Rows: the gates (4H tensors) or the tensor itself; columns: steps; values: log10(error / allowance)."""
    rows = step.gate_errors if step.gate_errors else (step.errors,)
    labels = [GATE_NAMES[g] for g in GATES] if step.gate_errors else [step.tensor]
    values = np.array(rows, dtype=np.float64) / step.allowed
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log10(np.where(values > 0, values, np.nan)), labels


def plot_report(report: Report, path: str, impl: Implementation | None = None) -> None:
    """Draw one heatmap per localized tensor: gate x step, colour = log10(error / allowance)."""
    try:
        import matplotlib  # noqa: PLC0415

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # noqa: PLC0415
    except ImportError:
        raise UsageError("--plot needs matplotlib, which is not installed: pip install matplotlib") from None
    steps = [s for s in report.steps if s.errors]
    if not steps:
        raise UsageError("--plot: nothing to draw: every gradient agrees (or the sequence is too long to localize)")
    fig, axes = plt.subplots(
        len(steps), 1, figsize=(max(6.0, 0.5 * len(steps[0].errors) + 3), 1.6 + 1.4 * len(steps)), squeeze=False
    )
    for ax, step in zip(axes[:, 0], steps, strict=True):
        matrix, labels = _matrix(step)
        finite = matrix[np.isfinite(matrix)]
        bound = max(1.0, float(np.abs(finite).max())) if finite.size else 1.0
        image = ax.imshow(matrix, aspect="auto", cmap="RdBu_r", vmin=-bound, vmax=bound, interpolation="nearest")
        ax.set_yticks(range(len(labels)), labels)
        ax.set_xticks(range(matrix.shape[1]))
        ax.set_xlabel("step t" if step.method != "suffix" else "step t (first step of the suffix run)")
        entry = "" if step.entry_step is None else f"; error enters at step {step.entry_step}"
        ax.set_title(f"{step.tensor} ({step.method}{entry})", fontsize=9)
        if step.entry_step is not None and not math.isnan(step.entry_step):
            ax.axvline(step.entry_step, color="black", linewidth=1, linestyle=":")
        fig.colorbar(image, ax=ax, label="log10(error / allowance)")
    fig.suptitle(f"lstm-gradcheck: {report.implementation}: {report.case.describe()}", fontsize=7)
    fig.tight_layout()
    try:
        fig.savefig(path, dpi=110)
    except OSError as exc:
        raise UsageError(f"--plot: cannot write {path!r}: {exc}") from None
    finally:
        plt.close(fig)

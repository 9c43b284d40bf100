"""``report --plot FILE.png``: one figure of where each mismatching tensor is wrong.

One panel per mismatching tensor, all on one colour scale, log10(error / allowance) (above 0:
over the allowance): an LSTM tensor that step localization measured by gate and step (per-step
or suffix columns ``t``, prefix columns ``T'`` as the text report labels them), ``x`` by batch
and step, ``h0``/``c0`` by (layer, batch) and unit, any other tensor element by element
against the exact (float64 reference) gradient. Cells that could not be measured are grey,
with a legend; the title carries the implementation, the case and the diagnosis, wrapped to
the figure's width.
"""

from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lstm_gradcheck.implementation import Implementation, UsageError
from lstm_gradcheck.oracles.judging import exact_answer
from lstm_gradcheck.reference.layout import GATE_NAMES, GATES, gate_blocks, is_lstm_param
from lstm_gradcheck.reference.verdicts import MISMATCH
from lstm_gradcheck.report import Report
from lstm_gradcheck.summaries import PREFIX, SUFFIX, StepLocalization

__all__ = ["plot_report", "build_figure", "check_plot_path", "Panel"]

#: Figure width (inches) and the font sizes; the title is wrapped to the width at its size.
FIGURE_WIDTH = 11.0
TITLE_SIZE, PANEL_TITLE_SIZE, LABEL_SIZE = 9.0, 9.0, 8.0
#: At most this many tick labels per axis; every k-th is shown beyond it.
MAX_TICKS = 14
#: log10 of a ratio of exactly 0 (an element with no error at all) is drawn at this floor.
FLOOR = -12.0
UNMEASURED = "0.72"  # grey, for cells that could not be measured


@dataclass(frozen=True)
class Panel:
    """One heatmap: ``values`` (rows x columns) of log10(error / allowance), NaN = not measured."""

    title: str
    values: np.ndarray
    row_labels: list[str]
    column_labels: list[str]
    xlabel: str
    ylabel: str
    marker: int | None = None  # the column where the error enters (a dotted line)


def _log_ratio(ratio: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.log10(np.asarray(ratio, dtype=np.float64))
    return np.where(np.asarray(ratio) == 0, FLOOR, out)  # NaN stays NaN: not measured


def _step_panel(step: StepLocalization) -> Panel:
    """Gate x step (LSTM tensors with gate rows) or the tensor's one row x step."""
    rows = step.gate_errors if step.gate_errors else (step.errors,)
    labels = [f"{GATE_NAMES[g]} ({g})" for g in GATES] if step.gate_errors else [step.tensor]
    values = _log_ratio(np.array(rows, dtype=np.float64) / step.allowed)
    count = len(step.errors)
    if step.method == PREFIX:
        columns, xlabel = [f"T'{k}" for k in range(1, count + 1)], "prefix length T' (runs on the first T' steps)"
        marker = None if step.first_wrong_prefix is None else step.first_wrong_prefix - 1
        where = "" if marker is None else f"; shows first with T'={marker + 1}"
    else:
        columns = [f"t{t}" for t in range(count)]
        xlabel = "step t (suffix run from step t)" if step.method == SUFFIX else "step t (its own contribution)"
        marker = step.entry_step
        where = "" if marker is None else f"; enters at step {marker}"
    if step.unknown is not None:
        where = "; entry step unknown (a run could not be measured)"
    ylabel = "gate" if step.gate_errors else ""
    return Panel(f"{step.tensor}: {step.method}{where}", values, labels, columns, xlabel, ylabel, marker)


def _element_panel(name: str, ratio: np.ndarray, layers: int) -> Panel:
    """One tensor's elements, |analytic - exact| / allowance, reduced to a readable matrix."""
    if name == "x":  # (T, B, I): batch x step
        values = ratio.max(axis=2).T
        return Panel(
            "x: by batch and step",
            _log_ratio(values),
            [f"b{b}" for b in range(values.shape[0])],
            [f"t{t}" for t in range(values.shape[1])],
            "step t",
            "batch",
        )
    if name in ("h0", "c0"):  # (L, B, H): (layer, batch) x unit
        values = ratio.reshape(-1, ratio.shape[2])
        rows = [f"l{k} b{b}" if layers > 1 else f"b{b}" for k in range(ratio.shape[0]) for b in range(ratio.shape[1])]
        return Panel(
            f"{name}: by batch and unit",
            _log_ratio(values),
            rows,
            [f"u{u}" for u in range(values.shape[1])],
            "unit",
            "layer, batch" if layers > 1 else "batch",
        )
    if is_lstm_param(name):  # gate x unit, worst over the columns
        blocks = gate_blocks(ratio.reshape(ratio.shape[0], -1).T, ratio.shape[0] // 4)
        values = np.stack([b.max(axis=0) for b in blocks])
        return Panel(
            f"{name}: by gate and unit",
            _log_ratio(values),
            [f"{GATE_NAMES[g]} ({g})" for g in GATES],
            [f"u{u}" for u in range(values.shape[1])],
            "unit",
            "gate",
        )
    values = ratio.reshape(-1, ratio.shape[-1]) if ratio.ndim > 1 else ratio[None, :]
    rows = [f"out {o}" for o in range(values.shape[0])] if ratio.ndim > 1 else [name]
    return Panel(
        f"{name}: by element",
        _log_ratio(values),
        rows,
        [f"{'h' if ratio.ndim > 1 else 'out '}{j}" for j in range(values.shape[1])],
        "column",
        "",
    )


def panels(report: Report) -> list[Panel]:
    """The panels of ``report``: each mismatching tensor, by step where localized (x, h0, c0 and
    unlocalized tensors element by element)."""
    steps = {s.tensor: s for s in report.steps if s.errors and s.gate_errors}
    wrong = [t for t in report.tensors if t.status == MISMATCH and t.record is not None]
    exact = None
    out = []
    for t in wrong:
        if t.name in steps:
            out.append(_step_panel(steps[t.name]))
            continue
        if t.name not in report.outcome.grads:
            continue
        if exact is None:
            exact = exact_answer(report.case)[1]
        diff = np.abs(np.asarray(report.outcome.grads[t.name], dtype=np.float64) - exact[t.name])
        out.append(_element_panel(t.name, diff / t.record.allowed, report.case.config.num_layers))
    return out


def _ticks(count: int) -> range:
    return range(0, count, max(1, math.ceil(count / MAX_TICKS)))


def _title(report: Report, chars: int) -> str:
    name = report.implementation
    if len(name) > chars - 30:
        name = "…" + name[-(chars - 31) :]
    lines = [f"lstm-gradcheck report: {name}"]
    lines += textwrap.wrap(f"case: {report.case.describe()}", chars, break_on_hyphens=False)
    if report.diagnosis is not None:
        lines += textwrap.wrap(f"diagnosis: {report.diagnosis.text}", chars, break_on_hyphens=False)
    return "\n".join(lines)


def build_figure(report: Report):
    """The figure of ``report`` (a matplotlib Figure; the Agg backend); UsageError if nothing mismatches."""
    import matplotlib  # noqa: PLC0415 (matplotlib loads only for --plot)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415
    from matplotlib.colors import Normalize  # noqa: PLC0415
    from matplotlib.lines import Line2D  # noqa: PLC0415
    from matplotlib.patches import Patch  # noqa: PLC0415

    drawn = panels(report)
    if not drawn:
        raise UsageError("--plot: nothing to draw: every gradient agrees")
    columns = 1 if len(drawn) <= 3 else 2
    rows = math.ceil(len(drawn) / columns)
    heights = [
        max(1.0, 0.28 * max(len(p.row_labels) for p in drawn[r * columns : (r + 1) * columns])) + 1.1
        for r in range(rows)
    ]
    chars = int(FIGURE_WIDTH * 72 / (TITLE_SIZE * 0.62))
    title = _title(report, chars)
    top = 0.2 * (title.count("\n") + 1) + 0.3
    fig = plt.figure(figsize=(FIGURE_WIDTH, sum(heights) + top + 0.6), layout="constrained")
    grid = fig.add_gridspec(rows, columns, height_ratios=heights)
    finite = np.concatenate([p.values[np.isfinite(p.values)] for p in drawn])
    bound = max(1.0, float(np.abs(finite).max())) if finite.size else 1.0
    norm = Normalize(vmin=-bound, vmax=bound)
    cmap = matplotlib.colormaps["RdBu_r"].with_extremes(bad=UNMEASURED)
    axes = []
    for k, panel in enumerate(drawn):
        ax = fig.add_subplot(grid[k // columns, k % columns])
        axes.append(ax)
        image = ax.imshow(panel.values, aspect="auto", cmap=cmap, norm=norm, interpolation="nearest")
        ax.set_xticks(
            list(_ticks(len(panel.column_labels))),
            [panel.column_labels[j] for j in _ticks(len(panel.column_labels))],
            fontsize=LABEL_SIZE,
        )
        ax.set_yticks(
            list(_ticks(len(panel.row_labels))),
            [panel.row_labels[j] for j in _ticks(len(panel.row_labels))],
            fontsize=LABEL_SIZE,
        )
        ax.set_xlabel(panel.xlabel, fontsize=LABEL_SIZE)
        ax.set_ylabel(panel.ylabel, fontsize=LABEL_SIZE)
        wrap = int(chars / columns) - 4
        ax.set_title("\n".join(textwrap.wrap(panel.title, wrap)), fontsize=PANEL_TITLE_SIZE)
        if panel.marker is not None:
            ax.axvline(panel.marker, color="black", linewidth=1.2, linestyle=":")
    bar = fig.colorbar(image, ax=axes, location="right", shrink=min(1.0, 4.0 / rows + 0.2), pad=0.02)
    bar.set_label("log10(error / allowance); above 0: over", fontsize=LABEL_SIZE)
    bar.ax.tick_params(labelsize=LABEL_SIZE)
    handles = []
    if any(np.isnan(p.values).any() for p in drawn):
        handles.append(
            Patch(facecolor=UNMEASURED, edgecolor="0.4", label="not measured (the run was refused or failed)")
        )
    if any(p.marker is not None for p in drawn):
        handles.append(Line2D([], [], color="black", linestyle=":", label="where the error enters"))
    if handles:
        fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), fontsize=LABEL_SIZE, frameon=False)
    fig.suptitle(title, fontsize=TITLE_SIZE)
    return fig


def check_plot_path(path: str) -> None:
    """Refuse, before any work, a ``--plot`` path that cannot be written: a folder, a missing
    folder, or an extension matplotlib cannot write (UsageError, exit 2)."""
    target = Path(path)
    if target.is_dir():
        raise UsageError(f"--plot: {path!r} is a folder; give a file name such as {str(target / 'errors.png')!r}")
    if not target.parent.is_dir():
        raise UsageError(f"--plot: the folder {str(target.parent)!r} does not exist")
    suffix = target.suffix.lower().lstrip(".")
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    from matplotlib.backend_bases import FigureCanvasBase  # noqa: PLC0415

    formats = FigureCanvasBase.get_supported_filetypes()
    if suffix not in formats:
        what = f"the extension .{suffix}" if suffix else "a name without an extension"
        raise UsageError(
            f"--plot: matplotlib cannot write {what}; use one of {', '.join('.' + f for f in sorted(formats))}"
        )


def plot_report(report: Report, path: str, impl: Implementation | None = None) -> None:
    """Write the figure of ``report`` to ``path`` (its format from the extension)."""
    try:
        import matplotlib.pyplot as plt  # noqa: PLC0415
    except ImportError:
        raise UsageError("--plot needs matplotlib, which is not installed: pip install matplotlib") from None
    fig = build_figure(report)
    try:
        fig.savefig(path, dpi=110)
    except OSError as exc:
        raise UsageError(f"--plot: cannot write {path!r}: {exc}") from None
    finally:
        plt.close(fig)

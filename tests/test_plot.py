"""``report --plot``: a figure whose text fits and never overlaps, panels that carry information,
labels that match the text report, and a path checked before any work.
"""

from __future__ import annotations

import io
import itertools
import json
from pathlib import Path

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
from matplotlib.text import Text  # noqa: E402

from lstm_gradcheck.implementation import InProcess  # noqa: E402
from lstm_gradcheck.isolation import load_implementation  # noqa: E402
from lstm_gradcheck.plot import build_figure, panels  # noqa: E402
from lstm_gradcheck.reference import LSTMConfig, make_case  # noqa: E402
from lstm_gradcheck.render import render_report  # noqa: E402
from lstm_gradcheck.report import build_report  # noqa: E402

IMPLS = Path(__file__).resolve().parents[1] / "examples" / "impls"
TANH_SLIP = f"{IMPLS / 'slip_cell_gate_tanh_prime.py'}:grads"


def _zero_c0_only(case):
    """The cell-gate slip in code that refuses nonzero c0 (suffix runs cannot be measured) and,
    for the sake of the test, two steps (the prefix run on two steps cannot be measured either)."""
    if case.config.c0 != "zero" or case.config.seq_len == 2:
        raise NotImplementedError("c0 = 0 only, and not two steps")
    return load_implementation(TANH_SLIP, in_process=True).grads(case)


def _reports():
    slip = load_implementation(TANH_SLIP)
    restricted = InProcess(f"{'deep/' * 12}restricted_slip.py:grads", _zero_c0_only)
    return {
        "two layers": build_report(make_case(LSTMConfig(seq_len=9), seed=0), slip, ["torch"]),
        "prefix, unmeasured": build_report(
            make_case(LSTMConfig(num_layers=1, seq_len=5, batch_size=2, c0="zero"), seed=0), restricted, ["torch"]
        ),
        "one head tensor": build_report(
            make_case(LSTMConfig(num_layers=1, seq_len=2, loss="mse"), seed=1),
            load_implementation(f"{IMPLS / 'bug_head_bias_batch_mean.py'}:grads"),
            ["torch"],
        ),
        "40 steps": build_report(
            make_case(LSTMConfig(num_layers=1, seq_len=40, batch_size=5, hidden_size=2), seed=2), slip, ["torch"]
        ),
    }


@pytest.fixture(scope="module")
def reports():
    return _reports()


def _drawn_tick_labels(axis) -> list[Text]:
    """The tick labels matplotlib draws: those of ticks inside the axis's view."""
    lo, hi = sorted(axis.get_view_interval())
    slack = 1e-9 * max(1.0, hi - lo)
    return [
        label
        for loc, label in zip(axis.get_ticklocs(), axis.get_ticklabels(), strict=False)
        if lo - slack <= loc <= hi + slack
    ]


def _texts(fig):
    """Every drawn text: the title, each panel's title and axis labels, the drawn tick labels (the
    colourbar's included), the colourbar's label and the legend; with its extent in pixels."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    artists = [*fig.texts, fig._suptitle]
    for ax in fig.axes:
        artists += [ax.title, ax.xaxis.label, ax.yaxis.label]
        artists += _drawn_tick_labels(ax.xaxis) + _drawn_tick_labels(ax.yaxis)
    for legend in fig.legends:
        artists += legend.get_texts()
    unique = {id(t): t for t in artists if t is not None}.values()  # the title is in fig.texts too
    return [(t.get_text(), t.get_window_extent(renderer)) for t in unique if t.get_visible() and t.get_text().strip()]


@pytest.mark.parametrize("name", ["two layers", "prefix, unmeasured", "one head tensor", "40 steps"])
def test_every_text_fits_the_figure_and_none_overlaps(reports, name):
    fig = build_figure(reports[name])
    try:
        texts = _texts(fig)
        box = fig.bbox
        for text, extent in texts:
            inside = extent.x0 >= box.x0 - 1 and extent.x1 <= box.x1 + 1
            assert inside and extent.y0 >= box.y0 - 1 and extent.y1 <= box.y1 + 1, (text, extent, box)
        for (a, ea), (b, eb) in itertools.combinations(texts, 2):
            assert not ea.shrunk(0.98, 0.9).overlaps(eb.shrunk(0.98, 0.9)), (a, b)
        titles = [t for t, _ in texts if t.startswith("lstm-gradcheck report:")]
        assert len(titles) == 1 and "case: " in titles[0]
        assert ("diagnosis: " in titles[0]) == (reports[name].diagnosis is not None)
    finally:
        matplotlib.pyplot.close(fig)


def test_unmeasured_cells_have_a_legend_and_prefix_panels_say_t_prime(reports):
    report = reports["prefix, unmeasured"]
    fig = build_figure(report)
    try:
        labels = [t for t, _ in _texts(fig)]
    finally:
        matplotlib.pyplot.close(fig)
    drawn = panels(report)
    prefix = [p for p in drawn if "prefix" in p.title]
    assert prefix and all(p.column_labels[0] == "T'1" for p in prefix)
    stream = io.StringIO()
    render_report(report, stream, rich=False)
    assert "T'1=" in stream.getvalue() and "T'2=?" in stream.getvalue()  # the text report's labels
    assert all(np.isnan(p.values[:, 1]).all() for p in prefix)
    assert "T'1" in labels and any(label.startswith("not measured") for label in labels)


def test_panels_carry_information(reports):
    drawn = {p.title.split(":")[0]: p for p in panels(reports["two layers"])}
    x = drawn["x"]
    assert x.row_labels == ["b0", "b1", "b2"] and x.column_labels[0] == "t0" and x.values.shape == (3, 9)
    for name in ("x", "h0", "c0"):
        assert np.ptp(drawn[name].values) > 0.1, name  # not one solid block
    gates = drawn["weight_hh_l1"].values
    # Layer 1's last step: only the cell gate's row is over the allowance (above 0).
    assert [row[-1] > 0 for row in gates] == [False, False, True, False]


def test_plot_path_errors_come_before_any_work(run_cli, monkeypatch, tmp_path):
    from lstm_gradcheck import cli  # noqa: PLC0415

    monkeypatch.setattr(cli, "build_report", lambda *a, **k: pytest.fail("the check ran"))
    for path, message in [
        (tmp_path, "is a folder; give a file name such as"),
        (tmp_path / "x.xyz", "matplotlib cannot write the extension .xyz"),
        (tmp_path / "errors", "without an extension"),
        (tmp_path / "missing" / "x.png", "does not exist"),
    ]:
        code, out, err = run_cli("report", "--plot", str(path), "--json")
        assert code == 2 and message in err and json.loads(out)["verdict"] == "error", err
    assert list(tmp_path.iterdir()) == []  # no DIR.png beside the folder, nothing inside it

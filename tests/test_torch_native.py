"""Torch-native implementations: a module with torch.nn.LSTM's interface, or a function of its
parameters, checked through autograd in their own tensors, in float64, float32 and bfloat16.

The worked example (examples/torch_function/) is a torch.autograd.Function with a hand-written
backward; a realistic slip planted in a copy of it must fail in every dtype, located.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from lstm_gradcheck import search
from lstm_gradcheck.isolation import load_implementation
from lstm_gradcheck.oracles.tolerance import SAME_PRECISION_FACTOR
from lstm_gradcheck.oracles.torch_native import devices
from lstm_gradcheck.reference import LSTMConfig, make_case
from lstm_gradcheck.report import build_report

FOLDER = Path(__file__).resolve().parents[1] / "examples" / "torch_function"
MODULE = f"{FOLDER / 'lstm_function.py'}:LSTM"
FUNCTION = f"{FOLDER / 'functional.py'}:lstm"
DTYPES = ("float64", "float32", "bfloat16")
#: tanh'(c) written 1 - tanh(c) in the hand-written backward.
SLIP = ("dc = dc_next + dh * o * (1 - cells[t] ** 2)", "dc = dc_next + dh * o * (1 - cells[t])")


@pytest.fixture(scope="module")
def slipped(tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp("torch_slip")
    shutil.copy(FOLDER / "lstm_function.py", folder)
    text = (folder / "lstm_function.py").read_text()
    assert text.count(SLIP[0]) == 1
    (folder / "lstm_function.py").write_text(text.replace(*SLIP))
    return f"{folder / 'lstm_function.py'}:LSTM"


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("spec", [MODULE, FUNCTION], ids=["autograd.Function module", "function"])
def test_a_right_torch_lstm_passes_in_each_dtype(spec, dtype):
    impl = load_implementation(spec)
    assert impl.native is not None
    case = make_case(LSTMConfig(dtype=dtype, seq_len=5), seed=3)
    report = build_report(case, impl, ["torch", "torch-nn", "directional"])
    assert report.verdict == "pass", report.as_json()
    if dtype != "float64":  # judged against torch's own error in that dtype, and says so
        assert (
            f"{SAMEPRECISION} x torch's own relative error in {dtype}" in report.oracles[0].check.tolerance.describe()
        )


SAMEPRECISION = f"{SAME_PRECISION_FACTOR:g}"


@pytest.mark.parametrize("dtype", DTYPES)
def test_a_slip_in_the_hand_written_backward_fails_located_in_each_dtype(slipped, dtype):
    case = make_case(LSTMConfig(dtype=dtype, seq_len=4, num_layers=1), seed=3)
    report = build_report(case, load_implementation(slipped), ["torch"])
    assert report.verdict == "fail"
    bad = {t.name for t in report.tensors if t.status == "mismatch"}
    assert {"weight_hh_l0", "bias_ih_l0", "x", "c0"} <= bad, bad
    gates = {t.record.worst.gate for t in report.tensors if t.status == "mismatch" and t.record.worst is not None}
    assert gates <= {"i", "f", "g", None} and gates & {"i", "f", "g"}, gates  # o is right: its delta needs no tanh'


def test_a_search_finds_and_shrinks_the_slip_drawing_bfloat16_too(slipped):
    result = search(slipped, max_examples=60)
    assert result.verdict == "fail" and result.case.config.seq_len == 1 and result.case.config.hidden_size == 1
    right = search(MODULE, max_examples=40, seed=1)
    assert right.verdict == "pass"
    assert "dtype" not in " ".join(right.space_notes)  # bfloat16 was searched: the module supports it


def test_bfloat16_is_refused_for_numpy_code(run_cli):
    code, out, _ = run_cli("report", "--dtype", "bfloat16", "--json")
    data = json.loads(out)
    assert code == 2 and data["verdict"] == "nothing checked" and "torch-native" in data["why"]


def test_a_module_without_torchs_parameter_names_is_told_so(tmp_path):
    (tmp_path / "renamed.py").write_text(
        "import torch\n\n"
        "class Renamed(torch.nn.Module):\n"
        "    def __init__(self, input_size, hidden_size, num_layers=1):\n"
        "        super().__init__()\n"
        "        self.inner = torch.nn.LSTM(input_size, hidden_size, num_layers)\n\n"
        "    def forward(self, x, hx):\n"
        "        return self.inner(x, hx)\n"
    )
    outcome = load_implementation(f"{tmp_path / 'renamed.py'}:Renamed").call(make_case(LSTMConfig(), seed=0))
    assert outcome.status == "failed" and "has no parameter 'weight_ih_l0'" in outcome.error


@pytest.mark.skipif("cuda" not in devices(), reason="no CUDA device on this machine: the GPU path runs where there is")
@pytest.mark.parametrize("dtype", DTYPES)
def test_the_gpu_path(slipped, dtype):
    case = make_case(LSTMConfig(dtype=dtype, seq_len=4), seed=2)
    assert build_report(case, load_implementation(MODULE, device="cuda"), ["torch"]).verdict == "pass"
    assert build_report(case, load_implementation(slipped, device="cuda"), ["torch"]).verdict == "fail"

"""The user-written implementations of examples/impls/ get the verdicts their catalogue promises.

For every deliberately wrong implementation: its minimal example fails
(exit 1) naming only tensors the mistake changes (and the loss exactly when
it changes), every one-step simplification of that example passes (so the
trigger is exactly as narrow as the catalogue says), and rich cases outside
the trigger pass. Correct implementations pass, or exit 2 saying the case is
unsupported; malformed ones get a clear verdict, valid JSON and no traceback.
Every report runs against the torch oracle only, to stay fast.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

from lstm_gradcheck.cli import build_parser, case_from_args, main
from lstm_gradcheck.isolation import load_implementation
from lstm_gradcheck.report import build_report

IMPLS = Path(__file__).resolve().parents[1] / "examples" / "impls"


def _load_catalogue() -> ModuleType:
    sys.path.insert(0, str(IMPLS))  # its sibling modules (catalogue_cases, ...)
    spec = importlib.util.spec_from_file_location("impl_catalogue", IMPLS / "catalogue.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


catalogue = _load_catalogue()


def report(capsys: pytest.CaptureFixture[str], spec: str, options: list[str]) -> tuple[int, dict, str]:
    """Exit status, parsed --json output (stdout must be one JSON object or empty) and stderr."""
    try:
        code = main(["report", "--impl", spec, "--json", "--oracle", "torch", *options])
    except SystemExit as exited:
        code = exited.code
    out, err = capsys.readouterr()
    data = json.loads(out) if out.strip() else {}
    assert "Traceback" not in err, err
    return code, data, err


def mismatched(data: dict) -> set[str]:
    return {g["name"] for g in data["gradients"] if g["status"] == "mismatch"}


def loss_mismatch(data: dict) -> bool:
    return data["loss"]["torch"]["status"] == "mismatch"


def describe(options: list[str]) -> str:
    """Only the options that differ from MINIMAL_BASE, for readable test ids."""
    base = catalogue.MINIMAL_BASE
    rest = options[len(base) :] if options[: len(base)] == base else options
    return " ".join(rest) or "defaults"


BUGS = catalogue.BUGS
BUG_IDS = [entry.mistake for entry in BUGS]


def test_there_are_at_least_12_bugs_each_in_its_own_file() -> None:
    assert len(BUGS) >= 12
    for entry in BUGS:
        text = (IMPLS / entry.file).read_text()
        assert f'make_grads("{entry.mistake}")' in text
        assert "lstm_gradcheck" not in text and "reference" not in text


def test_user_files_import_nothing_from_the_project() -> None:
    allowed = {"__future__", "collections", "dataclasses", "itertools", "pathlib", "typing", "numpy"}
    allowed |= {p.stem for p in IMPLS.glob("*.py")}  # siblings, e.g. textbook_lstm
    for path in IMPLS.glob("*.py"):
        for line in path.read_text().splitlines():
            if line.startswith(("import ", "from ")):
                assert line.split()[1].split(".")[0] in allowed, f"{path.name}: {line}"


@pytest.mark.parametrize("entry", BUGS, ids=BUG_IDS)
def test_catalogue_predicates_agree_with_their_examples(entry) -> None:
    minimal = catalogue.options_to_case(entry.minimal_example)
    assert entry.triggers(minimal) and entry.minimal(minimal)
    for options in entry.trigger_examples:
        case = catalogue.options_to_case(options)
        assert entry.triggers(case, case["lengths"]) and not entry.minimal(case), options
    for options in entry.clean_examples:
        assert not entry.triggers(catalogue.options_to_case(options)), options


@pytest.mark.parametrize("entry", BUGS, ids=BUG_IDS)
def test_bug_is_caught_on_its_minimal_case_naming_the_changed_tensors(capsys, entry) -> None:
    case = catalogue.options_to_case(entry.minimal_example)
    code, data, err = report(capsys, entry.spec, entry.minimal_example)
    assert code == 1, err
    assert data["verdict"] == "fail"
    flagged = mismatched(data)
    assert flagged, data["gradients"]
    assert flagged <= entry.wrong(case), flagged - entry.wrong(case)
    assert loss_mismatch(data) == entry.loss_wrong(case)
    for g in data["gradients"]:
        if g["name"] in entry.gates:
            assert g["status"] == "mismatch" and g["gate"] in entry.gates[g["name"]], g
            if entry.unit is not None:
                assert g["unit"] == entry.unit, g


@pytest.mark.parametrize("entry", BUGS, ids=BUG_IDS)
def test_bug_is_silent_one_simplification_away_from_its_minimal_case(capsys, entry) -> None:
    case = catalogue.options_to_case(entry.minimal_example)
    simpler = list(catalogue.simplifications(case))
    assert simpler, "the minimal example is already the simplest case"
    for s in simpler:
        assert not entry.triggers(s, s["lengths"])
        code, data, err = report(capsys, entry.spec, catalogue.case_to_options(s))
        assert code == 0, (describe(catalogue.case_to_options(s)), sorted(mismatched(data)), err)


@pytest.mark.parametrize("entry", BUGS, ids=BUG_IDS)
def test_bug_is_silent_outside_its_trigger(capsys, entry) -> None:
    for options in entry.clean_examples:
        code, data, err = report(capsys, entry.spec, options)
        assert code == 0, (options, sorted(mismatched(data)), err)
        assert data["verdict"] == "pass"


@pytest.mark.parametrize("entry", BUGS, ids=BUG_IDS)
def test_bug_is_caught_on_rich_cases(entry) -> None:
    # Rich triggering cases (the CLI's default case, 2 layers and 6 steps, with the trigger on), built exactly as
    # the CLI builds them; the report skips the step localisation, which the minimal cases above already exercise.
    for options in entry.trigger_examples:
        args = build_parser().parse_args(["report", *options])
        report = build_report(case_from_args(args), load_implementation(entry.spec), ["torch"], localize=False)
        case = catalogue.options_to_case(options)
        assert report.exit_status == 1, options
        flagged = {t.name for t in report.tensors if t.status == "mismatch"}
        assert flagged and flagged <= entry.wrong(case), (options, flagged)
        assert report.loss_mismatch == entry.loss_wrong(case), options


CORRECT = catalogue.CORRECT


@pytest.mark.parametrize("entry", CORRECT, ids=[e.file for e in CORRECT])
def test_correct_implementation_passes_what_it_supports(capsys, entry) -> None:
    for options in entry.supported_examples:
        assert entry.supports_case(catalogue.options_to_case(options))
        code, data, err = report(capsys, entry.spec, options)
        assert code == 0, (options, sorted(mismatched(data)), err)
        assert data["verdict"] == "pass"
        statuses = {g["name"]: g["status"] for g in data["gradients"]}
        assert {n for n, s in statuses.items() if s == "not provided"} == entry.not_provided
        assert all(s in ("ok", "not provided") for s in statuses.values())


@pytest.mark.parametrize("entry", [e for e in CORRECT if e.unsupported_examples], ids=lambda e: e.file)
def test_unsupported_cases_exit_2_saying_so(capsys, entry) -> None:
    for options in entry.unsupported_examples:
        assert not entry.supports_case(catalogue.options_to_case(options))
        code, data, err = report(capsys, entry.spec, options)
        assert code == 2, (options, err)
        assert data["verdict"] == "nothing checked" and data["implementation_status"] == "unsupported"
        assert "does not support this case" in data["why"] and entry.unsupported_message in data["why"], data
        assert "nothing checked" in err and entry.unsupported_message in err, err


MALFORMED = catalogue.MALFORMED


@pytest.mark.parametrize("entry", MALFORMED, ids=[e.file for e in MALFORMED])
def test_malformed_implementation_gets_a_clear_verdict(capsys, entry) -> None:
    for options in entry.examples:
        code, data, err = report(capsys, entry.spec, options)
        assert code == entry.exit_status, err
        assert data["verdict"] == ("pass" if entry.exit_status == 0 else "fail")
        assert data["implementation_status"] == entry.implementation_status
        said = data.get("error", "") + " ".join(data.get("notes", []))
        assert entry.message in said, said
        assert entry.fails(catalogue.options_to_case(options)) == (entry.exit_status == 1)
    for options in entry.passing_examples:
        assert not entry.fails(catalogue.options_to_case(options))
        code, data, err = report(capsys, entry.spec, options)
        assert code == 0 and data["verdict"] == "pass", (options, err)


def test_malformed_messages_also_reach_the_text_report(capsys) -> None:
    for entry in MALFORMED:
        try:
            code = main(["report", "--impl", entry.spec, "--oracle", "torch", *entry.examples[0]])
        except SystemExit as exited:
            code = exited.code
        out, err = capsys.readouterr()
        assert code == entry.exit_status, (entry.file, err)
        assert entry.message in out + err, (entry.file, out, err)
        assert "Traceback" not in err


def test_printing_implementation_keeps_stdout_for_the_json(capsys) -> None:
    code, data, err = report(capsys, str(IMPLS / "prints_to_stdout.py") + ":grads", [])
    assert code == 0 and data["verdict"] == "pass"
    assert "prints_to_stdout: loaded the textbook LSTM" in err and "computing gradients" in err

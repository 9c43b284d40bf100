"""Rendering of ``lstm-gradcheck variants`` (table, summary, kill matrix, JSON)."""

from __future__ import annotations

import json
import sys
from argparse import Namespace

from lstm_gradcheck import streams
from lstm_gradcheck.implementation import UsageError
from lstm_gradcheck.reference.variants import VARIANTS
from lstm_gradcheck.reference.verdicts import FAIL, PASS
from lstm_gradcheck.render import plain_table, terminal_width, wrap_lines
from lstm_gradcheck.search_command import _hypothesis_home_outside_cwd
from lstm_gradcheck.variants import MatrixRow, VariantOutcome, kill_matrix, run_variants

__all__ = ["run_variants_command"]


def _case_text(outcome: VariantOutcome) -> str:
    case = outcome.case
    if case is None:
        return "-"
    c = case.config
    text = f"T={c.seq_len} L={c.num_layers} B={c.batch_size} H={c.hidden_size}"
    extras = []
    if c.forget_bias:
        extras.append(f"fb={c.forget_bias:g}")
    if c.final_state:
        extras.append("final_state")
    if case.lengths is not None:
        extras.append("lengths=" + ",".join(str(int(v)) for v in case.lengths))
    if c.reduction != "sum":
        extras.append(c.reduction)
    if c.loss != "cross_entropy" or c.loss_at != "every":
        extras.append(f"{c.loss}@{c.loss_at}")
    if c.cell_output != "tanh":
        extras.append(c.cell_output)
    if c.dtype != "float64":
        extras.append(c.dtype)
    extras += [name for name in ("peepholes", "bidirectional", "coupled") if getattr(c, name)]
    if c.proj_size:
        extras.append(f"P={c.proj_size}")
    return " ".join([text, *extras])


def _location_text(outcome: VariantOutcome) -> str:
    loc = outcome.location
    if loc is None:
        return "-"
    tensors = ",".join(sorted(loc.tensors)) or ("loss" if loc.loss_wrong else "-")
    gates = "".join(g for g in "ifgo" if g in loc.gates)
    step = "" if loc.step is None else f" step {loc.step}"
    return f"{tensors}" + (f" [{gates}]" if gates else "") + step


def _short(text: str, width: int = 34) -> str:
    """``text`` cut to ``width`` columns at a space, with an ellipsis (never mid-word)."""
    if len(text) <= width:
        return text
    cut = text[: width - 1].rsplit(" ", 1)[0] if " " in text[: width - 1] else text[: width - 1]
    return cut.rstrip(",;:(") + "…"


def _mark(o: VariantOutcome) -> str:
    if o.verdict_as_recorded and not o.as_recorded:
        return "DIFFERS (" + ("not minimal" if o.minimal_ok is False else "location") + ")"
    return "ok" if o.as_recorded else "DIFFERS"


def _row(o: VariantOutcome) -> tuple[str, ...]:
    v = o.variant
    return (v.name, _short(v.source), v.expected, o.observed, _case_text(o), _location_text(o), _mark(o))


def _blocks(outcomes: list[VariantOutcome], width: int) -> list[str]:
    """The table as one block of lines per variant, for a terminal narrower than the table."""
    lines: list[str] = []
    for o in outcomes:
        v = o.variant
        lines.append(f"{v.name}  expected {v.expected}, observed {o.observed}, record {_mark(o)}")
        lines.append(f"  source: {v.source}")
        if o.case is not None:
            lines.append(f"  minimal failing case: {_case_text(o)}")
            lines.append(f"  wrong in: {_location_text(o)}")
    return wrap_lines(lines, width)


def _matrix_lines(rows: list[MatrixRow]) -> list[str]:
    if not rows:
        return []
    checks = list(rows[0].caught)
    header = ("variant", *checks, "guards")
    table = [
        (r.variant.name, *({True: "x", False: ".", None: "-"}[r.caught[c]] for c in checks), str(len(r.guards)))
        for r in rows
    ]
    lines = ["", "kill matrix (x caught, . not caught, - does not apply):", *plain_table(header, table), ""]
    for c in checks:
        kills = [r.variant.name for r in rows if r.caught[c]]
        alone = [r.variant.name for r in rows if r.guards == [c]]
        lines.append(
            f"{c}: catches {len(kills)} of {len(rows)}" + (f"; the only guard of {', '.join(alone)}" if alone else "")
        )
    single = [r.variant.name for r in rows if len(r.guards) == 1]
    dead = [c for c in checks if not any(r.caught[c] for r in rows)]
    lines.append(f"variants with a single guard: {', '.join(single) if single else 'none'}")
    lines.append(f"checks that catch nothing: {', '.join(dead) if dead else 'none'}")
    return lines


def run_variants_command(args: Namespace) -> int:
    names = args.only
    if names:
        unknown = [n for n in names if n not in VARIANTS]
        if unknown:
            raise UsageError(f"--only: unknown variant(s) {unknown}; see lstm-gradcheck variants --json for names")

    def progress(outcome: VariantOutcome) -> None:
        if streams.is_terminal(sys.stderr):
            streams.write(sys.stderr, f"\r{outcome.variant.name[:60]:60s}")
            sys.stderr.flush()

    _hypothesis_home_outside_cwd()  # the searches' database goes to the user's cache, never into the cwd
    outcomes = run_variants(
        names, max_examples=args.max_examples, seed=args.seed, pinned=not args.search_only, on_outcome=progress
    )
    if streams.is_terminal(sys.stderr):
        streams.write(sys.stderr, "\r" + " " * 60 + "\r")
    matrix = kill_matrix(names) if args.matrix else []
    status = 0 if all(o.verdict_as_recorded for o in outcomes) else 1
    if args.json:
        data: dict[str, object] = {"variants": [o.as_dict() for o in outcomes]}
        if args.matrix:
            data["matrix"] = [{"name": r.variant.name, "caught": dict(r.caught), "guards": r.guards} for r in matrix]
        json.dump(data, sys.stdout, indent=2, allow_nan=False)
        sys.stdout.write("\n")
        return status
    header = ("variant", "source", "expected", "observed", "minimal failing case", "wrong in", "record")
    lines = plain_table(header, [_row(o) for o in outcomes])
    width = terminal_width(sys.stdout)
    if width is not None and max(len(line) for line in lines) > width:
        lines = _blocks(outcomes, width)
    wrong = [o for o in outcomes if o.variant.expected == FAIL]
    right = [o for o in outcomes if o.variant.expected == PASS]
    seeds = sorted({o.variant.source[:8] for o in outcomes if o.variant.is_seed})
    lines += [
        "",
        f"{len(outcomes)} variants: {len(wrong)} wrong, {sum(o.observed == FAIL for o in wrong)} caught, "
        f"{sum(bool(o.minimal_ok) for o in wrong)} with a minimal failing case as recorded, "
        f"{sum(bool(o.location_ok) for o in wrong)} located as recorded; "
        f"{len(right)} right, {sum(o.observed == PASS for o in right)} passing",
        f"seeds represented: {', '.join(seeds)}",
        f"found by: {sum(o.found_by == 'search' for o in wrong)} search, "
        f"{sum(o.found_by == 'pinned example' for o in wrong)} pinned example",
    ]
    lines += _matrix_lines(matrix)
    lines.append("all as recorded" if all(o.as_recorded for o in outcomes) else "SOME DIFFER FROM THE RECORD")
    sys.stdout.write("\n".join(wrap_lines(lines, width)) + "\n")
    return status

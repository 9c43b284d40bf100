"""The studies: false alarms of the correct reference, and each oracle's sensitivity.

``python -m bench.studies false-alarms --examples 20000 --workers 2``
    The correct reference through the ``thorough`` strategies (both dtypes,
    sequences up to 200 steps, weights up to 10x torch's init, forget_bias up
    to +-20, vanishing gradients, ill-conditioned cases), judged by the torch
    oracles under the one tolerance rule. Prints JSON: examples, settings
    covered, false alarms (must be 0), the worst error seen against its
    allowance, and how many tensors were judged ill-conditioned or vanishing.

``python -m bench.studies sensitivity --cases 200``
    Per oracle, the smallest relative error planted in one element (the
    largest-magnitude element of a randomly chosen tensor, so relative to the
    element and to its tensor's scale alike) that the oracle catches in at
    least 99% of random float64 cases.
"""

from __future__ import annotations

import argparse
import itertools
import json
import multiprocessing
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor

import numpy as np
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed

from lstm_gradcheck.oracles.compare import compare_gradients
from lstm_gradcheck.oracles.judging import judging_context
from lstm_gradcheck.oracles.registry import ORACLES, oracle_names, run_oracle
from lstm_gradcheck.properties.strategies import THOROUGH_SPACE, cases
from lstm_gradcheck.reference.case import make_case
from lstm_gradcheck.reference.config import LSTMConfig
from lstm_gradcheck.reference.lstm import grads
from lstm_gradcheck.reference.verdicts import FAIL

__all__ = ["false_alarm_study", "sensitivity_study", "main"]


def _bucket(value: float, edges: Sequence[float]) -> str:
    for lo, hi in itertools.pairwise(edges):
        if lo <= value < hi:
            return f"[{lo:g}, {hi:g})"
    return f">= {edges[-1]:g}"


def _false_alarm_worker(args: tuple[int, int, tuple[str, ...]]) -> dict:
    examples, seed, oracles = args

    stats: dict = {
        "examples": 0,
        "false_alarms": [],
        "worst_by_oracle": {name: {"severity": 0.0} for name in oracles},
        "ill_conditioned_tensors": 0,
        "vanishing_tensors": 0,
        "verdicts": {name: Counter() for name in oracles},
        "covered": {k: Counter() for k in ("dtype", "seq_len", "forget_bias", "weight_scale", "loss", "layers")},
    }

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        phases=(Phase.generate,),
        suppress_health_check=list(HealthCheck),
    )
    @hypothesis_seed(seed)
    @given(cases(THOROUGH_SPACE))
    def one(case):
        cfg = case.config
        loss, g = grads(case)
        context = judging_context(case, exact=(loss, g) if cfg.dtype == "float64" else None)
        stats["examples"] += 1
        covered = stats["covered"]
        covered["dtype"][cfg.dtype] += 1
        covered["seq_len"][_bucket(cfg.seq_len, (1, 13, 41, 101, 201))] += 1
        covered["forget_bias"][_bucket(abs(cfg.forget_bias), (0, 1e-12, 1, 5, 10, 20.0001))] += 1
        covered["weight_scale"][str(case.weight_scale)] += 1
        covered["loss"][f"{cfg.loss}@{cfg.loss_at}/{cfg.reduction}/{cfg.cell_output}"] += 1
        covered["layers"][str(cfg.num_layers)] += 1
        for name in oracles:
            report = run_oracle(name, context, loss, g)
            # "skipped": unfit, costly for the case's size, or abstaining (too rough for its step).
            stats["verdicts"][name][report.verdict] += 1
            if report.check is None:
                continue

            if report.verdict == FAIL:
                stats["false_alarms"].append({"oracle": name, "case": case.describe(), "why": report.check.describe()})
            for t in report.check.tensors:
                stats["ill_conditioned_tensors"] += t.ill_conditioned
                stats["vanishing_tensors"] += t.vanishing
                # Taylor's records carry a fitted linear term, not an error: its verdict is the slope.
                if t.ill_conditioned or name == "taylor":
                    continue
                if t.severity > stats["worst_by_oracle"][name]["severity"]:
                    stats["worst_by_oracle"][name] = {
                        "severity": t.severity,
                        "tensor": t.name,
                        "oracle": name,
                        "max_rel_err": t.max_rel_err,
                        "allowed": t.allowed,
                        "case": case.describe(),
                    }

    one()
    stats["covered"] = {k: dict(v) for k, v in stats["covered"].items()}
    stats["verdicts"] = {k: dict(v) for k, v in stats["verdicts"].items()}
    return stats


def false_alarm_study(
    examples: int = 20000, workers: int = 2, seed: int = 0, oracles: tuple[str, ...] = ("torch", "torch-nn")
) -> dict:
    """Run the study in ``workers`` processes (distinct seeds); merge their statistics."""
    share = [examples // workers + (k < examples % workers) for k in range(workers)]
    start = time.perf_counter()
    jobs = [(n, seed * 1000 + k, oracles) for k, n in enumerate(share)]
    if workers == 1:
        parts = [_false_alarm_worker(jobs[0])]
    else:
        # Spawn, not fork: the parent already holds BLAS, torch and oracle-pool threads,
        # and a forked child can inherit one of their locks held and wait forever.
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            parts = list(pool.map(_false_alarm_worker, jobs))
    merged: dict = {
        "examples": sum(p["examples"] for p in parts),
        "oracles": list(oracles),
        "false_alarms": [a for p in parts for a in p["false_alarms"]],
        "worst_by_oracle": {
            name: max((p["worst_by_oracle"][name] for p in parts), key=lambda w: w["severity"]) for name in oracles
        },
        "ill_conditioned_tensors": sum(p["ill_conditioned_tensors"] for p in parts),
        "vanishing_tensors": sum(p["vanishing_tensors"] for p in parts),
        # Per oracle: how many examples it passed, failed (false alarms) or skipped.
        "verdicts": {name: dict(sum((Counter(p["verdicts"][name]) for p in parts), Counter())) for name in oracles},
        "covered": {},
        "seconds": time.perf_counter() - start,
        "workers": workers,
        "seed": seed,
    }
    merged["worst"] = max(merged["worst_by_oracle"].values(), key=lambda w: w["severity"])
    for key in parts[0]["covered"]:
        total: Counter = Counter()
        for p in parts:
            total.update(p["covered"][key])
        merged["covered"][key] = dict(sorted(total.items()))
    return merged


#: The relative errors tried, largest first.
PLANTED = tuple(10.0**-k for k in range(2, 13))
SENSITIVITY_ORACLES = ("torch", "torch-nn", "complex-step", "richardson", "fd", "directional", "taylor")
#: The oracles of the numpy false-alarm study.
NUMPY_ORACLES = ("fd", "richardson", "complex-step", "taylor", "directional")


def _planted_judge(oracle: str, context, loss: float) -> Callable[[dict], bool] | None:
    """A function planted gradients -> caught?, or None when the oracle cannot judge the case.

    A full-gradient oracle's answer does not depend on the gradient it judges, so it is
    computed once and compared with every planted gradient under the same rule."""

    case = context.case
    spec = ORACLES[oracle]
    if spec.unfit(case.config) is not None or spec.costly(case.config) is not None:
        return None
    if spec.gradient is None:
        return lambda planted: run_oracle(oracle, context, loss, planted).verdict == FAIL
    answer = spec.gradient(context)
    tolerance = context.tolerance(answer.grads)

    def judge(planted: dict) -> bool:
        check = compare_gradients(
            case, loss, planted, answer.loss, answer.grads, oracle, tolerance=tolerance, oracle_errors=answer.errors
        )
        return not check.ok

    return judge


def sensitivity_study(cases: int = 200, seed: int = 0, oracles: Sequence[str] = SENSITIVITY_ORACLES) -> dict:
    """Detection rate of each oracle for each planted relative error; the smallest caught in >= 99%."""

    unknown = [o for o in oracles if o not in oracle_names()]
    if unknown:
        raise ValueError(f"unknown oracles {unknown}")
    rng = np.random.default_rng(seed)
    caught = {o: Counter() for o in oracles}
    applicable = Counter()
    start = time.perf_counter()
    for k in range(cases):
        config = LSTMConfig(
            input_size=int(rng.integers(1, 5)),
            hidden_size=int(rng.integers(1, 5)),
            num_layers=int(rng.integers(1, 3)),
            output_size=int(rng.integers(2, 4)),
            seq_len=int(rng.integers(1, 7)),
            batch_size=int(rng.integers(1, 4)),
            loss_at=str(rng.choice(["every", "last"])),
            loss=str(rng.choice(["cross_entropy", "mse", "bce"])),
            reduction=str(rng.choice(["sum", "mean"])),
            forget_bias=float(rng.choice([0.0, 1.0, -1.0, 5.0])),
            cell_output="tanh",
            final_state=bool(rng.integers(2)),
        )
        case = make_case(config, seed=seed * 100000 + k)
        loss, g = grads(case)
        context = judging_context(case, exact=(loss, g))
        name = str(rng.choice(sorted(g)))
        index = np.unravel_index(int(np.argmax(np.abs(g[name]))), g[name].shape)
        for oracle in oracles:
            judge = _planted_judge(oracle, context, loss)
            if judge is None:  # the oracle cannot judge this case
                continue
            for eps in PLANTED:
                planted = {n: v.copy() for n, v in g.items()}
                planted[name][index] *= 1 + eps
                applicable[(oracle, eps)] += 1
                caught[oracle][eps] += judge(planted)

    table = {}
    for oracle in oracles:
        rates = {
            f"{eps:.0e}": caught[oracle][eps] / applicable[(oracle, eps)]
            for eps in PLANTED
            if applicable[(oracle, eps)]
        }
        smallest = min(
            (
                eps
                for eps in PLANTED
                if applicable[(oracle, eps)] and caught[oracle][eps] >= 0.99 * applicable[(oracle, eps)]
            ),
            default=None,
        )
        table[oracle] = {"smallest_caught_99": smallest, "rates": rates, "cases": applicable[(oracle, PLANTED[0])]}
    return {"cases": cases, "seed": seed, "seconds": time.perf_counter() - start, "oracles": table}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.studies",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="study", required=True)
    fa = sub.add_parser("false-alarms")
    fa.add_argument("--examples", type=int, default=20000)
    fa.add_argument("--workers", type=int, default=2)
    fa.add_argument("--seed", type=int, default=0)
    fa.add_argument("--oracle", action="append")
    se = sub.add_parser("sensitivity")
    se.add_argument("--cases", type=int, default=200)
    se.add_argument("--seed", type=int, default=0)
    se.add_argument("--oracle", action="append")
    args = parser.parse_args(argv)
    if args.study == "false-alarms":
        oracles = tuple(args.oracle or ("torch", "torch-nn"))
        result = false_alarm_study(args.examples, args.workers, args.seed, oracles)
    else:
        result = sensitivity_study(args.cases, args.seed, tuple(args.oracle or SENSITIVITY_ORACLES))
    json.dump(result, sys.stdout, indent=2, default=float)
    sys.stdout.write("\n")
    return 1 if result.get("false_alarms") else 0


if __name__ == "__main__":
    sys.exit(main())

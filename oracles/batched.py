"""Scheduling the batched copies: chunks of columns, largest first, on a two-thread pool.

Note [Copy scheduling]
----------------------
Every request's copies run as one pool of jobs (a small tensor alone would leave a core
idle), largest first so the last to finish are short, each cut to a few per worker; the
workers run BLAS on one thread, since two workers each calling a two-thread GEMM
oversubscribe two cores. numpy's ufuncs and BLAS release the GIL, so threads suffice.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import lru_cache

import numpy as np
from threadpoolctl import ThreadpoolController

from lstm_gradcheck.oracles.batched_copies import CopyGroup, slice_group
from lstm_gradcheck.oracles.batched_forward import (
    TARGET_COLUMNS,
    Base,
    base_copies,
    copy_forward,
    groups_of,
    head_losses,
)
from lstm_gradcheck.oracles.batched_generic import GenericBase, generic_partial_losses_many
from lstm_gradcheck.oracles.workers import WORKERS
from lstm_gradcheck.reference.config import LSTMConfig
from lstm_gradcheck.reference.layout import HEAD_BIAS, HEAD_WEIGHT

__all__ = ["partial_losses", "partial_losses_many", "base_partial_losses", "JOBS_PER_WORKER", "CHUNK_BYTES"]

#: Every request's jobs are cut to about 1/JOBS_PER_WORKER of a worker's share of the
#: columns (at least MIN_COLUMNS), so a few copies still make several jobs for the pool.
JOBS_PER_WORKER = 4
MIN_COLUMNS = 256
#: A chunk keeps the top layer's h for every column and step (H x T x columns) for the head;
#: long or wide cases get fewer columns per chunk so each worker stays within this.
CHUNK_BYTES = 64 * 2**20


@lru_cache(maxsize=1)
def _pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="lstm-gradcheck-fd")


@lru_cache(maxsize=1)
def _blas_controller() -> ThreadpoolController:
    # Finding the loaded BLAS libraries reads /proc/self/maps: about 1 ms, once, not per call.
    return ThreadpoolController()


@contextmanager
def _one_blas_thread() -> Iterator[int]:
    """Yield how many pool workers to use, with BLAS on one thread meanwhile.

    Two workers each calling a multi-threaded GEMM oversubscribe two cores
    (measured: 3-20x slower), so the workers run with BLAS on one thread.
    """
    with _blas_controller().limit(limits=1, user_api="blas"):
        yield WORKERS


def partial_losses(base: Base, name: str, index: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """``L(θ + δ_k e_{i_k}) - C(i_k)`` for each copy k (Note [Batched copies]).

    Args:
        base: :func:`prepare` of the case.
        name: the perturbed gradient name (a parameter, ``x``, ``h0`` or ``c0``).
        index: (K,) flat element indices into that tensor.
        delta: (K,) steps, float64 or complex128 (the complex step runs in complex128).

    Returns:
        (K,) partial losses of ``delta``'s dtype; ``C`` depends only on the element.
    """
    return partial_losses_many(base, [(name, index, delta)])[0]


def partial_losses_many(base: Base, requests: Sequence[tuple[str, np.ndarray, np.ndarray]]) -> list[np.ndarray]:
    """:func:`partial_losses` of several ``(name, index, delta)`` requests, run as one pool of jobs.

    One pool for every request keeps both workers busy to the end (a small
    tensor alone is one job on one core) and the largest jobs go first, so the
    last ones to finish are short. Requests of the same tensor are merged
    before they are grouped (fewer, larger groups). Every delta is promoted to
    one dtype (complex128 if any is complex).
    """
    if isinstance(base, GenericBase):  # a case of the LSTM family (Note [Generic copies])
        return generic_partial_losses_many(base, requests)
    dtype = np.result_type(np.float64, *(np.asarray(d).dtype for _, _, d in requests))
    partial = copy_forward(base)
    cfg = base.config
    merged: dict[str, tuple[list[np.ndarray], list[np.ndarray]]] = {}
    for name, elements, steps in requests:
        merged.setdefault(name, ([], []))
        merged[name][0].append(np.asarray(elements, dtype=np.int64).reshape(-1))
        merged[name][1].append(np.asarray(steps).astype(dtype).reshape(-1))
    flat: dict[str, np.ndarray] = {}
    groups: list[tuple[np.ndarray, str, CopyGroup]] = []
    heads: list[tuple[str, np.ndarray, np.ndarray]] = []
    for name, (indices, deltas) in merged.items():
        index, delta = np.concatenate(indices), np.concatenate(deltas)
        flat[name] = np.empty(len(index), dtype=dtype)
        if name in (HEAD_WEIGHT, HEAD_BIAS):
            heads.append((name, index, delta))
        else:
            groups += [(sel, name, group) for sel, group in groups_of(base, name, index, delta)]
    share = -(-sum(_columns(cfg, g) for _, _, g in groups) // (JOBS_PER_WORKER * WORKERS))
    jobs: list[tuple[np.ndarray, str, CopyGroup]] = []
    for sel, name, group in groups:
        r = cfg.batch_size if group.rows is None else 1
        columns = min(_chunk_columns(cfg, group.t0, dtype), max(MIN_COLUMNS, share))
        per_chunk = max(1, columns // r)
        for start in range(0, group.k, per_chunk):
            part = slice(start, min(group.k, start + per_chunk))
            jobs.append((sel[part], name, slice_group(group, part)))
    jobs.sort(key=lambda job: -_job_cost(cfg, job[2]))
    with _one_blas_thread() as workers:
        if workers > 1 and len(jobs) > 1:
            results = _pool().map(lambda job: partial.run_group(base, job[2], dtype), jobs)
        else:
            results = (partial.run_group(base, job[2], dtype) for job in jobs)
        for name, index, delta in heads:  # cheap; on this thread while the pool works
            flat[name][:] = head_losses(base, name, index, delta)
        for (sel, name, _), value in zip(jobs, results, strict=True):
            flat[name][sel] = value
    outs, used = [], dict.fromkeys(flat, 0)
    for name, elements, _ in requests:
        size = np.size(elements)
        outs.append(flat[name][used[name] : used[name] + size])
        used[name] += size
    return outs


def _chunk_columns(config: LSTMConfig, t0: int, dtype: np.dtype) -> int:
    """Columns per chunk: TARGET_COLUMNS, fewer where the stored outputs would pass CHUNK_BYTES."""
    per_column = config.hidden_size * (config.seq_len - t0) * np.dtype(dtype).itemsize
    return max(1, min(TARGET_COLUMNS, CHUNK_BYTES // per_column))


def _columns(config: LSTMConfig, group: CopyGroup) -> int:
    return group.k * (config.batch_size if group.rows is None else 1)


def _job_cost(config: LSTMConfig, group: CopyGroup) -> int:
    """Columns x steps x layers that a group runs: the order of the pool's queue."""
    return _columns(config, group) * (config.seq_len - group.t0) * (config.num_layers - group.l0)


def base_partial_losses(base: Base, name: str, index: np.ndarray) -> np.ndarray:
    """``L(θ) - C(i_k)`` for each element (the δ = 0 copy), one evaluation per group."""
    first, inverse = base_copies(base.config, name, index)
    return partial_losses(base, name, first, np.zeros(len(first)))[inverse]

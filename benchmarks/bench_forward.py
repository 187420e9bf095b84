"""Forward mode: transform latency and the JVP cost ratio time(jvp f) / time(f).

Run: python benchmarks/bench_forward.py [--malloc]

--malloc raises glibc's mmap/trim thresholds first (s2sad.runtime.memory.tune_malloc), so
fresh large temporaries are not returned to the OS and faulted in again on every call.
"""

import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))

import s2sad as ad  # noqa: E402
from s2sad.transforms import pipeline  # noqa: E402
from s2sad.transforms.emit import emit  # noqa: E402
from s2sad.transforms.jvp import jvp_callee  # noqa: E402

import workloads as wl  # noqa: E402
from common import best_time, fmt, table  # noqa: E402

CASES = [
    ("predict (seed)", wl.predict_W, (wl.W,)),
    ("polynomial (seed)", wl.polynomial, (1.0,)),
    ("td_loss (seed)", wl.td_loss, (np.array([0.1, -0.1, 0.0]),)),
    ("log1pexp (seed)", wl.log1pexp, (3.0,)),
    ("sum(tanh(X)**2) 300x400", wl.tanh_sq_sum, (wl.X300,)),
    ("recurrence 10^3 steps, 64-vector", wl.recurrence, (wl.x0_vec, 1.3)),
]


def transform_latency(f, args):
    """Capture to emitted function, from cold caches (median of 5)."""
    times = []
    for _ in range(5):
        pipeline.clear_caches()
        t0 = time.perf_counter()
        skels = tuple(pipeline.skeleton_of(a) for a in args)
        spec = pipeline.primal_callee(f, skels)
        jc = jvp_callee(spec, [True] * len(spec.params))
        emit(jc)
        times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2]


def main():
    if "--malloc" in sys.argv:
        from s2sad.runtime.memory import tune_malloc
        tune_malloc()
    rows = []
    for name, f, args in CASES:
        lat = transform_latency(f, args)
        skels = tuple(pipeline.skeleton_of(a) for a in args)
        spec = pipeline.primal_callee(f, skels)
        jc = jvp_callee(spec, [True] * len(spec.params))
        gen = emit(jc).fn
        tangents = tuple(np.ones_like(a) if isinstance(a, np.ndarray) else 1.0 for a in args)
        t_f = best_time(f, *args)
        t_gen = best_time(gen, *args, *tangents)
        t_api = best_time(ad.jvp, f, args, tangents)
        rows.append((name, fmt(lat), fmt(t_f), fmt(t_gen), f"{t_gen / t_f:5.2f}", f"{t_api / t_f:5.2f}"))
    table(rows, ("workload", "transform", "f", "f_jvp", "jvp/f", "ad.jvp/f"))
    print("\ntransform: capture -> normalize -> specialize -> jvp -> emit, cold caches (median of 5)")
    print("jvp/f: the generated JVP function called directly; ad.jvp/f: through the API "
          "(pytree flattening, cache lookups)")


if __name__ == "__main__":
    main()

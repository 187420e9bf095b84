"""Reverse mode: time(grad f) / time(f) in plain Python, against autograd when installed.

Run: python benchmarks/bench_reverse.py [--malloc]

--malloc raises glibc's mmap/trim thresholds first (s2sad.runtime.memory.tune_malloc):
NumPy code with many large temporaries (gradients of array code) otherwise pays page
faults on every allocation; both NumPy f and the gradient benefit.
"""

import os
import sys
import tracemalloc

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))

import s2sad as ad  # noqa: E402

import workloads as wl  # noqa: E402
from common import best_time, fmt, table  # noqa: E402

try:
    import autograd
    import autograd.numpy as anp
except ImportError:  # optional peer
    autograd = None


def autograd_versions():
    if autograd is None:
        return {}

    def predict(W, b, inputs):
        return 0.5 * (anp.tanh((anp.dot(inputs, W) + b) / 2) + 1)

    def tanh_sq(X):
        return anp.sum(anp.tanh(X) ** 2)

    def recurrence(x0, a, n):
        x = x0
        for i in range(n):
            x = x + 0.01 * (a * anp.sin(x) - x ** 3)
        return anp.sum(x ** 2)

    def td_loss(theta):
        v_tm1 = anp.dot(theta, wl.s_tm1)
        target = wl.r_t + anp.dot(theta, wl.s_t)
        return -0.5 * ((target - v_tm1) ** 2)
    return {
        "predict": autograd.grad(lambda W: anp.sum(predict(W, wl.b, wl.inputs))),
        "td_loss": autograd.grad(td_loss),
        "tanh": autograd.grad(tanh_sq),
        "rec3": autograd.grad(lambda a: recurrence(wl.x0_vec, a, 1000)),
        "rec3x": autograd.grad(lambda x0: recurrence(x0, 1.3, 1000)),
    }


def rec_sum(x0, a, n):
    return np.sum(wl.recurrence(x0, a, n))


def main():
    if "--malloc" in sys.argv:
        from s2sad.runtime.memory import tune_malloc
        tune_malloc()
    ag = autograd_versions()
    predict_sum = lambda W: np.sum(wl.predict(W, wl.b, wl.inputs))  # noqa: E731
    cases = [
        ("sum(predict) (seed)", predict_sum, (wl.W,), 0, "predict"),
        ("td_loss (seed)", wl.td_loss, (np.array([0.1, -0.1, 0.0]),), 0, "td_loss"),
        ("polynomial (seed)", wl.polynomial, (1.0,), 0, None),
        ("sum(tanh(X)**2) X 300x400", wl.tanh_sq_sum, (wl.X300,), 0, "tanh"),
        ("recurrence 1e3 steps, grad a", rec_sum, (wl.x0_vec, 1.3, 1000), 1, "rec3"),
        ("recurrence 1e3 steps, grad x0", rec_sum, (wl.x0_vec, 1.3, 1000), 0, "rec3x"),
        ("recurrence 1e5 steps, grad a", rec_sum, (0.3, 1.3, 100_000), 1, None),
    ]
    rows = []
    for name, f, args, argnum, key in cases:
        g = ad.grad(f, argnums=argnum)
        g(*args)
        t_f = best_time(f, *args, repeat=3 if "1e5" in name else 7)
        t_g = best_time(g, *args, repeat=3 if "1e5" in name else 7)
        row = [name, fmt(t_f), fmt(t_g), f"{t_g / t_f:6.2f}"]
        if key in ag:
            other = ag[key]
            a_args = (args[0],) if key not in ("rec3",) else (args[1],)
            t_a = best_time(other, *a_args)
            row += [fmt(t_a), f"{t_a / t_f:6.2f}"]
        else:
            row += ["-", "-"]
        rows.append(row)
    table(rows, ("workload", "f", "grad f", "grad/f", "autograd", "ag/f"))
    # residual memory of the long recurrence: peak traced allocation during grad
    print()
    for n in (1_000, 10_000, 100_000):
        g = ad.grad(rec_sum, argnums=1)
        g(0.3, 1.3, n)
        tracemalloc.start()
        g(0.3, 1.3, n)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        print(f"recurrence {n:>7} steps (scalar x): peak traced memory during grad {peak / 1e6:8.2f} MB "
              f"({peak / n:6.1f} bytes/step)")


if __name__ == "__main__":
    main()

"""Checkpointing: residual memory and time of the recurrence gradient, with and without
``ad.checkpoint`` on the loop body.

Run: python benchmarks/bench_checkpoint.py

Peak memory is measured with tracemalloc (Python objects and NumPy buffers) during one
call of the gradient; the gradient values of both versions are printed side by side.
"""

import os
import sys
import tracemalloc

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))

import s2sad as ad  # noqa: E402

import workloads as wl  # noqa: E402
from common import best_time, fmt, table  # noqa: E402


def peak_memory(fn, *args):
    fn(*args)
    tracemalloc.start()
    fn(*args)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def main():
    rows = []
    for x0, label in ((0.3, "scalar x"), (wl.x0_vec, "x of 64")):
        for n in (1_000, 100_000):
            plain = ad.grad(wl.recurrence_sum, argnums=(0, 1))
            ckpt = ad.grad(wl.recurrence_checkpointed, argnums=(0, 1))
            gp = plain(x0, 1.3, n)
            gc = ckpt(x0, 1.3, n)
            diff = max(float(np.max(np.abs(np.asarray(a) - np.asarray(b)))) for a, b in zip(gp, gc))
            mp = peak_memory(plain, x0, 1.3, n)
            mc = peak_memory(ckpt, x0, 1.3, n)
            tp = best_time(plain, x0, 1.3, n, repeat=3)
            tc = best_time(ckpt, x0, 1.3, n, repeat=3)
            rows.append((f"{label}, {n} steps", f"{mp / n:7.1f} B/step", f"{mc / n:7.1f} B/step",
                         f"{mp / mc:5.2f}x", fmt(tp), fmt(tc), f"{tc / tp:5.2f}", f"{diff:.1e}"))
    table(rows, ("recurrence grad (x0, a)", "peak plain", "peak checkpoint", "memory saved",
                 "time plain", "time checkpoint", "time ratio", "max |diff|"))


if __name__ == "__main__":
    main()

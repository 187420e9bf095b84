"""Batching: time(vmap(g)(batch)) against a Python loop of g over the batch, and (when
installed: pip install -e ".[bench]") against jax.vmap, with and without jax.jit.

Run: python benchmarks/bench_vmap.py [--batch N]

The ratio printed is loop time / vmap time (higher: vmap wins). Nothing is asserted.
"""

import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))

import s2sad as ad  # noqa: E402

from common import best_time, fmt, table  # noqa: E402

B = int(sys.argv[sys.argv.index("--batch") + 1]) if "--batch" in sys.argv else 256
rng = np.random.default_rng(0)


def td_loss(theta, s_tm1, r_t, s_t):
    v_tm1 = np.dot(theta, s_tm1)
    target = r_t + np.dot(theta, s_t)
    return -0.5 * ((ad.stop_gradient(target) - v_tm1) ** 2)


def mlp_loss(W1, W2, x, y):
    h = np.tanh(x @ W1)
    return np.sum((h @ W2 - y) ** 2)


def piecewise(x):
    if x > 0.0:
        y = np.sin(x) * x
    else:
        y = x * x - 1.0
    return y


def predict(W, inputs):
    return 0.5 * (np.tanh((inputs @ W) / 2) + 1)


theta = np.array([0.1, -0.1, 0.0])
S0, R, S1 = rng.normal(size=(B, 3)), rng.normal(size=B), rng.normal(size=(B, 3))
W1, W2 = rng.normal(size=(32, 16)) / 6, rng.normal(size=(16, 4)) / 4
X, Y = rng.normal(size=(B, 32)), rng.normal(size=(B, 4))
P = rng.normal(size=B * 16)
Wp, inputs = rng.normal(size=8), rng.normal(size=(64, 8))
U = rng.normal(size=(B, 64))


def cases():
    g_td = ad.grad(td_loss)
    g_mlp = ad.grad(mlp_loss, argnums=(0, 1))
    g_pw = ad.grad(piecewise)
    _, pullback = ad.vjp(lambda W: predict(W, inputs), Wp)
    return [
        ("per-example grad td_loss (seed)",
         lambda: ad.vmap(g_td, in_axes=(None, 0, 0, 0))(theta, S0, R, S1),
         lambda: [g_td(theta, S0[i], R[i], S1[i]) for i in range(B)]),
        ("per-example grad 2-layer MLP 32-16-4",
         lambda: ad.vmap(g_mlp, in_axes=(None, None, 0, 0))(W1, W2, X, Y),
         lambda: [g_mlp(W1, W2, X[i], Y[i]) for i in range(B)]),
        (f"grad of an if, select ({B * 16} scalars)",
         lambda: ad.vmap(g_pw)(P),
         lambda: [g_pw(p) for p in P]),
        ("matrix-Jacobian product vmap(vjp_fun)(U) (seed)",
         lambda: ad.vmap(pullback)(U),
         lambda: [pullback(u) for u in U]),
    ]


def jax_cases():
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:
        return None
    jax.config.update("jax_enable_x64", True)

    def td(theta, s_tm1, r_t, s_t):
        v_tm1 = jnp.dot(theta, s_tm1)
        target = r_t + jnp.dot(theta, s_t)
        return -0.5 * ((jax.lax.stop_gradient(target) - v_tm1) ** 2)

    def mlp(W1, W2, x, y):
        return jnp.sum((jnp.tanh(x @ W1) @ W2 - y) ** 2)

    def pw(x):
        return jnp.where(x > 0.0, jnp.sin(x) * x, x * x - 1.0)

    def pred(W):
        return 0.5 * (jnp.tanh((inputs @ W) / 2) + 1)

    _, pb = jax.vjp(pred, Wp)
    fns = [
        (jax.vmap(jax.grad(td), in_axes=(None, 0, 0, 0)), (theta, S0, R, S1)),
        (jax.vmap(jax.grad(mlp, argnums=(0, 1)), in_axes=(None, None, 0, 0)), (W1, W2, X, Y)),
        (jax.vmap(jax.grad(pw)), (P,)),
        (jax.vmap(pb), (U,)),
    ]

    def block(out):
        return jax.tree_util.tree_map(lambda a: a.block_until_ready(), out)
    plain = [lambda f=f, a=a: block(f(*a)) for f, a in fns]
    jitted = [(jax.jit(f), a) for f, a in fns]
    jit = [lambda f=f, a=a: block(f(*a)) for f, a in jitted]
    return plain, jit


def main():
    rows = []
    peers = jax_cases()
    for k, (name, vm, loop) in enumerate(cases()):
        t_vm = best_time(vm, repeat=5)
        t_loop = best_time(loop, repeat=3)
        row = [name, fmt(t_vm), fmt(t_loop), f"{t_loop / t_vm:7.1f}x"]
        if peers is not None:
            t_j, t_jj = best_time(peers[0][k], repeat=5), best_time(peers[1][k], repeat=5)
            row += [fmt(t_j), f"{t_vm / t_j:6.2f}", fmt(t_jj), f"{t_vm / t_jj:6.2f}"]
        rows.append(row)
    header = ["case (batch %d)" % B, "s2sad vmap", "loop of s2sad", "loop/vmap"]
    if peers is not None:
        header += ["jax.vmap", "s2sad/jax", "jit(jax.vmap)", "s2sad/jit"]
    table(rows, header)
    if peers is None:
        print("\n(jax not installed: pip install -e \".[bench]\" adds the JAX columns)")


if __name__ == "__main__":
    main()

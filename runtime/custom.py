"""User-defined derivative rules: `custom_jvp` and `custom_vjp`.

These objects behave like the function they wrap when called; the transforms read them
as annotations (see `transforms/jvp.py`): forward mode inlines a call of the JVP rule,
reverse mode transposes the rule's tangent output, and a `custom_vjp` splices `fwd` and
`bwd` into the reverse sweep.
"""

from __future__ import annotations

import functools
import inspect


class custom_jvp:
    """``custom_jvp(fun, nondiff_argnums=())`` with ``.defjvp(rule)`` / ``.defjvps(*fns)``."""

    def __init__(self, fun, nondiff_argnums=()):
        functools.update_wrapper(self, fun)
        self.fun = fun
        self.nondiff_argnums = tuple(nondiff_argnums)
        self.jvp = None
        self.jvps = None

    def defjvp(self, jvp):
        """Set the rule ``jvp(*nondiff_args, primals, tangents) -> (primal_out, tangent_out)``."""
        self.jvp = jvp
        self.jvps = None
        return jvp

    def defjvps(self, *jvps):
        """One function per differentiable argument: ``fn(arg_dot, primal_out, *primals)``;
        ``None`` for an argument whose tangent contributes zero."""
        self.jvps = jvps
        self.jvp = _combined_jvps_rule(self, jvps)
        return None

    def __call__(self, *args, **kwargs):
        return self.fun(*args, **kwargs)

    def __get__(self, obj, objtype=None):
        return self if obj is None else functools.partial(self, obj)


class custom_vjp:
    """``custom_vjp(fun, nondiff_argnums=())`` with ``.defvjp(fwd, bwd)``."""

    def __init__(self, fun, nondiff_argnums=()):
        functools.update_wrapper(self, fun)
        self.fun = fun
        self.nondiff_argnums = tuple(nondiff_argnums)
        self.fwd = None
        self.bwd = None

    def defvjp(self, fwd, bwd):
        self.fwd = fwd
        self.bwd = bwd

    def __call__(self, *args, **kwargs):
        return self.fun(*args, **kwargs)


class Checkpointed:
    """``ad.checkpoint(fun)``: behaves like `fun`; in reverse mode its calls save only their
    inputs and recompute their intermediates in the backward sweep."""

    def __init__(self, fun, policy=None):
        functools.update_wrapper(self, fun)
        if policy is not None:
            raise TypeError("ad.checkpoint: no policy is supported yet (policy=None saves only "
                            "the inputs of each call)")
        self.fun = fun
        self.policy = policy
        self.nondiff_argnums = ()

    def __call__(self, *args, **kwargs):
        return self.fun(*args, **kwargs)

    def __get__(self, obj, objtype=None):
        return self if obj is None else functools.partial(self, obj)


def _combined_jvps_rule(cj, jvps):
    """Write the rule ``defjvps`` describes as Python source, so it can be transformed."""
    import linecache

    sig = inspect.signature(cj.fun)
    names = [p for p in sig.parameters]
    nd = set(cj.nondiff_argnums)
    diff = [n for i, n in enumerate(names) if i not in nd]
    nondiff = [n for i, n in enumerate(names) if i in nd]
    fname = getattr(cj.fun, "__name__", "f")
    lines = [f"def {fname}_jvps_rule({''.join(n + ', ' for n in nondiff)}primals, tangents):"]
    lines.append(f"    ({''.join(n + ', ' for n in diff)}) = primals")
    lines.append(f"    ({''.join(n + '_dot, ' for n in diff)}) = tangents")
    lines.append(f"    primal_out = __fun__({', '.join(names)})")
    terms = []
    for i, (n, fn) in enumerate(zip(diff, jvps)):
        if fn is None:
            continue
        terms.append(f"__jvp{i}__({n}_dot, primal_out, {', '.join(names)})")
    if terms:
        lines.append(f"    tangent_out = {' + '.join(terms)}")
    else:
        lines.append("    tangent_out = 0.0 * primal_out")
    lines.append("    return primal_out, tangent_out")
    src = "\n".join(lines) + "\n"
    filename = f"<s2sad defjvps {fname} {id(cj):x}>"
    linecache.cache[filename] = (len(src), None, src.splitlines(True), filename)
    glb = {"__fun__": cj, "__builtins__": __builtins__}
    for i, fn in enumerate(jvps):
        glb[f"__jvp{i}__"] = fn
    exec(compile(src, filename, "exec"), glb)
    return glb[f"{fname}_jvps_rule"]

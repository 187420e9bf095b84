"""The public transforms: thin wrappers that ask the pipeline for generated code and
handle pytrees at the boundary."""

from __future__ import annotations

import functools

import numpy as np

from s2sad.errors import TransformError
from s2sad.runtime import helpers
from s2sad.transforms import pipeline
from s2sad.transforms.emit import emit, module_source
from s2sad.transforms.values import SLeaf, count_leaves  # noqa: F401

stop_gradient = helpers.stop_gradient


def _is_float_leaf(x) -> bool:
    return np.result_type(x).kind in "fc"


def _check_tuple(name, value, what):
    if not isinstance(value, (tuple, list)):
        raise TypeError(f"{what} arguments to {name} must be tuples or lists; found "
                        f"{type(value).__name__}.")


def _leaf_shape_check(p, t, i):
    if np.shape(p) != np.shape(t):
        raise ValueError(f"jvp called with different primal and tangent shapes: primal leaf {i} "
                         f"has shape {np.shape(p)} and its tangent {np.shape(t)}")


def jvp(fun, primals, tangents, has_aux=False):
    """``(primals_out, tangents_out)``: ``fun`` and its directional derivative at ``primals``
    along ``tangents`` (``(primals_out, tangents_out, aux)`` with ``has_aux``)."""
    _check_tuple("jvp", primals, "primal")
    _check_tuple("jvp", tangents, "tangent")
    if len(primals) != len(tangents):
        raise TypeError(f"jvp called with {len(primals)} primals and {len(tangents)} tangents; "
                        f"they must match")
    skels = [pipeline.skeleton_of(p) for p in primals]
    for i, (p, t) in enumerate(zip(primals, tangents)):
        if pipeline.skeleton_of(t) != skels[i]:
            raise TypeError(f"jvp called with primal and tangent arguments of different tree "
                            f"structure (argument {i})")
    spec = pipeline.primal_callee(fun, skels)
    leaves, tleaves = [], []
    for p, t, s in zip(primals, tangents, skels):
        pipeline.leaves_of(p, s, leaves)
        pipeline.leaves_of(t, s, tleaves)
    for i, (p, t) in enumerate(zip(leaves, tleaves)):
        _leaf_shape_check(p, t, i)
    active = [_is_float_leaf(p) for p in leaves]
    from s2sad.transforms.jvp import jvp_callee
    jc = jvp_callee(spec, active)
    gen = emit(jc)
    targs = [np.array(t) if isinstance(t, np.ndarray) else t for t, a in zip(tleaves, active) if a]
    flat = pipeline.result_leaves(jc, gen.fn(*leaves, *targs))
    n_out = count_leaves(spec.out_skel)
    outs = flat[:n_out]
    tans = iter(flat[n_out:])
    tangent_leaves = [next(tans) if a else helpers.zero_tangent(np.asarray(o) if np.ndim(o) else o)
                      for o, a in zip(outs, jc.active_out)]
    primal_out = pipeline.build_value(spec.out_skel, outs)
    tangent_out = pipeline.build_value(spec.out_skel, tangent_leaves)
    if has_aux:
        if not (isinstance(primal_out, tuple) and len(primal_out) == 2):
            raise TypeError("has_aux=True requires fun to return a pair (out, aux)")
        return primal_out[0], tangent_out[0], primal_out[1]
    return primal_out, tangent_out


class Transformed:
    """A transformed function: specialized and compiled per argument layout, cached."""

    __s2sad_transform__ = True

    def __init__(self, kind, fun, options, build):
        self.kind = kind
        self.fun = fun
        self.options = options
        self._build = build
        self._specs: dict = {}
        self._last = None
        functools.update_wrapper(self, fun, updated=())
        self.__name__ = f"{kind}({getattr(fun, '__name__', 'f')})"

    def __repr__(self):
        return f"<s2sad {self.kind} of {getattr(self.fun, '__name__', self.fun)!r}>"

    def specialize(self, skels):
        """The generated callee for arguments of layout `skels` (cached; rebuilt when a
        global or closure value the code was specialized to has changed)."""
        skels = tuple(skels)
        hit = self._specs.get(skels)
        if hit is not None and pipeline.deps_valid(hit[1]):
            callee = hit[0]
        else:
            callee = self._build(self, skels)
            self._specs[skels] = (callee, pipeline.deps_of(callee))
        self._last = callee
        return callee

    def default_callee(self):
        if self._last is not None:
            return self._last
        n = _arity(self)
        return self.specialize(tuple(SLeaf() for _ in range(n)))

    def __call__(self, *args, **kwargs):
        if kwargs:
            raise TypeError(f"{self.__name__} does not take keyword arguments; pass them "
                            f"positionally or with functools.partial")
        skels = tuple(pipeline.skeleton_of(a) for a in args)
        self._check_args(args, skels)
        callee = self.specialize(skels)
        gen = emit(callee)
        leaves = []
        for a, s in zip(args, skels):
            pipeline.leaves_of(a, s, leaves)
        flat = pipeline.result_leaves(callee, gen.fn(*leaves))
        return pipeline.build_value(callee.out_skel, flat)

    def _check_args(self, args, skels):
        nums = self.options.get("argnums")
        if nums is None:
            return
        nums = (nums,) if isinstance(nums, int) else tuple(nums)
        for a in nums:
            if not -len(args) <= a < len(args):
                raise TypeError(f"{self.kind} of a function called with {len(args)} positional "
                                f"arguments cannot differentiate argument {a} (argnums={nums})")
            holo = self.options.get("holomorphic", False)
            for leaf in pipeline.leaves_of(args[a], skels[a]):
                if type(leaf) is float and not holo:
                    continue  # the common case, fast
                kind = np.result_type(leaf).kind
                if kind not in "fc":
                    raise TypeError(f"{self.kind} requires real- or complex-valued inputs (input "
                                    f"dtype that is a sub-dtype of np.inexact), but got "
                                    f"{np.result_type(leaf).name}. If you want to use integer-valued "
                                    f"inputs, use vjp or set allow_int to True.")
                if holo and kind != "c":
                    raise TypeError(f"{self.kind} with holomorphic=True requires inputs with "
                                    f"complex dtype, but got {np.result_type(leaf).name}.")
                if kind == "c" and not holo and self.kind == "jacfwd":
                    raise TypeError(f"jacfwd requires real-valued inputs (input dtype that is a "
                                    f"sub-dtype of np.floating), but got "
                                    f"{np.result_type(leaf).name}. For holomorphic "
                                    f"differentiation, pass holomorphic=True. For differentiation "
                                    f"of non-holomorphic functions involving complex inputs, use "
                                    f"ad.jvp directly.")


def _arity(fun):
    import inspect
    n = getattr(fun, "__s2sad_arity__", None)
    if n is not None:
        return n
    if getattr(fun, "__s2sad_transform__", False):
        return _arity(fun.fun)
    target = getattr(fun, "fun", fun)
    try:
        sig = inspect.signature(target)
    except (TypeError, ValueError):
        return 1
    return sum(1 for p in sig.parameters.values()
               if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty)


def jacfwd(fun, argnums=0, has_aux=False, holomorphic=False):
    """The Jacobian of ``fun`` by forward mode; output shape ``out.shape + in.shape``,
    pytrees on both sides."""
    options = {"argnums": argnums, "has_aux": has_aux, "holomorphic": holomorphic}

    def build(t, skels):
        spec = pipeline.primal_callee(fun, skels)
        return pipeline.jacfwd_callee(spec, argnums, has_aux, holomorphic=holomorphic)
    return Transformed("jacfwd", fun, options, build)


def jvp_function(fun):
    """``fun`` -> its JVP as a function ``f_jvp(*primals, *tangents)`` (every floating
    argument active); used by ``s2sad dump -t jvp`` and composable like any transform."""

    def build(t, skels):
        from s2sad.transforms.jvp import jvp_callee
        n = len(skels) // 2
        spec = pipeline.primal_callee(fun, skels[:n])
        return jvp_callee(spec, [True] * len(spec.params))

    t = Transformed("jvp", fun, {}, build)
    t.__s2sad_arity__ = 2 * _arity(fun)
    return t


def source(fun, *example_args) -> str:
    """The generated Python source behind ``fun`` (a transformed function, or a plain
    function: its normalized, specialized form), every generated function it calls
    included. With example arguments, the version specialized to their layout."""
    if example_args:
        skels = tuple(pipeline.skeleton_of(a) for a in example_args)
        if getattr(fun, "__s2sad_transform__", False):
            callee = fun.specialize(skels)
        else:
            callee = pipeline.primal_callee(fun, skels)
    elif getattr(fun, "__s2sad_transform__", False):
        callee = fun.default_callee()
    elif hasattr(fun, "__s2sad__"):
        return module_source(fun.__s2sad__)
    elif isinstance(fun, Pullback):
        return module_source(emit(fun.bwd))
    elif isinstance(fun, LinearFn):
        return module_source(emit(fun.lin))
    else:
        callee = pipeline.primal_callee(fun, tuple(SLeaf() for _ in range(_arity(fun))))
    return module_source(emit(callee))


# ---------------------------------------------------------------- reverse mode

def _grad_builder(fun, argnums, has_aux, holomorphic, with_value):
    def build(t, skels):
        spec = pipeline.primal_callee(fun, skels)
        return pipeline.grad_of_spec(spec, argnums, has_aux, holomorphic, with_value)
    return build


def grad(fun, argnums=0, has_aux=False, holomorphic=False):
    """The gradient of a scalar-output function (reverse mode, one fused function)."""
    options = {"argnums": argnums, "has_aux": has_aux, "holomorphic": holomorphic}
    return Transformed("grad", fun, options, _grad_builder(fun, argnums, has_aux, holomorphic, False))


def value_and_grad(fun, argnums=0, has_aux=False, holomorphic=False):
    """``(value, gradient)`` in one pass (``((value, aux), gradient)`` with has_aux)."""
    options = {"argnums": argnums, "has_aux": has_aux, "holomorphic": holomorphic}
    return Transformed("value_and_grad", fun, options,
                       _grad_builder(fun, argnums, has_aux, holomorphic, True))


class Pullback:
    """The VJP function returned by `vjp`: a generated function over saved residuals.
    Calling it several times is fine."""

    def __init__(self, bwd, residuals, out_skel, ct_skel, in_skels, active, primals_leaves, name):
        self.bwd = bwd
        self.residuals = residuals
        self.out_skel = out_skel
        self.ct_skel = ct_skel
        self.in_skels = in_skels
        self.active = active
        self.primals = primals_leaves
        self.__name__ = name

    def __call__(self, ct):
        if pipeline.skeleton_of(ct) != self.ct_skel and not isinstance(self.ct_skel, SLeaf):
            raise TypeError("the cotangent passed to the vjp function must have the structure of "
                            "the function's output")
        cts = pipeline.leaves_of(ct, self.ct_skel)
        fn = emit(self.bwd).fn
        flat = pipeline.result_leaves(self.bwd, fn(*self.residuals, *[c for c, a in zip(cts, self.out_active) if a]))
        it = iter(flat)
        leaves = [next(it) if a else helpers.zero_tangent(np.asarray(p) if np.ndim(p) else float(p))
                  for p, a in zip(self.primals, self.active)]
        out, pos = [], [0]
        for s in self.in_skels:
            out.append(pipeline.build_value(s, leaves, pos))
        return tuple(out)


def vjp(fun, *primals, has_aux=False):
    """``(primals_out, vjp_fn)``; ``vjp_fn(cotangent)`` returns one cotangent per primal."""
    from s2sad.transforms.jvp import jvp_callee
    from s2sad.transforms.vjp import split
    skels = [pipeline.skeleton_of(p) for p in primals]
    spec = pipeline.primal_callee(fun, skels)
    leaves = []
    for p, sk in zip(primals, skels):
        pipeline.leaves_of(p, sk, leaves)
    active = [_is_float_leaf(p) for p in leaves]
    jc = jvp_callee(spec, active, reverse=True)
    n_out = count_leaves(spec.out_skel)
    mask = [False] * len(spec.params) + [True] * (len(jc.params) - len(spec.params))
    sp = split(jc, mask)
    flat = pipeline.result_leaves(sp.fwd, emit(sp.fwd).fn(*leaves))
    n_primal_out = len(flat) - sp.n_res
    outs, res = flat[:n_primal_out], flat[n_primal_out:]
    primal_out = pipeline.build_value(spec.out_skel, outs)
    out_skel = spec.out_skel
    if has_aux:
        from s2sad.transforms.values import STup
        if not (isinstance(out_skel, STup) and len(out_skel.items) == 2):
            raise TypeError("has_aux=True requires the function to return a pair (out, aux)")
        ct_skel = out_skel.items[0]
        n_main = count_leaves(ct_skel)
    else:
        ct_skel = out_skel
        n_main = n_out
    pb = Pullback(sp.bwd, res, out_skel, ct_skel, skels, active, leaves, f"{spec.name}_vjp")
    # cotangents are passed for the outputs that carry a tangent
    pb.out_active = list(jc.active_out[:n_main])
    if has_aux:
        return primal_out[0], pb, primal_out[1]
    return primal_out, pb


class LinearFn:
    """The linear map returned by `linearize`: the tangent part of the JVP, with the primal
    computation done once."""

    def __init__(self, lin, residuals, in_skels, active, out_skel, active_out, outs):
        self.lin = lin
        self.residuals = residuals
        self.in_skels = in_skels
        self.active = active
        self.out_skel = out_skel
        self.active_out = active_out
        self.outs = outs

    def __call__(self, *tangents):
        if len(tangents) != len(self.in_skels):
            raise TypeError(f"the linearized function takes {len(self.in_skels)} tangents")
        tl = []
        for t, s in zip(tangents, self.in_skels):
            pipeline.leaves_of(t, s, tl)
        fn = emit(self.lin).fn
        flat = pipeline.result_leaves(self.lin, fn(*self.residuals, *[t for t, a in zip(tl, self.active) if a]))
        it = iter(flat)
        leaves = [next(it) if a else helpers.zero_tangent(np.asarray(o) if np.ndim(o) else float(o))
                  for o, a in zip(self.outs, self.active_out)]
        return pipeline.build_value(self.out_skel, leaves)


def linearize(fun, *primals):
    """``(primals_out, jvp_fn)``: the primal computed once, ``jvp_fn(*tangents)`` reuses it."""
    from s2sad.transforms.jvp import jvp_callee
    from s2sad.transforms.vjp import split
    skels = [pipeline.skeleton_of(p) for p in primals]
    spec = pipeline.primal_callee(fun, skels)
    leaves = []
    for p, sk in zip(primals, skels):
        pipeline.leaves_of(p, sk, leaves)
    active = [_is_float_leaf(p) for p in leaves]
    jc = jvp_callee(spec, active)
    mask = [False] * len(spec.params) + [True] * (len(jc.params) - len(spec.params))
    sp = split(jc, mask)
    flat = pipeline.result_leaves(sp.fwd, emit(sp.fwd).fn(*leaves))
    n_primal_out = len(flat) - sp.n_res
    outs, res = flat[:n_primal_out], flat[n_primal_out:]
    return (pipeline.build_value(spec.out_skel, outs),
            LinearFn(sp.lin, res, skels, active, spec.out_skel, jc.active_out, outs))


def jacrev(fun, argnums=0, has_aux=False, holomorphic=False):
    """The Jacobian by reverse mode: one forward sweep, one backward sweep per output
    element; output shape ``out.shape + in.shape``, pytrees on both sides."""
    options = {"argnums": argnums, "has_aux": has_aux, "holomorphic": holomorphic}

    def build(t, skels):
        spec = pipeline.primal_callee(fun, skels)
        return pipeline.jacrev_callee(spec, argnums, has_aux, holomorphic=holomorphic)
    return Transformed("jacrev", fun, options, build)


def hessian(fun, argnums=0, holomorphic=False):
    """``jacfwd(jacrev(fun))``."""
    return jacfwd(jacrev(fun, argnums, holomorphic=holomorphic), argnums, holomorphic=holomorphic)


def _not_yet(name, issue):
    def fn(*args, **kwargs):
        raise NotImplementedError(f"ad.{name} is not implemented yet ({issue})")
    fn.__name__ = name
    return fn


def _axes_per_arg(in_axes, nargs):
    if isinstance(in_axes, (int, type(None))) and not isinstance(in_axes, bool):
        return [in_axes] * nargs
    if isinstance(in_axes, list):
        in_axes = tuple(in_axes)
    if not isinstance(in_axes, tuple):
        raise TypeError(f"vmap in_axes must be an int, None, or a tuple of entries corresponding "
                        f"to the positional arguments passed to the function, but got {in_axes!r}.")
    if len(in_axes) != nargs:
        raise ValueError(f"vmap in_axes specification must be a tree prefix of the corresponding "
                         f"value, got specification {in_axes!r} for value tree of {nargs} "
                         f"positional arguments.")
    return list(in_axes)


def _arg_names(fun, n):
    """Names of the first `n` positional parameters of `fun` (None where unknown)."""
    import inspect
    try:
        params = [p.name for p in inspect.signature(getattr(fun, "fun", fun)).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        params = []
    return (params + [None] * n)[:n]


def _leaf_axes(in_axes, args, skels, fun=None):
    """The batch axis of every leaf of `args` (None: unbatched), checked."""
    per_arg = _axes_per_arg(in_axes, len(args))
    axes, where = [], []
    for i, (a, s, ax) in enumerate(zip(args, skels, per_arg)):
        leaves = pipeline.leaves_of(a, s)
        sub = []
        pipeline.axes_of_prefix(s, ax, sub, f"argument {i}")   # ax: a tree prefix of the argument
        for j, (leaf, lax) in enumerate(zip(leaves, sub)):
            if lax is not None:
                nd = np.ndim(leaf)
                if not -nd <= lax < nd:
                    raise ValueError(f"vmap was requested to map its argument along axis {lax}, "
                                     f"which implies that its rank should be at least {lax + 1 if lax >= 0 else -lax}, "
                                     f"but is only {nd} (its shape is {np.shape(leaf)})")
                lax = lax % nd
            axes.append(lax)
            where.append((i, j, leaf))
    sizes = {}
    for (i, j, leaf), lax in zip(where, axes):
        if lax is not None:
            sizes.setdefault(np.shape(leaf)[lax], []).append((i, j, lax))
    if not sizes:
        raise ValueError("vmap must have at least one non-None value in in_axes")
    if len(sizes) > 1:
        parts = []
        names = _arg_names(fun, len(args)) if fun is not None else [None] * len(args)
        for size, uses in sorted(sizes.items()):
            for i, j, lax in uses:
                parts.append(f"argument {i}" + (f" ({names[i]})" if names[i] else "")
                             + (f" leaf {j}" if len(pipeline.leaves_of(args[i], skels[i])) > 1 else "")
                             + f" has size {size} along axis {lax}")
        raise ValueError("vmap got inconsistent sizes for array axes to be mapped:\n  " + "\n  ".join(parts))
    return axes


class Batched(Transformed):
    """``vmap(fun)``: specialized per argument layout and batch axes."""

    def __call__(self, *args, **kwargs):
        if kwargs:
            raise TypeError(f"{self.__name__} does not take keyword arguments; pass them "
                            f"positionally or with functools.partial")
        skels = tuple(pipeline.skeleton_of(a) for a in args)
        self._axes = tuple(_leaf_axes(self.options["in_axes"], args, skels, self.fun))
        return super().__call__(*args)

    def specialize(self, skels):
        axes = getattr(self, "_axes", None)
        if axes is None or len(axes) != sum(count_leaves(s) for s in skels):
            axes = tuple(pipeline.vmap_leaf_axes(skels, self.options["in_axes"]))
        key = (tuple(skels), axes)
        hit = self._specs.get(key)
        if hit is not None and pipeline.deps_valid(hit[1]):
            callee = hit[0]
        else:
            spec = pipeline.primal_callee(self.fun, skels)
            callee = pipeline.vmap_callee(spec, axes, self.options["out_axes"])
            self._specs[key] = (callee, pipeline.deps_of(callee))
        self._last = callee
        return callee


class _BatchedLinear:
    """``vmap`` of the function `vjp` or `linearize` returned: its generated linear code
    batched over the cotangents (tangents), the saved residuals unbatched."""

    def __init__(self, fn, in_axes, out_axes):
        self.fn = fn
        self.in_axes = in_axes
        self.out_axes = out_axes
        self.__name__ = f"vmap({getattr(fn, '__name__', 'f')})"

    def _parts(self):
        fn = self.fn
        if isinstance(fn, Pullback):
            return fn.bwd, fn.residuals, [fn.ct_skel], fn.out_active, fn.primals, fn.active, fn.in_skels
        return fn.lin, fn.residuals, list(fn.in_skels), fn.active, fn.outs, fn.active_out, [fn.out_skel]

    def callee(self, axes):
        code, residuals = self._parts()[:2]
        return pipeline.vmap_callee(code, [None] * len(residuals) + list(axes), self.out_axes)

    def __call__(self, *args):
        code, residuals, in_skels, in_active, out_like, out_active, out_skels = self._parts()
        if len(args) != len(in_skels):
            raise TypeError(f"{self.__name__} takes {len(in_skels)} arguments, got {len(args)}")
        skels = tuple(pipeline.skeleton_of(a) for a in args)
        for a, s, want in zip(args, skels, in_skels):
            if s != want and not isinstance(want, SLeaf):
                raise TypeError("the arguments of the batched linear function must have the "
                                "structure of the original function's")
        axes = _leaf_axes(self.in_axes, args, skels)
        leaves = []
        for a, s in zip(args, in_skels):
            pipeline.leaves_of(a, s, leaves)
        used = [(x, ax) for x, ax, act in zip(leaves, axes, in_active) if act]
        size = next(np.shape(x)[ax] for x, ax in zip(leaves, axes) if ax is not None)
        if not any(ax is not None for _, ax in used):
            # the batched arguments reach no output
            flat = []
            callee = None
        else:
            callee = self.callee([ax for _, ax in used])
            flat = pipeline.result_leaves(callee, emit(callee).fn(*residuals, *[x for x, _ in used]))
        it = iter(flat)
        out = []
        for o, act in zip(out_like, out_active):
            if act and callee is not None:
                out.append(next(it))
                continue
            z = helpers.zero_tangent(np.asarray(o) if np.ndim(o) else float(o))
            z = np.zeros(np.shape(z) + (size,), dtype=np.result_type(z))
            out.append(z if self.out_axes is None or self.out_axes == -1 else np.moveaxis(z, -1, self.out_axes))
        pos = [0]
        values = tuple(pipeline.build_value(s, out, pos) for s in out_skels)
        return values if isinstance(self.fn, Pullback) else values[0]


def _vmap_linear(fn, in_axes, out_axes):
    return _BatchedLinear(fn, in_axes, out_axes)


def vmap(fun, in_axes=0, out_axes=0):
    """Vectorise ``fun`` over a batch axis of its arguments (``in_axes``: an int, None, or
    one entry per positional argument) and put the batch axis of its outputs at
    ``out_axes``. Done by an AST pass: ``ad.source(ad.vmap(f), *args)`` shows it."""
    if not callable(fun):
        raise TypeError(f"vmap expects a callable, got {type(fun).__name__}")
    if out_axes is not None and (not isinstance(out_axes, int) or isinstance(out_axes, bool)):
        raise TypeError(f"vmap out_axes must be an int or None, got {out_axes!r}")
    if isinstance(fun, (Pullback, LinearFn)):
        return _vmap_linear(fun, in_axes, out_axes)
    options = {"in_axes": in_axes, "out_axes": out_axes}
    return Batched("vmap", fun, options, None)
jit = _not_yet("jit", "Numba compilation")


def checkpoint(fun=None, *, policy=None):
    """``ad.checkpoint(fun)`` (also ``@ad.checkpoint``): `fun` unchanged, except that in
    reverse mode each call saves only its inputs; the backward sweep recomputes the
    intermediates from them (less memory, one more forward pass of `fun`)."""
    from s2sad.runtime.custom import Checkpointed
    if fun is None:
        return lambda f: Checkpointed(f, policy)
    if not callable(fun):
        raise TypeError(f"ad.checkpoint needs a function, got {type(fun).__name__}")
    return Checkpointed(fun, policy)

__all__ = ["jvp", "jacfwd", "grad", "value_and_grad", "vjp", "linearize", "jacrev", "hessian",
           "stop_gradient", "source", "TransformError"]

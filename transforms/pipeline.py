"""The pipeline: capture -> normalize -> specialize -> (jvp | ...) -> emit, written once.

Everything a transform produces is a *callee*: a flat IR function with a namespace
(`specialize.Spec` for user code, `jvp.Derived` for derivatives, drivers such as
``f_jacfwd`` for Jacobians). Callees compose: the JVP of a callee is a callee, a driver
calls callees, and a callee can be emitted, called, or transformed again.

Drivers (the loops that build Jacobians out of JVPs) are generated as Python source
over the flat arguments and specialized like user code, so they are readable in
``ad.source`` and differentiable like everything else.
"""

from __future__ import annotations

import inspect
import linecache
import types

import numpy as np

from s2sad.errors import TransformError
from s2sad.transforms import ops
from s2sad.transforms.values import (
    SConst, SDict, SLeaf, STup, Const, Dyn, PartialV, Tup, TransformV, count_leaves, flatten,
    is_namedtuple_class, leaf_paths, static_key)

# ------------------------------------------------------------ values <-> layouts


def skeleton_of(value):
    """Layout of a Python argument: containers are structure, numbers/arrays are leaves,
    anything else (functions, strings) is static."""
    if isinstance(value, tuple) and is_namedtuple_class(type(value)):
        return STup(type(value), tuple(skeleton_of(v) for v in value))
    if type(value) in (tuple, list):
        return STup(type(value), tuple(skeleton_of(v) for v in value))
    if type(value) is dict:
        keys = tuple(sorted(value, key=lambda k: (type(k).__name__, k)))
        return SDict(keys, tuple(skeleton_of(value[k]) for k in keys))
    if value is None:
        return SConst(static_key(None), None)
    if isinstance(value, (np.ndarray, np.generic, int, float, complex, bool)):
        return SLeaf()
    return SConst(static_key(value), value, getattr(value, "__name__", "c"))


def leaves_of(value, skel, out=None):
    if out is None:
        out = []
    if isinstance(skel, SLeaf):
        out.append(value)
    elif isinstance(skel, STup):
        for v, s in zip(value, skel.items):
            leaves_of(v, s, out)
    elif isinstance(skel, SDict):
        for k, s in zip(skel.keys, skel.items):
            leaves_of(value[k], s, out)
    return out


def build_value(skel, leaves, pos=None):
    """Python value from a layout and runtime leaves (outputs of generated code)."""
    if pos is None:
        pos = [0]
    if isinstance(skel, SLeaf):
        v = leaves[pos[0]]
        pos[0] += 1
        if type(v) is np.ndarray and not v.flags.writeable:
            v = v.copy()  # a broadcast view (a cotangent of a sum) becomes an array of its own
        return v
    if isinstance(skel, SConst):
        return skel.value
    if isinstance(skel, STup):
        items = [build_value(s, leaves, pos) for s in skel.items]
        if is_namedtuple_class(skel.kind):
            return skel.kind(*items)
        return skel.kind(items)
    if isinstance(skel, SDict):
        return {k: build_value(s, leaves, pos) for k, s in zip(skel.keys, skel.items)}
    raise TypeError(f"cannot build a value of layout {skel!r}")


def result_leaves(callee, result):
    """The flat leaves returned by a compiled callee."""
    n = count_leaves(callee.out_skel)
    if n == 1 and isinstance(callee.out_skel, SLeaf):
        return [result]
    if n == 0:
        return []
    return list(result)


# ------------------------------------------------------------- synthetic code

_SYNTH: dict = {}


def make_function(name, params, body, glb, tag=""):
    """Compile generated Python source into a function (registered in linecache)."""
    src = f"def {name}({', '.join(params)}):\n" + "".join(f"    {line}\n" for line in body)
    filename = f"<s2sad {tag or name} {len(_SYNTH)}>"
    linecache.cache[filename] = (len(src), None, src.splitlines(True), filename)
    g = dict(glb)
    g.setdefault("np", np)
    g["__builtins__"] = __builtins__
    exec(compile(src, filename, "exec"), g)
    fn = g[name]
    _SYNTH[filename] = fn
    return fn


def _param_names(fun, n):
    try:
        sig = inspect.signature(fun)
        names = [p.name for p in sig.parameters.values()
                 if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        if len(names) >= n and all(nm.isidentifier() for nm in names[:n]):
            return names[:n]
    except (TypeError, ValueError):
        pass
    return [f"x{i}" for i in range(n)] if n > 1 else ["x"]


def _fun_name(fun):
    for f in (fun, getattr(fun, "func", None), getattr(fun, "fun", None)):
        name = getattr(f, "__name__", None)
        if name and name.isidentifier():
            return name
    return "f"


def wrapper_for(fun, nargs):
    """A plain Python function that calls `fun` with `nargs` positional arguments."""
    key = (id(fun), nargs)
    hit = _SYNTH.get(key)
    if hit is not None and hit[0] is fun:
        return hit[1]
    from s2sad.runtime import registry
    registry._load_rules()
    prim = registry.lookup_object(fun)
    if prim is not None:
        params = list(prim.params[:nargs])
        name = prim.name.split(".")[-1]
    else:
        params = _param_names(fun, nargs)
        name = _fun_name(fun)
    fn = make_function(name, params, [f"return __fun__({', '.join(params)})"], {"__fun__": fun},
                       tag=f"wrapper {name}")
    _SYNTH[key] = (fun, fn)
    return fn


def is_user_function(fun):
    from s2sad.transforms.specialize import _is_library_function
    return isinstance(fun, types.FunctionType) and not _is_library_function(fun)


def primal_callee(fun, skels):
    """The flat IR of `fun` specialized to argument layouts `skels`."""
    from s2sad.transforms.specialize import specialize_top
    if getattr(fun, "__s2sad_transform__", False):
        return fun.specialize(tuple(skels))
    if isinstance(fun, ops.Callee):
        return fun
    if is_user_function(fun) or hasattr(fun, "__s2sad__"):
        return specialize_top(fun, tuple(skels))
    if not callable(fun):
        raise TypeError(f"expected a callable, got {type(fun).__name__}")
    return specialize_top(wrapper_for(fun, len(skels)), tuple(skels))


# --------------------------------------------------------------------- drivers

def _arg_leaf_ranges(arg_skels):
    out, pos = [], 0
    for s in arg_skels:
        n = count_leaves(s)
        out.append((pos, pos + n))
        pos += n
    return out


def _normalize_argnums(argnums, nargs):
    if isinstance(argnums, int):
        nums = (argnums,)
    else:
        nums = tuple(argnums)
    for a in nums:
        if not isinstance(a, int) or not -nargs <= a < nargs:
            raise TypeError(f"argnums {argnums!r} out of range for a function of {nargs} "
                            f"positional arguments")
    return tuple(a % nargs for a in nums)


class _Expr:
    """Writes the Python expression that rebuilds a layout from leaf expressions."""

    def __init__(self, glb):
        self.glb = glb

    def const(self, value):
        if value is None or isinstance(value, (bool, int, float, str)):
            return repr(value)
        name = f"__c{len(self.glb)}__"
        self.glb[name] = value
        return name

    def build(self, skel, leaf_exprs, pos=None):
        if pos is None:
            pos = [0]
        if isinstance(skel, SLeaf):
            e = leaf_exprs[pos[0]]
            pos[0] += 1
            return e
        if isinstance(skel, SConst):
            return self.const(skel.value)
        if isinstance(skel, STup):
            items = [self.build(s, leaf_exprs, pos) for s in skel.items]
            if is_namedtuple_class(skel.kind):
                return f"{self.const(skel.kind)}({', '.join(items)})"
            if skel.kind is list:
                return f"[{', '.join(items)}]"
            return f"({', '.join(items)}{',' if len(items) == 1 else ''})"
        if isinstance(skel, SDict):
            items = [self.build(s, leaf_exprs, pos) for s in skel.items]
            return "{" + ", ".join(f"{k!r}: {v}" for k, v in zip(skel.keys, items)) + "}"
        raise TypeError(f"cannot write layout {skel!r}")


def _flat_params(spec):
    from s2sad.transforms.specialize import _leaf_kinds
    kinds = []
    for s in spec.arg_skels:
        kinds.extend(_leaf_kinds(s))
    kinds.extend([False] * (len(spec.params) - len(kinds)))
    return [SLeaf(list=k) for k in kinds]


_DRIVERS: dict = {}


def clear_caches():
    """Forget every specialization, derivative and driver (benchmarks of transform time;
    transformed functions made before keep theirs)."""
    from s2sad.transforms import capture, jvp, specialize, vjp
    for cache in (specialize._SPECS, specialize._NORMALIZED, jvp._JVPS, vjp._SPLITS, vjp._GRADS,
                  _DRIVERS, capture._AST_CACHE):
        cache.clear()


def cached_driver(kind, spec, options, build):
    """Drivers are cached by the callee they drive and their options."""
    key = (kind, id(spec), options)
    hit = _DRIVERS.get(key)
    if hit is not None and hit[0] is spec:
        return hit[1]
    driver = build()
    _DRIVERS[key] = (spec, driver)
    return driver


def deps_of(callee, seen=None):
    """Every (mapping, name, object) that generated code behind `callee` relied on."""
    if seen is None:
        seen = set()
    if id(callee) in seen:
        return []
    seen.add(id(callee))
    out = list(getattr(callee, "deps", ()))
    base = getattr(callee, "base", None)
    if base is not None:
        out.extend(deps_of(base, seen))
    for obj in callee.namespace.values():
        if isinstance(obj, ops.Callee):
            out.extend(deps_of(obj, seen))
    return out


def deps_valid(deps) -> bool:
    global deps_valid
    from s2sad.transforms.specialize import deps_valid as valid
    deps_valid = valid  # bound on first use (specialize imports this module)
    return valid(deps)




def jacfwd_callee(spec, argnums=0, has_aux=False, name=None, holomorphic=False):
    """Driver: the Jacobian of `spec` w.r.t. `argnums`, one JVP per input basis vector.
    With `holomorphic`, the outputs must be complex (JAX's check)."""
    key = (argnums if isinstance(argnums, int) else tuple(argnums), has_aux, name, holomorphic)
    return cached_driver("jacfwd", spec, key,
                         lambda: _jacfwd_callee(spec, argnums, has_aux, name, holomorphic))


def leaf_exprs(skel, base):
    """Python expressions reading each leaf of a value of layout `skel` named `base`."""
    if isinstance(skel, SLeaf):
        return [base]
    if isinstance(skel, STup):
        return [e for i, s in enumerate(skel.items) for e in leaf_exprs(s, f"{base}[{i}]")]
    if isinstance(skel, SDict):
        return [e for k, s in zip(skel.keys, skel.items) for e in leaf_exprs(s, f"{base}[{k!r}]")]
    return []


def _jacfwd_callee(spec, argnums, has_aux, name, holomorphic=False):
    from s2sad.transforms.jvp import jvp_callee
    from s2sad.transforms.naming import Namer
    from s2sad.transforms.specialize import specialize_top
    nargs = len(spec.arg_skels)
    nums = _normalize_argnums(argnums, nargs)
    ranges = _arg_leaf_ranges(spec.arg_skels)
    params = list(spec.params)
    namer = Namer(params + ["out", "j", "np", "basis", "jac_stack", "zeros_jac"])
    out_skel = spec.out_skel
    if has_aux:
        if not (isinstance(out_skel, STup) and len(out_skel.items) == 2):
            raise TypeError("has_aux=True requires the function to return a pair (out, aux)")
        main_skel, aux_skel = out_skel.items
        main_base = "out[0]"
    else:
        main_skel, aux_skel = out_skel, None
        main_base = "out"
    outs = leaf_exprs(main_skel, main_base)
    n_main = len(outs)
    glb = {"__f__": spec}
    ex = _Expr(glb)
    base = name or spec.name
    body = [f"out = __f__({', '.join(params)})"]
    if holomorphic:
        from s2sad.runtime import helpers
        glb["check_output_dtype"] = helpers.check_output_dtype
        body.extend(f"check_output_dtype({o}, True, 'jacfwd')" for o in outs)
    from s2sad.runtime import helpers
    glb["basis"] = helpers.basis
    glb["jac_stack"] = helpers.jac_stack
    glb["zeros_jac"] = helpers.zeros_jac
    jac = [dict() for _ in range(n_main)]   # jac[o][k]: d out_o / d leaf k
    for a in nums:
        lo, hi = ranges[a]
        for k in range(lo, hi):
            mask = [False] * len(params)
            mask[k] = True
            jc = jvp_callee(spec, mask)
            glb[jc.name] = jc
            x = params[k]
            direction = namer.fresh(f"{x}_dot")
            tangent = namer.fresh("out_dot")
            t_main = f"{tangent}[0]" if has_aux else tangent
            flags = iter(jc.active_out)
            tangent_exprs = []
            for e in leaf_exprs(main_skel, t_main):
                tangent_exprs.append(e if next(flags) else None)
            cols = [namer.fresh(f"cols_{x}" if n_main == 1 else f"cols_{x}_{o}") for o in range(n_main)]
            for o in range(n_main):
                if tangent_exprs[o] is not None:
                    body.append(f"{cols[o]} = []")
            body.append(f"for j in range(np.size({x})):")
            body.append(f"    {direction} = basis({x}, j)")
            body.append(f"    _, {tangent} = {jc.name}({', '.join(params)}, {direction})")
            for o in range(n_main):
                if tangent_exprs[o] is not None:
                    body.append(f"    {cols[o]}.append({tangent_exprs[o]})")
            for o in range(n_main):
                if tangent_exprs[o] is not None:
                    jac[o][k] = f"jac_stack({cols[o]}, {outs[o]}, {x})"
                else:
                    jac[o][k] = f"zeros_jac({outs[o]}, {x})"
    # Jacobian layout: the output layout with each leaf replaced by the argnums layout.
    in_skel = spec.arg_skels[nums[0]] if isinstance(argnums, int) else \
        STup(tuple, tuple(spec.arg_skels[a] for a in nums))
    leaf_index = []
    for a in nums:
        lo, hi = ranges[a]
        leaf_index.extend(range(lo, hi))
    per_out = [ex.build(in_skel, [jac[o][k] for k in leaf_index]) for o in range(n_main)]
    result = ex.build(main_skel, per_out)
    if has_aux:
        result = f"({result}, out[1])"
    body.append(f"return {result}")
    fn = make_function(f"{base}_jacfwd", params, body, glb, tag="jacfwd")
    return specialize_top(fn, tuple(_flat_params(spec)))


def jacrev_callee(spec, argnums=0, has_aux=False, name=None, holomorphic=None):
    """Driver: the Jacobian of `spec` by reverse mode -- one forward sweep, one backward
    sweep per output element. `holomorphic` (True/False) checks the outputs' dtype as JAX
    does; None skips the check (internal uses)."""
    key = (argnums if isinstance(argnums, int) else tuple(argnums), has_aux, name, holomorphic)
    return cached_driver("jacrev", spec, key,
                         lambda: _jacrev_callee(spec, argnums, has_aux, name, holomorphic))


def _jacrev_callee(spec, argnums, has_aux, name, holomorphic=None):
    from s2sad.transforms.jvp import jvp_callee
    from s2sad.transforms.naming import Namer
    from s2sad.transforms.specialize import specialize_top
    from s2sad.transforms.vjp import split, tangent_positions
    from s2sad.runtime import helpers
    nargs = len(spec.arg_skels)
    nums = _normalize_argnums(argnums, nargs)
    ranges = _arg_leaf_ranges(spec.arg_skels)
    params = list(spec.params)
    active = [False] * len(params)
    for a in nums:
        lo, hi = ranges[a]
        for k in range(lo, hi):
            active[k] = True
    in_leaves = [k for k in range(len(params)) if active[k]]
    jc = jvp_callee(spec, active, reverse=True)
    mask = [False] * len(params) + [True] * (len(jc.params) - len(params))
    sp = split(jc, mask)
    n_primal = count_leaves(spec.out_skel)
    positions = tangent_positions(jc, n_primal)
    out_mask = sp.out_mask
    fwd_outs = [i for i, m in enumerate(out_mask) if not m]    # jc output positions fwd returns
    lin_outs = [i for i, m in enumerate(out_mask) if m]        # positions bwd takes cotangents for
    if has_aux:
        if not (isinstance(spec.out_skel, STup) and len(spec.out_skel.items) == 2):
            raise TypeError("has_aux=True requires the function to return a pair (out, aux)")
        main_skel = spec.out_skel.items[0]
    else:
        main_skel = spec.out_skel
    n_main = count_leaves(main_skel)
    namer = Namer(params + ["np", "j", "basis", "jac_rows", "zeros_jac", "zero_tangent"])
    glb = {"basis": helpers.basis, "jac_rows": helpers.jac_rows, "zeros_jac": helpers.zeros_jac,
           "zero_tangent": helpers.zero_tangent, sp.fwd.name: sp.fwd, sp.bwd.name: sp.bwd}
    ex = _Expr(glb)
    outs = {i: namer.fresh(f"out_{i}" if n_primal > 1 else "out") for i in range(n_primal)}
    res = [namer.fresh(f"res{i}") for i in range(sp.n_res)]
    fwd_targets = []
    for i in fwd_outs:
        fwd_targets.append(outs[i] if i < n_primal else namer.fresh("const_dot"))
    body = [f"{', '.join(fwd_targets + res)}, = {sp.fwd.name}({', '.join(params)})"]
    if holomorphic is not None:
        glb["check_output_dtype"] = helpers.check_output_dtype
        for o in range(n_main):
            body.append(f"check_output_dtype({outs[o]}, {bool(holomorphic)}, 'jacrev')")
    grads = [namer.fresh(f"{params[k]}_bar") for k in in_leaves]
    jac = [dict() for _ in range(n_main)]
    for o in range(n_main):
        pos = [i for i in lin_outs if positions[i] == o]
        if not pos:
            for k in in_leaves:
                jac[o][k] = f"zeros_jac({outs[o]}, {params[k]})"
            continue
        rows = {k: namer.fresh(f"rows_{params[k]}" if n_main == 1 else f"rows_{o}_{params[k]}")
                for k in in_leaves}
        for k in in_leaves:
            body.append(f"{rows[k]} = []")
        ct = namer.fresh(f"{outs[o]}_bar")
        cts = []
        for i in lin_outs:
            if positions[i] == o:
                cts.append(ct)
            else:
                cts.append(f"zero_tangent({outs[positions[i]]})")
        body.append(f"for j in range(np.size({outs[o]})):")
        body.append(f"    {ct} = basis({outs[o]}, j)")
        body.append(f"    {', '.join(grads)}, = {sp.bwd.name}({', '.join(res + cts)})")
        for k, g in zip(in_leaves, grads):
            body.append(f"    {rows[k]}.append({g})")
        for k in in_leaves:
            jac[o][k] = f"jac_rows({rows[k]}, {outs[o]}, {params[k]})"
    in_skel = spec.arg_skels[nums[0]] if isinstance(argnums, int) else \
        STup(tuple, tuple(spec.arg_skels[a] for a in nums))
    per_out = [ex.build(in_skel, [jac[o][k] for k in in_leaves]) for o in range(n_main)]
    result = ex.build(main_skel, per_out)
    if has_aux:
        aux_skel = spec.out_skel.items[1]
        result = f"({result}, {ex.build(aux_skel, [outs[i] for i in range(n_main, n_primal)])})"
    body.append(f"return {result}")
    fn = make_function(f"{name or spec.name}_jacrev", params, body, glb, tag="jacrev")
    return specialize_top(fn, tuple(_flat_params(spec)))


# ---------------------------------------------- transforms met inside functions

def _api():
    from s2sad import api
    return api


def is_transform(obj) -> bool:
    api = _api()
    return obj in (api.grad, api.value_and_grad, api.jacfwd, api.jacrev, api.hessian, api.jvp,
                   api.vjp, api.linearize, api.vmap, api.jit, api.checkpoint)


def transform_value(b, obj, args, kwargs, out=None):
    """``ad.jacfwd(g, argnums=1)`` inside a function -> a transform value (or, for
    ``ad.jvp(g, primals, tangents)``, the call itself)."""
    api = _api()
    if obj is api.jvp:
        return _jvp_inside(b, args, kwargs, out)
    if obj is api.vjp:
        return _vjp_inside(b, args, kwargs, out)
    if not args:
        raise b.error(f"{obj.__name__} needs a function")
    options = {}
    names = {api.grad: ("argnums", "has_aux", "holomorphic"),
             api.value_and_grad: ("argnums", "has_aux", "holomorphic"),
             api.jacfwd: ("argnums", "has_aux", "holomorphic"),
             api.jacrev: ("argnums", "has_aux", "holomorphic"),
             api.hessian: ("argnums", "holomorphic"),
             api.vmap: ("in_axes", "out_axes")}.get(obj, ())
    for n, v in zip(names, args[1:]):
        options[n] = v
    options.update(kwargs)
    opts = []
    for k, v in sorted(options.items()):
        if isinstance(v, Const):
            opts.append((k, v.value))
        elif isinstance(v, Tup) and all(isinstance(i, Const) for i in v.items):
            opts.append((k, tuple(i.value for i in v.items)))
        else:
            raise b.error(f"the option {k!r} of {obj.__name__} must be known at transform time")
    return TransformV(obj.__name__, args[0], tuple(opts))


def _spec_for(b, fun_av, args, kwargs, out):
    from s2sad.transforms.specialize import specialize_call
    if isinstance(fun_av, Const) and getattr(fun_av.value, "__s2sad_transform__", False):
        skels, leaves = [], []
        for a in args:
            s, _ = flatten(b.as_leaves(a), leaves)
            skels.append(s)
        return fun_av.value.specialize(tuple(skels)), leaves
    if isinstance(fun_av, Const) and not (is_user_function(fun_av.value)
                                          or hasattr(fun_av.value, "fun")):
        fun_av = Const(wrapper_for(fun_av.value, len(args)))
    return specialize_call(b, fun_av, args, kwargs, out)


def call_transform(b, tv, args, kwargs, target, out):
    """``ad.grad(g)(x)`` met inside a function: specialize g to the call, transform it,
    and call the generated function."""
    if kwargs:
        raise b.error(f"keyword arguments to a function returned by {tv.kind} are not supported")
    spec, leaves = _spec_for(b, tv.func, args, {}, out)
    opts = dict(tv.options)
    argnums = opts.get("argnums", 0)
    has_aux = opts.get("has_aux", False)
    holo = opts.get("holomorphic", False)
    try:
        if tv.kind == "jacfwd":
            callee = jacfwd_callee(spec, argnums, has_aux)
        elif tv.kind == "jacrev":
            callee = jacrev_callee(spec, argnums, has_aux)
        elif tv.kind == "hessian":
            callee = jacfwd_callee(jacrev_callee(spec, argnums), argnums)
        elif tv.kind in ("grad", "value_and_grad"):
            callee = grad_of_spec(spec, argnums, has_aux, holo, tv.kind == "value_and_grad")
        elif tv.kind == "checkpoint":
            from s2sad.transforms.checkpoint import checkpoint_callee
            callee = checkpoint_callee(spec)
        elif tv.kind == "vmap":
            callee = vmap_callee(spec, vmap_leaf_axes(spec.arg_skels, opts.get("in_axes", 0)),
                                 opts.get("out_axes", 0))
        else:
            raise b.error(f"{tv.kind} inside a differentiated function is not supported yet")
    except TypeError as e:
        raise b.error(str(e))
    return b.emit_call(callee, leaves, target, out, False)


def active_mask(spec, nums):
    """Which flat parameters belong to the differentiated arguments."""
    mask = []
    for i, skel in enumerate(spec.arg_skels):
        mask.extend([i in nums] * count_leaves(skel))
    mask.extend([False] * (len(spec.params) - len(mask)))
    return mask


def grad_of_spec(spec, argnums=0, has_aux=False, holomorphic=False, with_value=False):
    """The fused gradient function of a specialized callee (cached)."""
    key = (argnums if isinstance(argnums, int) else tuple(argnums), has_aux, holomorphic, with_value)
    return cached_driver("grad", spec, key,
                         lambda: _grad_of_spec(spec, argnums, has_aux, holomorphic, with_value))


def _grad_of_spec(spec, argnums, has_aux, holomorphic, with_value):
    from s2sad.transforms import ir
    from s2sad.transforms.vjp import grad_callee
    nums = _normalize_argnums(argnums, len(spec.arg_skels))
    out_skel = spec.out_skel
    if has_aux:
        if not (isinstance(out_skel, STup) and len(out_skel.items) == 2):
            raise TypeError("has_aux=True requires the function to return a pair (out, aux)")
        main, aux = out_skel.items
    else:
        main, aux = out_skel, None
    if not isinstance(main, SLeaf):
        raise TypeError(f"Gradient only defined for scalar-output functions. Output was a "
                        f"{_describe_layout(main)}.")
    n_aux = count_leaves(aux) if aux is not None else 0
    grad_skel = spec.arg_skels[nums[0]] if isinstance(argnums, int) else \
        STup(tuple, tuple(spec.arg_skels[a] for a in nums))

    def seeds(primal_outs):
        return [ir.call(ir.name("ones_like_output"), [ir.clone(primal_outs[0])])] + [None] * n_aux

    def result(primal_outs, grads):
        check = ir.expr_stmt(ir.call(ir.name("check_grad_output"),
                                     [ir.clone(primal_outs[0]), ir.const(bool(holomorphic))]))
        if grads is None:
            return [check], None, None
        leaves = list(grads)
        layout = grad_skel
        if with_value and has_aux:
            leaves = [primal_outs[0]] + list(primal_outs[1:]) + list(grads)
            layout = STup(tuple, (STup(tuple, (SLeaf(), aux)), grad_skel))
        elif with_value:
            leaves = [primal_outs[0]] + leaves
            layout = STup(tuple, (SLeaf(), grad_skel))
        elif has_aux:
            leaves = list(grads) + list(primal_outs[1:])
            layout = STup(tuple, (grad_skel, aux))
        ret = leaves[0] if (len(leaves) == 1 and isinstance(layout, SLeaf)) else ir.tuple_(leaves)
        return [check], ret, layout

    name = f"{spec.name}_{'value_and_grad' if with_value else 'grad'}"
    return grad_callee(spec, active_mask(spec, nums), seeds, result, name=name)


def _describe_layout(skel):
    if isinstance(skel, STup):
        return f"{getattr(skel.kind, '__name__', 'tuple')} of {len(skel.items)} values"
    if isinstance(skel, SDict):
        return "dict"
    return "value known at transform time"


def _jvp_inside(b, args, kwargs, out):
    """``ad.jvp(g, primals, tangents)`` inside a function."""
    from s2sad.transforms.jvp import jvp_callee
    from s2sad.transforms.values import Tup, unflatten
    if kwargs.get("has_aux"):
        raise b.error("ad.jvp(..., has_aux=True) inside a differentiated function is not supported")
    if len(args) != 3 or not isinstance(args[1], Tup) or not isinstance(args[2], Tup):
        raise b.error("ad.jvp(fun, primals, tangents) needs tuples of primals and tangents")
    # the primals are differentiated: runtime values, also when known at transform time
    # (an array captured from outside the function)
    spec, leaves = _spec_for(b, args[0], [b.as_leaves(a) for a in args[1].items], {}, out)
    n_args = sum(count_leaves(s) for s in spec.arg_skels)
    jc = jvp_callee(spec, [True] * n_args + [False] * (len(spec.params) - n_args))
    tl = []
    for t in args[2].items:
        flatten(b.as_leaves(t), tl)
    if len(tl) != n_args:
        raise b.error("ad.jvp: the tangents do not have the structure of the primals")
    res = b.emit_call(jc, leaves + tl, None, out, False)
    primal, tangent = res.items
    # outputs that do not depend on the inputs get explicit zero tangents
    p_skel, p_leaves = flatten(primal)
    if not all(jc.active_out):
        it = iter(flatten(tangent)[1])
        fixed = []
        for pl, flag in zip(p_leaves, jc.active_out):
            if flag:
                fixed.append(next(it))
            else:
                from s2sad.runtime import helpers
                fixed.append(b.prim_call(helpers.zero_tangent, [pl], {}, None, out))
        tangent = unflatten(p_skel, fixed)
    return Tup((primal, tangent))


def _vjp_inside(b, args, kwargs, out):
    """``ad.vjp(g, *primals)`` inside a function -> (outputs, pullback function value)."""
    from s2sad.transforms.jvp import jvp_callee
    from s2sad.transforms.specialize import specialize_top
    from s2sad.transforms.values import PartialV, Tup, unflatten
    from s2sad.transforms.vjp import split
    if kwargs.get("has_aux"):
        raise b.error("ad.vjp(..., has_aux=True) inside a differentiated function is not supported")
    spec, leaves = _spec_for(b, args[0], [b.as_leaves(a) for a in args[1:]], {}, out)
    n_args = sum(count_leaves(s) for s in spec.arg_skels)
    active = [True] * n_args + [False] * (len(spec.params) - n_args)
    jc = jvp_callee(spec, active, reverse=True)
    mask = [False] * len(spec.params) + [True] * (len(jc.params) - len(spec.params))
    sp = split(jc, mask)
    n_primal = len([m for m in sp.out_mask if not m])
    fwd_res = b.emit_call(sp.fwd, leaves, None, out, False)
    items = list(fwd_res.items)
    outs, res = items[:n_primal], items[n_primal:]
    primal = unflatten(spec.out_skel, outs) if n_primal == count_leaves(spec.out_skel) else \
        unflatten(spec.out_skel, outs[:count_leaves(spec.out_skel)])
    pullback = _pullback_driver(spec, sp, len(res))
    return Tup((primal, PartialV(Const(pullback, pullback.name), tuple(res), ())))


def _pullback_driver(spec, sp, n_res):
    """``pullback(*residuals, ct)``: the cotangents of the primals, as a tuple per argument."""
    from s2sad.transforms.specialize import specialize_top
    from s2sad.transforms.naming import Namer
    key = (n_res,)

    def build():
        namer = Namer(["np"])
        res = [namer.fresh(f"res{i}") for i in range(n_res)]
        n_ct = len([m for m in sp.out_mask if m])
        cts = [namer.fresh(f"ct{i}") for i in range(n_ct)]
        grads = [namer.fresh(f"g{i}") for i in range(sum(count_leaves(s) for s in spec.arg_skels))]
        glb = {sp.bwd.name: sp.bwd}
        ex = _Expr(glb)
        body = []
        if grads:
            body.append(f"{', '.join(grads)}, = {sp.bwd.name}({', '.join(res + cts)})")
        per_arg, pos = [], 0
        for s in spec.arg_skels:
            n = count_leaves(s)
            per_arg.append(ex.build(s, grads[pos:pos + n]))
            pos += n
        body.append(f"return ({', '.join(per_arg)}{',' if len(per_arg) == 1 else ''})")
        fn = make_function(f"{spec.name}_pullback", res + cts, body, glb, tag="pullback")
        return specialize_top(fn, tuple(SLeaf() for _ in res + cts))
    return cached_driver("pullback", sp.bwd, key, build)


# ----------------------------------------------------------------------- vmap

def vmap_leaf_axes(arg_skels, in_axes):
    """The batch axis of every leaf of arguments laid out as `arg_skels`, from vmap's
    `in_axes` (an int or None for all, or one entry per argument: an int, None, or a pytree
    of them shaped like the argument)."""
    if isinstance(in_axes, list):
        in_axes = tuple(in_axes)
    per_arg = in_axes if isinstance(in_axes, tuple) else (in_axes,) * len(arg_skels)
    if len(per_arg) != len(arg_skels):
        raise TypeError(f"vmap in_axes has {len(per_arg)} entries for {len(arg_skels)} arguments")
    axes = []
    for i, (skel, ax) in enumerate(zip(arg_skels, per_arg)):
        axes_of_prefix(skel, ax, axes, f"argument {i}")
    return axes


def axes_of_prefix(skel, ax, out, where="the argument"):
    """Append the batch axis of every leaf of a value laid out as `skel`, from `ax`, a tree
    prefix of it (as in JAX: an int or None stands for its whole subtree)."""
    if ax is None or (isinstance(ax, int) and not isinstance(ax, bool)):
        out.extend([ax] * count_leaves(skel))
        return
    if isinstance(skel, STup) and isinstance(ax, (tuple, list)) and len(ax) == len(skel.items):
        for k, (s, a) in enumerate(zip(skel.items, ax)):
            axes_of_prefix(s, a, out, f"{where}[{k}]")
        return
    if isinstance(skel, SDict) and isinstance(ax, dict) and set(ax) == set(skel.keys):
        for k, s in zip(skel.keys, skel.items):
            axes_of_prefix(s, ax[k], out, f"{where}[{k!r}]")
        return
    raise ValueError(f"vmap in_axes specification must be a tree prefix of the corresponding "
                     f"value: {ax!r} does not match the structure of {where}")


def vmap_callee(spec, leaf_axes, out_axes=0, name=None):
    """Driver: `spec` batched along axis ``leaf_axes[k]`` of leaf k (None: unbatched).
    The batch axes move last (where batched code keeps them, see `transforms.batch`),
    the batched callee runs, and its outputs' batch axes move to `out_axes`."""
    key = (tuple(leaf_axes), out_axes, name)
    return cached_driver("vmap", spec, key, lambda: _vmap_callee(spec, leaf_axes, out_axes, name))


def _vmap_callee(spec, leaf_axes, out_axes, name):
    from s2sad.runtime.batching import batch_size, with_batch
    from s2sad.transforms.batch import batch_callee
    from s2sad.transforms.naming import Namer
    from s2sad.transforms.specialize import specialize_top
    params = list(spec.params)
    axes = list(leaf_axes) + [None] * (len(params) - len(leaf_axes))
    mask = [a is not None for a in axes]
    bc = batch_callee(spec, mask)
    namer = Namer(params + ["out", "np", "batch_size", "with_batch"])
    glb = {"__b__": bc, "batch_size": batch_size, "with_batch": with_batch}
    body, args = [], []
    for p, a in zip(params, axes):
        if a is None or a == -1:
            args.append(p)
            continue
        moved = namer.fresh(f"{p}_b")
        body.append(f"{moved} = np.moveaxis({p}, {a}, -1)")
        args.append(moved)
    body.append(f"out = __b__({', '.join(args)})")
    outs = leaf_exprs(spec.out_skel, "out")
    first = next(a for a, m in zip(args, mask) if m)
    size = None
    results = []
    for o, flag in zip(outs, bc.batched_out):
        if not flag:
            if out_axes is None:
                results.append(o)
                continue
            if size is None:
                size = namer.fresh("B")
                body.insert(len(body) - 1, f"{size} = batch_size({first})")
            o = f"with_batch({o}, {size})"
        elif out_axes is None:
            raise ValueError("vmap has mapped output but out_axes is None")
        results.append(o if out_axes == -1 else f"np.moveaxis({o}, -1, {out_axes})")
    ex = _Expr(glb)
    body.append(f"return {ex.build(spec.out_skel, results)}")
    fn = make_function(name or f"{spec.name}_vmap", params, body, glb, tag="vmap")
    return specialize_top(fn, tuple(_flat_params(spec)))

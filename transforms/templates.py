"""Rules as templates: small Python functions whose bodies are inlined into generated code.

A rule such as

    @sin.defjvp
    def _(x, x_dot):
        return np.cos(x) * x_dot

is parsed and normalized once. `Template.inline` substitutes the call's atoms for the
parameters, gives the rule's temporaries fresh names in the target function, binds the
rule's globals (``np``, helpers) in the target namespace, and propagates symbolic zeros:
an inactive input's tangent is `Zero`, so ``x_dot * y + x * y_dot`` with ``y_dot`` zero
inlines as ``x_dot * y`` alone. A keyword the call did not pass is `DEFAULT` and is left
out of the calls it would have been passed to.
"""

from __future__ import annotations


import gast

from s2sad.errors import TransformError
from s2sad.transforms import ir
from s2sad.transforms.normalize import hint_of


class Zero:
    """A symbolic zero (tangent or cotangent) shaped like the atom `like`."""

    def __init__(self, like=None):
        self.like = like

    def __repr__(self):
        return "Zero"


class _Default:
    def __repr__(self):
        return "DEFAULT"


DEFAULT = _Default()


def is_zero(x) -> bool:
    return isinstance(x, Zero)


class Template:
    def __init__(self, fn, prim=None, unpack_results=False):
        from s2sad.transforms.capture import capture
        from s2sad.transforms.normalize import normalize
        self.fn = fn
        self.prim = prim
        # batch rules: a call of a multi-output primitive binds each result to a name (the
        # passes after vmap expect `a, b = prim(...)`); JVP and transpose rules keep the
        # call whole (a sequence rule returns it)
        self.unpack_results = unpack_results
        cap = capture(fn)
        node, _ = normalize(cap.node, cap.filename)
        a = node.args
        self.params = [p.id for p in a.posonlyargs + a.args + a.kwonlyargs]
        self.defaults = {}
        pos = a.posonlyargs + a.args
        for p, d in zip(pos[len(pos) - len(a.defaults):], a.defaults):
            if isinstance(d, gast.UnaryOp) and isinstance(d.op, gast.USub) \
                    and isinstance(d.operand, gast.Constant):
                self.defaults[p.id] = -d.operand.value   # axis=-1
            else:
                self.defaults[p.id] = d.value if isinstance(d, gast.Constant) else None
        self.body = node.body
        self.globals = fn.__globals__
        self.where = f"{cap.filename}:{node.lineno}"
        local = {p for p in self.params}
        for s in self.body:
            if isinstance(s, gast.Assign) and isinstance(s.targets[0], gast.Name):
                local.add(s.targets[0].id)
            elif not isinstance(s, gast.Return):
                raise ValueError(f"{self.where}: rule templates are straight-line code")
        self.free = sorted({n for n in ir_names(self.body) if n not in local})

    def __repr__(self):
        return f"<template {self.where}>"

    def _multi_output(self):
        return self.prim is not None and getattr(self.prim, "outputs", None) is not None

    def inline(self, bindings, namer, namespace, target=None, loc=None, temps=None,
               same_shape=()):
        """Inline the rule. Returns (statements, result) where result is an atom or Zero.

        `bindings` maps every parameter to an atom (or index node), a `Zero` or DEFAULT.
        With `target`, the result is assigned to that name (unless it is Zero).
        `same_shape`: parameters known to have the shape and real dtype of the primitive's
        output; ``unbroadcast(g, p)`` of such a parameter is ``g``.
        """
        from s2sad.transforms import ops
        env = {}
        for p in self.params:
            if p in bindings:
                env[p] = bindings[p]
            elif p in self.defaults:
                env[p] = DEFAULT
            else:
                raise TypeError(f"{self.where}: no binding for {p}")
        for name in self.free:
            obj = self.globals.get(name, ops.MISSING)
            if obj is ops.MISSING:
                import builtins
                obj = getattr(builtins, name)
            if name in namespace and namespace[name] is not obj:
                raise TransformError(f"internal: the name {name!r} of rule {self.where} is "
                                     f"bound to another object in the generated namespace")
            namespace[name] = obj
            namer.reserve(name)
        created = set() if temps is None else temps
        out = []
        result = None
        for s in self.body:
            if isinstance(s, gast.Return):
                result = _subst_atom(s.value, env, self)
                break
            zeros = {}
            value = s.value
            if same_shape and isinstance(value, gast.Call) and isinstance(value.func, gast.Name) \
                    and value.func.id == "unbroadcast" and len(value.args) == 2 \
                    and isinstance(value.args[1], gast.Name) and value.args[1].id in same_shape:
                value = value.args[0]
            value = _subst(ir.clone(value), env, self, zeros)
            if isinstance(value, gast.Tuple) and any(
                    isinstance(e, gast.Name) and e.id in zeros for e in value.elts):
                # A tuple of results with symbolic zeros (multi-output rules): element-wise.
                env[s.targets[0].id] = tuple(zeros.get(e.id, e) if isinstance(e, gast.Name) else e
                                             for e in value.elts)
                continue
            if isinstance(value, gast.Tuple) and all(ir.is_atom(e) for e in value.elts):
                env[s.targets[0].id] = value  # a tuple of atoms stays a literal
                continue
            value, pre = _simplify(value, namespace, self, namer, created, loc, zeros)
            out.extend(pre)
            name = s.targets[0].id
            if isinstance(value, Zero) or ir.is_atom(value):
                env[name] = value
                continue
            nout = _n_outputs(value, namespace) if self.unpack_results else None
            if nout is not None:
                # a primitive with several results binds them to names of their own, as in
                # specialized code (`sign, logdet = np.linalg.slogdet(a)`)
                names = [namer.fresh(f"{name}_{i}") for i in range(nout)]
                created.update(names)
                out.append(ir.assign(ir.tuple_([ir.store(n) for n in names], gast.Store()), value, loc))
                env[name] = gast.Tuple(elts=[ir.name(n) for n in names], ctx=gast.Load())
                continue
            new = namer.fresh(hint_of(value, created))
            created.add(new)
            out.append(ir.assign(new, value, loc))
            env[name] = ir.name(new)
        if result is None:
            raise ValueError(f"{self.where}: a rule must end with return")
        if isinstance(result, gast.Tuple) and self._multi_output():
            result = tuple(result.elts)
        out = _drop_dead(out, result)
        if any(n == "slice" for n in ir_names(out)) or (isinstance(result, gast.AST) and any(
                isinstance(n, gast.Name) and n.id == "slice" for n in gast.walk(result))):
            namespace["slice"] = slice   # an index written as a value (`index_value`)
        if isinstance(result, tuple):
            return out, result
        if target is not None and not isinstance(result, Zero):
            result = _retarget(out, result, target, loc)
        return out, result


def _n_outputs(value, namespace):
    """How many results a call of a multi-output primitive has (None: one, or not a call
    of a primitive)."""
    from s2sad.transforms import ops
    if not isinstance(value, gast.Call):
        return None
    try:
        op = ops.classify(value, namespace)
    except (KeyError, TypeError):
        return None
    prim = op.prim if op.kind == "prim" else None
    if prim is None or not callable(getattr(prim, "outputs", None)):
        return None
    bound = {k: (v.value if isinstance(v, gast.Constant) else v) for k, v in op.args.items()}
    try:
        return prim.outputs(bound)
    except Exception:
        return None


def _drop_dead(stmts, result):
    """Remove rule statements whose values are not used (rules are pure)."""
    live = set()
    for r in (result if isinstance(result, tuple) else (result,)):
        if isinstance(r, gast.AST):
            live.update(n.id for n in gast.walk(r) if isinstance(n, gast.Name))
    kept = []
    for s in reversed(stmts):
        t = s.targets[0]
        if isinstance(t, gast.Name) and t.id not in live:
            continue
        kept.append(s)
        live.update(n.id for n in gast.walk(s.value) if isinstance(n, gast.Name))
    return list(reversed(kept))


def ir_names(stmts):
    out = []
    for s in stmts:
        for n in gast.walk(s):
            if isinstance(n, gast.Name) and isinstance(n.ctx, gast.Load):
                out.append(n.id)
    return out


def _retarget(out, result, target, loc):
    if isinstance(result, gast.Name):
        for i in range(len(out) - 1, -1, -1):
            s = out[i]
            if isinstance(s, gast.Assign) and isinstance(s.targets[0], gast.Name) \
                    and s.targets[0].id == result.id:
                later = [n for n in ir_names(out[i + 1:]) if n == result.id]
                if not later:
                    s.targets[0].id = target
                    return ir.name(target)
                break
    out.append(ir.assign(target, result, loc))
    return ir.name(target)


def _subst_atom(node, env, tpl):
    if isinstance(node, gast.Name) and node.id in env:
        v = env[node.id]
        if v is DEFAULT:
            return ir.const(tpl.defaults.get(node.id))
        if isinstance(v, (Zero, tuple)):
            return v
        return ir.clone(v)
    return node



_ZERO_PREFIX = "__zero"
_DEFAULT_PREFIX = "__default_"


class _Subst(gast.NodeTransformer):
    """Replace parameters by their bindings; zeros and defaults become marker names
    (``__zero3__``, ``__default_axis__``) resolved through `zeros`."""

    def __init__(self, env, tpl, zeros):
        self.env = env
        self.tpl = tpl
        self.zeros = zeros
        self.in_index = 0

    def visit_Subscript(self, node):
        node.value = self.visit(node.value)
        self.in_index += 1
        node.slice = self.visit(node.slice)
        self.in_index -= 1
        return node

    def visit_Name(self, node):
        if node.id in self.env:
            v = self.env[node.id]
            if v is DEFAULT:
                return ir.name(f"{_DEFAULT_PREFIX}{node.id}__")
            if isinstance(v, Zero):
                key = f"{_ZERO_PREFIX}{len(self.zeros)}__"
                self.zeros[key] = v
                return ir.name(key)
            v = ir.clone(v)
            if not self.in_index:
                v = index_value(v)
            return v
        return node


def index_value(node):
    """An index (``1:3, ::2``) written as a value (``(slice(1, 3, None), ...)``) for use
    outside a subscript, e.g. as the argument of a scatter."""
    if isinstance(node, gast.Slice):
        parts = [p if p is not None else ir.const(None) for p in (node.lower, node.upper, node.step)]
        return ir.call(ir.name("slice"), parts)
    if isinstance(node, gast.Tuple) and any(isinstance(e, gast.Slice) for e in gast.walk(node)):
        return gast.Tuple(elts=[index_value(e) for e in node.elts], ctx=gast.Load())
    return node


def _is_default(node):
    return isinstance(node, gast.Name) and node.id.startswith(_DEFAULT_PREFIX)


def _subst(value, env, tpl, zeros):
    value = _Subst(env, tpl, zeros).visit(value)
    # Drop keywords whose value is DEFAULT; other DEFAULTs become the default constant.
    for n in gast.walk(value):
        if isinstance(n, gast.Call):
            n.keywords = [k for k in n.keywords if not _is_default(k.value)]
            if tpl.unpack_results:
                continue   # batch rules: a positional default is its value (shift_axis(axis))
            if any(_is_default(a) for a in n.args):
                i = next(i for i, a in enumerate(n.args) if _is_default(a))
                rest = n.args[i + 1:]
                if any(not _is_default(a) for a in rest):
                    raise ValueError(f"{tpl.where}: an optional argument is passed positionally "
                                     f"before others; pass optional arguments by keyword in rules")
                n.args = n.args[:i]
    return _FillDefaults(tpl).visit(value)


class _FillDefaults(gast.NodeTransformer):
    def __init__(self, tpl):
        self.tpl = tpl

    def visit_Name(self, node):
        if _is_default(node):
            return ir.const(self.tpl.defaults.get(node.id[len(_DEFAULT_PREFIX):-2]))
        return node


def materialize(zero: Zero, namer, loc, namespace):
    """Statements that make an explicit zero for a symbolic zero."""
    from s2sad.runtime import helpers
    like = zero.like
    if like is None:
        raise TransformError("internal: a symbolic zero without a shape reached a non-linear "
                             "position in a rule")
    if isinstance(like, gast.Constant):
        return [], ir.const(0j if isinstance(like.value, complex) else 0.0)
    namespace["zero_tangent"] = helpers.zero_tangent
    name = namer.fresh("zeros")
    stmt = ir.assign(name, ir.call(ir.name("zero_tangent"), [ir.clone(like)]), loc)
    return [stmt], ir.name(name)


def _complex_zero(z):
    like = getattr(z, "like", None)
    return isinstance(like, gast.Constant) and isinstance(like.value, complex)


def _zero_of(node, zeros):
    if isinstance(node, gast.Name) and node.id in zeros:
        return zeros[node.id]
    return None


def _fold(value):
    """Fold an operation on constants (`2 - 1` -> 1), drop `x ** 1`, `x * 1`, and pick
    an element of a tuple of outputs (`out[1]` in a multi-output rule)."""
    if isinstance(value, gast.Subscript) and isinstance(value.value, gast.Tuple) \
            and isinstance(value.slice, gast.Constant) and isinstance(value.slice.value, int):
        return value.value.elts[value.slice.value]
    if isinstance(value, gast.BinOp):
        l, r = value.left, value.right
        if isinstance(l, gast.Constant) and isinstance(r, gast.Constant):
            from s2sad.runtime.registry import BINOP_FUNCS
            from s2sad.transforms import ops
            try:
                return ir.const(BINOP_FUNCS[ops.BINOP_KEYS[type(value.op)]](l.value, r.value))
            except Exception:
                return value
        # (1+0j) == 1, but multiplying by it makes a value complex: only real ones
        if isinstance(r, gast.Constant) and r.value == 1 and type(r.value) in (int, float) \
                and isinstance(value.op, (gast.Pow, gast.Mult, gast.Div)):
            return l
        if isinstance(l, gast.Constant) and l.value == 1 and type(l.value) in (int, float) \
                and isinstance(value.op, gast.Mult):
            return r
    if isinstance(value, gast.UnaryOp) and isinstance(value.operand, gast.Constant) \
            and isinstance(value.op, gast.USub) and not isinstance(value.operand.value, bool):
        return ir.const(-value.operand.value)
    return value


def _simplify(value, namespace, tpl, namer, created, loc, zeros):
    """Propagate symbolic zeros through one operation. Returns (value, pre-statements)."""
    from s2sad.transforms import ops
    present = [n.id for n in gast.walk(value) if isinstance(n, gast.Name) and n.id in zeros]
    if not present:
        return _fold(value), []
    if isinstance(value, gast.Name):
        return zeros[value.id], []
    if isinstance(value, gast.BinOp):
        key = ops.BINOP_KEYS[type(value.op)]
        lz, rz = _zero_of(value.left, zeros), _zero_of(value.right, zeros)
        if key in ("add", "sub") and (_complex_zero(lz) or _complex_zero(rz)):
            # a complex zero makes the sum complex: keep it, as an explicit zero
            return _materialize_zeros(value, zeros, namer, loc, namespace)
        if key == "add":
            if lz and rz:
                return lz, []
            return (value.right if lz else value.left), []
        if key == "sub":
            if lz and rz:
                return lz, []
            if rz:
                return value.left, []
            return gast.UnaryOp(op=gast.USub(), operand=value.right), []
        if key in ("mul", "matmul"):
            return (lz or rz), []
        if key == "div" and lz and not rz:
            return lz, []
    if isinstance(value, gast.UnaryOp) and isinstance(value.op, (gast.USub, gast.UAdd)):
        return _zero_of(value.operand, zeros), []
    try:
        op = ops.classify(value, namespace)
    except (KeyError, TypeError):
        op = None
    if op is not None and op.kind == "prim":
        prim = op.prim
        zero_params = [p for p, a in op.args.items()
                       if any(isinstance(n, gast.Name) and n.id in zeros for n in gast.walk(a))]
        linear_present = [p for p in prim.linear if p in op.args]
        if zero_params and set(zero_params) <= set(prim.linear):
            if prim.bilinear or set(zero_params) >= set(linear_present):
                return zeros[present[0]], []
    # Otherwise make explicit zeros for the symbolic ones.
    return _materialize_zeros(value, zeros, namer, loc, namespace)


def _materialize_zeros(value, zeros, namer, loc, namespace):
    pre = []

    class _Mat(gast.NodeTransformer):
        def visit_Name(self, node):
            if node.id in zeros:
                stmts, atom = materialize(zeros[node.id], namer, loc, namespace)
                pre.extend(stmts)
                return atom
            return node
    return _Mat().visit(value), pre

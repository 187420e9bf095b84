"""Reverse mode through a `custom_vjp` function: the user's ``fwd`` and ``bwd`` spliced in.

In the JVP code that reverse mode linearizes, a call ``out = f(x, y)`` of a custom_vjp
function becomes

    out, res... = f_fwd(x, y)                       # the user's fwd, saved as it returns
    out_dot = f_vjp_call(res..., x, y, x_dot, y_dot)  # an opaque linear call

`VJPCall` is that opaque callee. It is never run forwards (forward mode raises the
TypeError JAX raises); its split is built here instead of by `linearize`: the forward part
passes the residuals through, the backward part calls the user's ``bwd`` on the residual
pytree and the output cotangents and maps ``None`` to zeros.
"""

from __future__ import annotations

import gast

from s2sad.errors import TransformError
from s2sad.transforms import ir, ops
from s2sad.transforms.naming import Namer
from s2sad.transforms.values import (Const, Dyn, Lit, STup, SLeaf, Tup, count_leaves, flatten,
                                     unflatten)

FWD_ERROR = "can't apply forward-mode autodiff (jvp) to a custom_vjp function."


class VJPCall(ops.Callee):
    """``(res..., nondiff..., primals..., tangents...) -> tangent outputs``, linear in the
    tangents; its transpose is the user's ``bwd``."""

    def __init__(self, cv, spec, res_skel, nd_skels, diff_skels, loc_file, lineno):
        self.cv = cv
        self.spec = spec
        self.res_skel = res_skel
        self.nd_skels = nd_skels        # layouts of the nondiff arguments (in bwd order)
        self.diff_skels = diff_skels    # layouts of the differentiable arguments
        self.filename = loc_file
        self.lineno = lineno
        self.name = f"{spec.name}_vjp_call"
        self.n_res = count_leaves(res_skel)
        self.n_nd = sum(count_leaves(s) for s in nd_skels)
        self.n_diff = sum(count_leaves(s) for s in diff_skels)
        self.n_out = count_leaves(spec.out_skel)
        self.params = ([f"res{i}" for i in range(self.n_res)] + [f"nd{i}" for i in range(self.n_nd)]
                       + [f"p{i}" for i in range(self.n_diff)] + [f"t{i}" for i in range(self.n_diff)])
        self.out_skel = SLeaf() if self.n_out == 1 else STup(tuple, tuple(SLeaf() for _ in range(self.n_out)))
        self.arg_skels = tuple(SLeaf() for _ in self.params)
        self.custom = None
        self.done = True
        self.deps = []
        self.witness = {}
        self.namespace = {"TypeError": TypeError}
        body = [gast.Raise(exc=ir.call(ir.name("TypeError"), [ir.const(FWD_ERROR)]), cause=None)]
        self.fdef = ir.function_def(self.name, list(self.params), body, loc=None)
        self._splits = {}

    def __repr__(self):
        return f"<custom_vjp call {self.name}>"

    def error(self, msg, hint=None):
        return TransformError(msg, filename=self.filename, lineno=self.lineno, hint=hint)

    def split_for(self, mask):
        mask = tuple(mask)
        sp = self._splits.get(mask)
        if sp is None:
            sp = self._splits[mask] = self._build_split(mask)
        return sp

    # ------------------------------------------------------------------ pieces
    def _build_split(self, mask):
        from s2sad.transforms.jvp import Derived
        from s2sad.transforms.vjp import Split
        first_t = self.n_res + self.n_nd + self.n_diff
        if any(m for m in mask[:first_t]):
            raise self.error("internal: a residual of a custom_vjp rule is a tangent")
        primal = [p for p, m in zip(self.params, mask) if not m]
        linear = [p for p, m in zip(self.params, mask) if m]
        bwd = self._bwd([i for i, m in enumerate(mask[first_t:]) if m], self.params[:first_t])
        read = {n.id for n in gast.walk(gast.Module(body=bwd.fdef.body, type_ignores=[]))
                if isinstance(n, gast.Name)}
        kept = [p for p in self.params[:first_t] if p in read]   # what the backward part reads
        cts = bwd.params[first_t:]
        bwd.params = kept + cts
        bwd.fdef.args.args = [a for a in bwd.fdef.args.args if a.id in read or a.id in cts]
        bwd.arg_skels = tuple(SLeaf() for _ in bwd.params)
        # forward part: pass the residuals through
        fwd = Derived("fwd", self, f"{self.spec.name}_vjp_fwd")
        fwd.fdef = ir.function_def(fwd.name, primal,
                                   [gast.Return(value=ir.tuple_([ir.name(p) for p in kept]))], loc=None)
        fwd.params = primal
        fwd.out_skel = STup(tuple, tuple(SLeaf() for _ in kept))
        fwd.done = True
        # linear part (forward): not available
        lin = Derived("lin", self, f"{self.spec.name}_vjp_lin")
        lin.namespace = {"TypeError": TypeError}
        lin.fdef = ir.function_def(lin.name, kept + linear, [gast.Raise(
            exc=ir.call(ir.name("TypeError"), [ir.const(FWD_ERROR)]), cause=None)], loc=None)
        lin.params = kept + linear
        lin.out_skel = STup(tuple, tuple(SLeaf() for _ in range(self.n_out)))
        lin.done = True
        sp = Split(fwd, lin, bwd, tuple(True for _ in range(self.n_out)))
        sp.n_res = len(kept)
        sp.done = True
        for d in (fwd, lin, bwd):
            d.filename = self.filename
        return sp

    def _bwd(self, linear_t, kept):
        """``bwd(res..., nondiff..., primals..., cts...)``: the user's bwd, cotangents of the
        linear tangent parameters `linear_t` (indices into the differentiable leaves)."""
        from s2sad.runtime import helpers
        from s2sad.transforms.jvp import Derived
        from s2sad.transforms.simplify import simplify
        from s2sad.transforms.specialize import emitter, specialize_call
        d = Derived("bwd", self, f"{self.spec.name}_vjp_bwd")
        cts = [f"ct{i}" for i in range(self.n_out)]
        ns = {}
        namer = Namer(set(kept) | set(cts))
        b = emitter(ns, namer, self.filename)
        leaves = [Dyn(p) for p in kept]
        pos = [0]
        res = unflatten(self.res_skel, leaves, pos)
        nds = [unflatten(s, leaves, pos) for s in self.nd_skels]
        primals = [unflatten(s, leaves, pos) for s in self.diff_skels]
        ct = unflatten(self.spec.out_skel, [Dyn(c) for c in cts])
        stmts = []
        where = f"the bwd rule of custom_vjp function {self.spec.name}"
        spec, args = specialize_call(b, Const(self.cv.bwd), nds + [res, ct], {}, stmts)
        out = b.emit_call(spec, args, None, stmts, False)
        try:
            flat = self._cotangents(out, primals, stmts, ns, namer, b, where)
        except TransformError as e:
            # JAX checks bwd's output after bwd ran, so a breakpoint in bwd is reached
            # first (the texts' pdb example): raise the error there too
            ns["TypeError"] = TypeError
            stmts.append(gast.Raise(exc=ir.call(ir.name("TypeError"), [ir.const(str(e))]), cause=None))
            flat = [ir.const(0.0) for _ in range(self.n_diff)]
        ret = [flat[i] for i in linear_t]
        raises = bool(stmts) and isinstance(stmts[-1], gast.Raise)
        body = stmts if raises else stmts + [gast.Return(value=ir.tuple_(ret))]
        fdef = ir.function_def(d.name, kept + cts, body, loc=None)
        ir.fill_empty_blocks(fdef)
        simplify(fdef, ns)
        d.fdef = fdef
        d.params = kept + cts
        d.namespace = ns
        d.out_skel = STup(tuple, tuple(SLeaf() for _ in ret))
        d.arg_skels = tuple(SLeaf() for _ in d.params)
        d.done = True
        return d


def _cotangents_impl(self, out, primals, stmts, ns, namer, b, where):
    from s2sad.runtime import helpers
    n_diff_args = len(self.diff_skels)
    if not isinstance(out, Tup) or out.kind not in (tuple, list):
        raise self.error(f"{where} must return a tuple with one cotangent per differentiable "
                         f"argument ({n_diff_args}), not {_describe(out)}")
    if len(out.items) != n_diff_args:
        raise self.error(f"{where} must return a tuple with one cotangent per differentiable "
                         f"argument: {n_diff_args} expected, {len(out.items)} returned",
                         hint="use None for an argument whose cotangent is zero; nondiff "
                              "arguments get no cotangent")
    flat = []
    for i, (item, p_av) in enumerate(zip(out.items, primals)):
        p_leaves = flatten(p_av)[1]
        if isinstance(item, Const) and item.value is None:
            ns["zero_tangent"] = helpers.zero_tangent
            for pl in p_leaves:
                z = namer.fresh(f"{pl.var}_zero")
                stmts.append(ir.assign(z, ir.call(ir.name("zero_tangent"), [ir.name(pl.var)])))
                flat.append(ir.name(z))
            continue
        c_skel, c_leaves = flatten(b.as_leaves(item))
        if count_leaves(c_skel) != len(p_leaves) or len(c_leaves) != len(p_leaves):
            raise self.error(f"{where} returns a cotangent for argument {i} whose structure "
                             f"differs from the argument's")
        for cl in c_leaves:
            flat.append(ir.name(cl.var) if isinstance(cl, Dyn) else ir.const(cl.value))
    return flat


VJPCall._cotangents = _cotangents_impl


def _describe(av):
    if isinstance(av, Const):
        return repr(av.value)
    if isinstance(av, (Dyn, Lit)):
        return "a single value"
    return type(av).__name__


def atom_of(av):
    if isinstance(av, Dyn):
        return ir.name(av.var)
    if isinstance(av, Lit):
        return ir.const(av.value)
    raise TypeError(f"not a runtime leaf: {av!r}")

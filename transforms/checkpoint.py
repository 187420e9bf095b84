"""Checkpointing: a call of an ``ad.checkpoint`` function saves only its inputs.

`checkpoint_callee` wraps the specialized function in a forwarding callee marked
``checkpoint``; its JVP carries the mark. When reverse mode splits such a JVP (see
`vjp.split`), `checkpoint_split` replaces the usual split (fwd saves the residuals, bwd
reads them) by one whose forward part saves the inputs and whose backward part first
recomputes the residuals from them:

    def step_ckpt_fwd(x, a):              def step_ckpt_bwd(x, a, out_ct):
        out = step(x, a)                      out, *res = step_jvp_fwd(x, a)
        return out, x, a                      return step_jvp_bwd(*res, out_ct)
"""

from __future__ import annotations

import gast

from s2sad.transforms import ir
from s2sad.transforms.values import SLeaf, STup, count_leaves


def checkpoint_callee(spec):
    """A callee that calls `spec` and is marked for checkpointing (cached per spec)."""
    from s2sad.transforms.jvp import Derived
    hit = getattr(spec, "_checkpointed", None)
    if hit is not None:
        return hit
    d = Derived("ckpt", spec, f"{spec.name}_ckpt")
    params = list(spec.params)
    outs = [f"out{i}" for i in range(count_leaves(spec.out_skel))]
    call = ir.call(ir.name(spec.name), [ir.name(p) for p in params])
    if not outs:
        body = [ir.expr_stmt(call), gast.Return(value=ir.tuple_([]))]
    elif len(outs) == 1 and isinstance(spec.out_skel, SLeaf):
        body = [ir.assign(outs[0], call), gast.Return(value=ir.name(outs[0]))]
    else:
        body = [ir.assign(ir.tuple_([ir.store(o) for o in outs], gast.Store()), call),
                gast.Return(value=ir.tuple_([ir.name(o) for o in outs]))]
    d.fdef = ir.function_def(d.name, params, body, loc=None)
    d.params = params
    d.namespace = {spec.name: spec}
    d.arg_skels = spec.arg_skels
    d.out_skel = spec.out_skel
    d.checkpoint = True
    d.done = True
    d.list_params = set(getattr(spec, "list_params", ()))
    spec._checkpointed = d
    return d


def checkpoint_split(callee, mask, witness_pairs, inner):
    """The split of checkpointed JVP `callee`, built from its usual split `inner`."""
    from s2sad.transforms.jvp import Derived
    from s2sad.transforms.vjp import Split
    base = callee.name
    F, L, B = inner.fwd.name, inner.lin.name, inner.bwd.name
    primal = list(inner.fwd.params)
    n_pout = len([m for m in inner.out_mask if not m])
    res = [f"res{i}" for i in range(inner.n_res)]
    pouts = [f"out{i}" for i in range(n_pout)]

    def recompute():
        # the primal outputs and residuals, from the saved inputs
        targets = [ir.store(n) for n in pouts + res]
        return ir.assign(ir.tuple_(targets, gast.Store()),
                         ir.call(ir.name(F), [ir.name(p) for p in primal]))

    fwd = Derived("fwd", callee, f"{base}_ckpt_fwd")
    ckpt = getattr(callee, "base", None)
    spec = getattr(ckpt, "base", None)
    k = len(getattr(ckpt, "params", ()))
    if spec is not None and primal[:k] == list(ckpt.params) and n_pout == count_leaves(spec.out_skel):
        # the forward sweep runs the primal function only (nothing to save but the inputs)
        single = isinstance(spec.out_skel, SLeaf)
        first = ir.assign(ir.store(pouts[0]) if single else ir.tuple_([ir.store(n) for n in pouts], gast.Store()),
                          ir.call(ir.name(spec.name), [ir.name(p) for p in primal[:k]]))
        fwd.namespace = {spec.name: spec}
    else:
        first = ir.assign(ir.tuple_([ir.store(n) for n in pouts + res], gast.Store()),
                          ir.call(ir.name(F), [ir.name(p) for p in primal]))
        fwd.namespace = {F: inner.fwd}
    fwd.fdef = ir.function_def(fwd.name, primal, [
        first, gast.Return(value=ir.tuple_([ir.name(n) for n in pouts + primal]))], loc=None)
    fwd.params = primal
    fwd.out_skel = STup(tuple, tuple(SLeaf() for _ in pouts + primal))

    lin_params = list(inner.lin.params[inner.n_res:])
    lin = Derived("lin", callee, f"{base}_ckpt_lin")
    lin.fdef = ir.function_def(lin.name, primal + lin_params, [
        recompute()] + _call_and_return(ir.call(ir.name(L), [ir.name(r) for r in res] + [ir.name(p) for p in lin_params]),
                                        count_leaves(inner.lin.out_skel), "lin_out"),
        loc=None)
    lin.namespace = {F: inner.fwd, L: inner.lin}
    lin.params = primal + lin_params
    lin.out_skel = inner.lin.out_skel

    cts = list(inner.bwd.params[inner.n_res:])
    bwd = Derived("bwd", callee, f"{base}_ckpt_bwd")
    bwd.fdef = ir.function_def(bwd.name, primal + cts, [
        recompute()] + _call_and_return(ir.call(ir.name(B), [ir.name(r) for r in res] + [ir.name(c) for c in cts]),
                                        count_leaves(inner.bwd.out_skel), "bar"),
        loc=None)
    bwd.namespace = {F: inner.fwd, B: inner.bwd}
    bwd.params = primal + cts
    bwd.out_skel = inner.bwd.out_skel

    for d in (fwd, lin, bwd):
        d.filename = getattr(callee, "filename", "<generated>")
        d.arg_skels = tuple(SLeaf() for _ in d.params)
        d.done = True
        d.list_params = set()
    sp = Split(fwd, lin, bwd, inner.out_mask)
    sp.n_res = len(primal)
    sp.done = True
    return sp


def _call_and_return(call, n, hint):
    """``a, b = call; return (a, b)`` (generated code stays in A-normal form)."""
    names = [f"{hint}{i}" for i in range(n)]
    return [ir.assign(ir.tuple_([ir.store(x) for x in names], gast.Store()), call),
            gast.Return(value=ir.tuple_([ir.name(x) for x in names]))]

"""Reverse mode, assembled: vjp = transpose . linearize . jvp.

- `grad_callee`: one fused function, ``f_grad``: the forward sweep, the seed cotangent,
  the backward sweep; residuals stay locals (no tuple packing).
- `vjp_pair`: ``f_fwd`` (primal outputs and a residual tuple) and ``f_bwd`` (residuals and
  output cotangents -> input cotangents), for `ad.vjp` and for calls between generated
  functions.
- `split`: the same for a callee that mixes primal and linear arguments (a JVP called
  from JVP code, or a custom_jvp rule): ``g_fwd``, ``g_lin`` (its linear program, run
  forwards) and ``g_bwd``.
"""

from __future__ import annotations


import gast

from s2sad.transforms import ir
from s2sad.transforms.jvp import Derived, prune_namespace
from s2sad.transforms.linearize import Linearizer, loads
from s2sad.transforms.simplify import simplify
from s2sad.transforms.transpose import Transposer
from s2sad.transforms.values import SLeaf, STup, count_leaves

_SPLITS: dict = {}
_GRADS: dict = {}


class Split:
    """``fwd(primals) -> (*primal_outs, *residuals)``; ``lin(*residuals, *tangents)``;
    ``bwd(*residuals, *output_cotangents) -> input cotangents``. A recursive callee packs its
    residuals into one tuple (its callers cannot know their number in advance)."""

    def __init__(self, fwd, lin, bwd, out_mask):
        self.fwd = fwd
        self.lin = lin
        self.bwd = bwd
        self.out_mask = out_mask
        self.n_res = None
        self.n_wit = 0            # shape witnesses of the linear outputs fwd returns last
        self.packed = False
        self.done = False


def _finish(d, params, body, ret, ns):
    fdef = ir.function_def(d.name, params, body + [gast.Return(value=ret)], loc=None)
    ir.fill_empty_blocks(fdef)
    simplify(fdef, ns)
    d.fdef = fdef
    d.params = params
    d.namespace = prune_namespace(ns, fdef)
    d.done = True
    return d


def _unpack(res, names):
    """``a, b, c = res`` as IR statements."""
    if not names:
        return []
    if len(names) == 1:
        return [ir.assign(names[0], gast.Subscript(value=ir.name(res), slice=ir.const(0), ctx=gast.Load()))]
    return [ir.assign(ir.tuple_([ir.store(n) for n in names], gast.Store()), ir.name(res))]


def _tuple_or_atom(atoms):
    return atoms[0] if len(atoms) == 1 else ir.tuple_(atoms)


def _witness_of(callee):
    w = getattr(callee, "witness", None)
    return dict(w) if w else {}


def split(callee, mask, witness_pairs=(), checkpointed=True):
    """Split a callee whose parameters `mask` are linear (cached)."""
    mask = tuple(mask)
    if hasattr(callee, "split_for"):  # a callee that brings its own split (custom_vjp)
        return callee.split_for(mask)
    if checkpointed and getattr(callee, "checkpoint", False):
        key = (id(callee), mask, tuple(witness_pairs), "checkpoint")
        hit = _SPLITS.get(key)
        if hit is not None and hit[0] is callee:
            return hit[1]
        from s2sad.transforms.checkpoint import checkpoint_split
        inner = split(callee, mask, witness_pairs, checkpointed=False)
        sp = checkpoint_split(callee, mask, witness_pairs, inner)
        _SPLITS[key] = (callee, sp)
        return sp
    key = (id(callee), mask, tuple(witness_pairs))
    hit = _SPLITS.get(key)
    if hit is not None and hit[0] is callee:
        sp = hit[1]
        if not sp.done:
            sp.packed = True  # a recursive call: residuals travel as one tuple
        return sp
    lin_params = [p for p, m in zip(callee.params, mask) if m]
    base = callee.name
    fwd = Derived("fwd", callee, f"{base}_fwd")
    lin = Derived("lin", callee, f"{base}_lin")
    bwd = Derived("bwd", callee, f"{base}_bwd")
    sp = Split(fwd, lin, bwd, _predict_out_mask(callee, mask))
    _SPLITS[key] = (callee, sp)
    try:
        witness = _witness_of(callee)
        witness.update(dict(witness_pairs))
        L = Linearizer(callee, lin_params, None, mode="split", witness=witness)
        lz = L.run(_split_of_call)
        sp.out_mask = lz.out_mask
        ns = lz.namespace
        namer = lz.namer
        res_names = lz.residuals
        if sp.packed:
            pack = namer.fresh("res")
            res_params = [pack]
            res_out = [ir.tuple_([ir.name(r) for r in res_names])]
            unpack = _unpack(pack, res_names)
        else:
            res_params = list(res_names)
            res_out = [ir.name(r) for r in res_names]
            unpack = []
        lin_body = unpack + [ir.assign(c, ir.const(0)) for c in lz.cursors] + ir.clone(lz.lin_body)
        lin_ret = list(lz.linear_outs)
        _finish(lin, res_params + lz.linear_params, lin_body, ir.tuple_(lin_ret), dict(ns))
        lin.out_skel = _flat_skel(lin_ret, lz.lists)
        cts = [namer.fresh(f"{a.id[:-4] if isinstance(a, gast.Name) and a.id.endswith('_dot') else 'out'}_ct")
               for a in lz.linear_outs]
        T = Transposer(lz, namer, getattr(callee, "filename", "<generated>"))
        back, results = T.run(cts)
        bwd_body = unpack + _cursor_inits(lz) + back
        _finish(bwd, res_params + cts, bwd_body, ir.tuple_(results), dict(ns))
        bwd.out_skel = STup(tuple, tuple(SLeaf(list=p in lz.lists) for p in lz.linear_params))
        if not sp.packed:
            # residuals neither the linear program nor the backward sweep reads are not saved
            used = _loads_of(lin.fdef) | _loads_of(bwd.fdef)
            kept = [r for r in res_params if r in used]
            if len(kept) != len(res_params):
                res_params = kept
                res_out = [ir.name(r) for r in kept]
                for d in (lin, bwd):
                    d.fdef.args.args = [a for a in d.fdef.args.args
                                        if a.id in used or a.id not in res_names]
                    d.params = [p for p in d.params if p in used or p not in res_names]
        sp.n_res = len(res_params)
        fwd_ret = list(lz.primal_outs) + res_out
        # residuals defined on some paths only (a loop that ran no time, a branch not
        # taken): bound to None first, so the return can name them (the linear program
        # reads them on the same paths only)
        top = set(lz.primal_params) | set(lz.tapes)
        for st in lz.fwd_body:
            if isinstance(st, gast.Assign):
                top.update(n.id for n in gast.walk(st.targets[0]) if isinstance(n, gast.Name))
        maybe = [a.id for a in fwd_ret if isinstance(a, gast.Name) and a.id not in top
                 and a.id not in ns]
        none_inits = [ir.assign(n, ir.const(None)) for n in dict.fromkeys(maybe)]
        if not (isinstance(callee, Derived) and callee.kind == "jvp") and not sp.packed:
            # a plain function (a custom_jvp rule) called with tangents: its callers have no
            # shape witnesses for the tangents it returns, so fwd returns them
            wits = [lz.witness.get(a.id) if isinstance(a, gast.Name) else None for a in lz.linear_outs]
            if wits and all(w is not None and w in lz.safe for w in wits):
                fwd_ret += [ir.name(w) for w in wits]
                sp.n_wit = len(wits)
        _finish(fwd, lz.primal_params, _tape_inits(lz) + none_inits + lz.fwd_body, ir.tuple_(fwd_ret),
                dict(ns))
        fwd.out_skel = _flat_skel(fwd_ret, set(lz.lists) | set(lz.tapes))
        for d in (fwd, lin, bwd):
            d.filename = getattr(callee, "filename", "<generated>")
        # runtime lists among the parameters of the three functions: the callee's list
        # parameters, and the tapes and lists that travel as residuals (their cotangents
        # are lists too)
        lists = set(lz.lists)
        fwd.list_params = {p for p in lz.primal_params if p in lists}
        if not sp.packed:
            lists |= set(lz.tapes)
            lin_lists = {r for r in res_params if r in lists}
            lin.list_params = lin_lists | {p for p in lz.linear_params if p in lists}
            bwd.list_params = lin_lists | {c for c, a in zip(cts, lz.linear_outs)
                                           if isinstance(a, gast.Name) and a.id in lists}
        sp.done = True
    except BaseException:
        _SPLITS.pop(key, None)
        raise
    return sp


def _flat_skel(atoms, lists):
    """A flat tuple layout; the leaves named in `lists` are runtime lists."""
    return STup(tuple, tuple(SLeaf(list=isinstance(a, gast.Name) and a.id in lists) for a in atoms))


def _loads_of(fdef):
    body = gast.Module(body=fdef.body, type_ignores=[])
    return {n.id for n in gast.walk(body) if isinstance(n, gast.Name) and isinstance(n.ctx, gast.Load)}


def _tape_inits(lz):
    return [ir.assign(t, gast.List(elts=[], ctx=gast.Load())) for t in lz.tapes]


def _cursor_inits(lz):
    out = []
    for tape, cur in zip_tapes(lz):
        out.append(ir.assign(cur, ir.call(ir.name("len"), [ir.name(tape)])))
        lz.namespace.setdefault("len", len)
    return out


def zip_tapes(lz):
    pairs = []
    for n in gast.walk(ir.function_def("x", [], lz.lin_body)):
        rec = lz.meta.get(id(n), {}).get("record")
        if rec is not None:
            pairs.append((rec[1], rec[2]))
    seen, out = set(), []
    for t, c in pairs:
        if c not in seen:
            seen.add(c)
            out.append((t, c))
    return out


def _predict_out_mask(callee, mask):
    """Which outputs are linear, before the callee is analysed (recursion)."""
    if isinstance(callee, Derived) and callee.kind == "jvp":
        n_primal = count_leaves(callee.base.out_skel)
        n = count_leaves(callee.out_skel)
        return tuple(i >= n_primal for i in range(n))
    return tuple(True for _ in range(max(1, count_leaves(callee.out_skel))))


def _split_of_call(callee, mask, witness_pairs=()):
    return split(callee, mask, witness_pairs)


def tangent_positions(jc, n_primal):
    """For each output of a JVP callee: the index of the primal output it is the tangent
    of (None for the primal outputs themselves)."""
    out = [None] * n_primal
    for o, flag in enumerate(jc.active_out):
        if flag:
            out.append(o)
    return out


def grad_callee(spec, active, seeds, result, name=None):
    """Fused reverse mode of `spec`.

    `active`: per flat parameter, is it differentiated. `seeds(primal_outs)`: for each
    primal output leaf, the IR expression of its seed cotangent (or None).
    `result(primal_outs, grads)` -> (statements before the backward sweep, returned atom,
    layout of the result).
    """
    from s2sad.runtime import helpers
    from s2sad.transforms.jvp import jvp_callee
    jc = jvp_callee(spec, active, reverse=True)
    n_primal = count_leaves(spec.out_skel)
    n_out = count_leaves(jc.out_skel)
    linear_out = tuple(i >= n_primal for i in range(n_out))
    L = Linearizer(jc, [p for p in jc.params[len(spec.params):]], linear_out, mode="fused",
                   witness=_witness_of(jc))
    lz = L.run(_split_of_call)
    namer = lz.namer
    ns = lz.namespace
    for h in ("ones_like_output", "check_grad_output"):
        ns[h] = getattr(helpers, h)
    primal_outs = list(lz.primal_outs)
    seed_exprs = seeds(primal_outs)
    positions = tangent_positions(jc, n_primal)
    pre, cts = [], []
    lin_positions = [i for i, m in enumerate(lz.out_mask) if m]
    for pos in lin_positions:
        o = positions[pos]
        seed = seed_exprs[o] if o is not None and o < len(seed_exprs) else None
        if seed is None:
            cts.append(None)
            continue
        ct = namer.fresh("out_bar")
        pre.append(ir.assign(ct, seed))
        cts.append(ct)
    T = Transposer(lz, namer, getattr(spec, "filename", "<generated>"), fused=True)
    checks, ret, out_skel = result(primal_outs, None)
    back, grads = T.run(cts)
    checks, ret, out_skel = result(primal_outs, grads)
    d = Derived("grad", jc, name or f"{spec.name}_grad")
    body = _tape_inits(lz) + list(lz.fwd_body) + list(checks) + pre + back
    _finish(d, lz.primal_params, body, ret, dict(ns))
    d.out_skel = out_skel
    d.arg_skels = spec.arg_skels
    d.filename = getattr(spec, "filename", "<generated>")
    return d

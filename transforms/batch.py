"""Batching (vmap): each statement rewritten to carry a batch axis.

A batched value holds one per-example value per batch element along its *last* axis (see
`runtime.batching`), so most of the program is unchanged:

- a statement none of whose inputs is batched stays as it is (``in_axes=None`` is free);
- an elementwise primitive needs nothing (broadcasting aligns from the right); an
  unbatched array operand gets a trailing axis of length one;
- indexing a batched value with an unbatched index reads the per-example axes;
- any other primitive uses its batch rule, a template like its JVP rule, written for
  arguments that carry a trailing batch axis;
- a call of a generated function calls its batched version (batched for the arguments
  that are);
- an ``if`` on a batched value whose branches are assignments of pure primitives runs
  both branches and selects (``np.where``); any other statement whose control depends on a batched
  value (``while``, ``for`` over a batched range, an ``if`` with jumps or calls, a
  ``try``), and a primitive without a batch rule, runs as a loop over the batch, and
  the generated source says so in a comment.

A variable is batched when a value assigned to it depends on a batched input, through
data or through control (flow-insensitive, like activity analysis); an unbatched value
assigned to a batched variable is broadcast along the batch (`with_batch`). A tuple
returned inside the returned one (the residuals of a forward sweep) is batched whole.
A list that a loop over the batch fills may have another length in each example: it is
stacked as a `Ragged` value and flagged RAGGED (through calls and returns too), and every
statement that reads it runs as a loop over the batch.

A batched custom_jvp / custom_vjp function is its primal code batched: differentiating it
again is refused (jvp.py), since the rule would be lost; vmap(grad(f)) keeps the rule.
So is differentiating batched code that calls a per-example helper (`example`,
`stack_examples`, `stack_assigned`, `select_assigned`, `with_batch_items`: no rules yet).

The result is a `Derived` callee ``f_vmap(*params)`` over the same arguments, batched
ones with their batch axis last, returning the outputs, batched ones with their batch
axis last (`Derived.batched_out` says which).
"""

from __future__ import annotations

import gast
import numpy as np

from s2sad.errors import TransformError
from s2sad.runtime import batching
from s2sad.transforms import ir, ops
from s2sad.transforms import restructure as restructure_mod
from s2sad.transforms.jvp import Derived, prune_namespace
from s2sad.transforms.linearize import stores as _stores
from s2sad.transforms.naming import Namer, bind_callee, names_in
from s2sad.transforms.simplify import simplify
from s2sad.transforms.values import count_leaves

_BATCHED: dict = {}

# primitives whose result does not depend on the batch: the per-example metadata of a
# batched value is the same for every example
META = {"attr.shape", "attr.ndim", "attr.size", "attr.dtype", "len", "np.shape",
        "np.ndim", "np.size"}
# primitives whose results are safe to compute on every example, taken or not (a select
# runs both branches of an `if`): elementwise arithmetic cannot raise on arrays
_JUMPS = (gast.Break, gast.Continue, gast.Return, gast.Raise)
COMMENT = "s2sad: "


_NO_DEFAULT = object()
RAGGED = "ragged"   # a batched_in / batched_out flag: batched, and maybe a Ragged list


def batch_callee(callee, batched_in) -> Derived:
    """`callee` batched along the parameters flagged in `batched_in` (cached)."""
    batched_in = tuple(RAGGED if b == RAGGED else bool(b) for b in batched_in)
    key = (id(callee), batched_in)
    hit = _BATCHED.get(key)
    if hit is not None and hit[0] is callee:
        return hit[1]
    name = f"{callee.name}_vmap"
    if not all(batched_in):
        which = [p for p, b in zip(callee.params, batched_in) if b]
        suffix = "_".join(which)
        name += "_" + (suffix if len(suffix) <= 20 else f"{len(which)}args")
    d = Derived("vmap", callee, name)
    # a custom_jvp / custom_vjp function batched is its primal code batched: its rule is
    # not (differentiating it again is refused, see jvp.py)
    d.batched_custom = getattr(callee, "custom", None) or getattr(callee, "batched_custom", None)
    _BATCHED[key] = (callee, d)
    try:
        _BatchPass(callee, d, batched_in).run()
    except BaseException:
        _BATCHED.pop(key, None)
        raise
    # the earliest call of a batching helper without derivative rules, with its line
    # (differentiating the batched code is refused, see jvp.py)
    found = sorted((getattr(n, "lineno", None) or 0, n.func.id) for n in gast.walk(d.fdef)
                   if isinstance(n, gast.Call) and isinstance(n.func, gast.Name) and n.func.id in _UNRULED
                   and d.namespace.get(n.func.id) is getattr(batching, n.func.id))
    d.unruled = (found[0][1], found[0][0] or None) if found else None
    return d


# helpers of per-example code (loops over the batch, selects of maybe-unassigned values)
# that are not registered primitives: no JVP or transpose rules yet
_UNRULED = ("example", "stack_examples", "stack_assigned", "select_assigned", "with_batch_items")


def _elementwise(prim):
    """Batched by broadcasting its operands (no batch rule needed)."""
    return prim.batch is None and prim.batchable


def _loads(node):
    return [n.id for n in gast.walk(node) if isinstance(n, gast.Name) and isinstance(n.ctx, gast.Load)]


def _may_raise(prim):
    """Whether a primitive may raise, or change a value in place, for some values: an `if`
    whose branches call it cannot run both branches for every example."""
    n = prim.name
    return n.startswith(("linalg.", "scipy.")) or n in (
        "bsolve", "method.pop", "getitem", "getitem_t", "take", "take_along", "check_grad_output")


def _value_loads(node):
    """The variables whose values `node` reads: not those it only takes the length of
    (``len(x)`` is the length of every example, batched or not)."""
    if isinstance(node, gast.Call) and isinstance(node.func, gast.Name) and node.func.id == "len":
        return []
    if isinstance(node, gast.Name):
        return [node.id] if isinstance(node.ctx, gast.Load) else []
    out = []
    for c in gast.iter_child_nodes(node):
        out.extend(_value_loads(c))
    return out


def _written(node):
    """Names a statement rebinds or writes in place (a list it appends to or pops from
    included; unlike linearize.written, not a list it only copies)."""
    out = set(_stores(node))
    for n in gast.walk(node):
        if isinstance(n, gast.Subscript) and isinstance(n.ctx, gast.Store) and isinstance(n.value, gast.Name):
            out.add(n.value.id)
        elif isinstance(n, gast.Call) and isinstance(n.func, gast.Attribute) \
                and isinstance(n.func.value, gast.Name) and n.func.attr in ("append", "pop"):
            out.add(n.func.value.id)
    return out


def _targets(stmt):
    t = stmt.targets[0]
    if isinstance(t, gast.Name):
        return [t.id]
    if isinstance(t, gast.Tuple):
        return [e.id for e in t.elts if isinstance(e, gast.Name)]
    return []


def _escapes(stmt):
    """Whether `stmt` contains a jump that leaves it (a break/continue of an enclosing
    loop, a return, a raise)."""
    def walk(node, in_loop):
        for child in gast.iter_child_nodes(node):
            if isinstance(child, (gast.Return, gast.Raise)):
                return True
            if isinstance(child, (gast.Break, gast.Continue)) and not in_loop:
                return True
            if isinstance(child, (gast.FunctionDef, gast.Lambda)):
                continue
            if walk(child, in_loop or isinstance(child, (gast.For, gast.While))):
                return True
        return False
    if isinstance(stmt, (gast.Return, gast.Raise, gast.Break, gast.Continue)):
        return True
    return walk(stmt, isinstance(stmt, (gast.For, gast.While)))


class _Analysis:
    """Which variables are batched, which statements run as loops over the batch, and
    which `if` statements become selects."""

    def __init__(self, pas, fdef, batched_params, ragged_params=()):
        self.p = pas
        self.fdef = fdef
        self.batched = set(batched_params)
        # lists (or tuples holding them) whose length may differ between examples: they
        # come out of a loop over the batch as `Ragged` and are read example by example
        self.ragged = set(ragged_params)
        self.loops = {}       # id(stmt) -> reason: runs as a loop over the batch
        self.selects = set()  # id(If): both branches run, then np.where
        self.call_masks = {}
        self.whole = None     # reason the whole function runs as a loop over the batch

    def run(self):
        changed = True
        while changed:
            self.changed = False
            self.visit(self.fdef.body, [], False)
            changed = self.changed

    def mark(self, names):
        for n in names:
            if n not in self.batched:
                self.batched.add(n)
                self.changed = True

    def mark_ragged(self, names):
        for n in names:
            if n not in self.ragged:
                self.ragged.add(n)
                self.changed = True
        self.mark(names)

    def reads_ragged(self, node):
        return any(n in self.ragged for n in _loads(node))

    def loop(self, stmt, reason, loops):
        """Run `stmt` as a loop over the batch (or the loop its jumps leave to)."""
        if _escapes(stmt):
            if loops and not any(isinstance(n, gast.Return) for n in gast.walk(stmt)):
                target = loops[-1]
                if id(target) not in self.loops:
                    self.loops[id(target)] = reason
                    self.changed = True
                return
            if self.whole is None:
                self.whole = reason
                self.changed = True
            return
        if id(stmt) not in self.loops:
            self.loops[id(stmt)] = reason
            self.changed = True

    def is_b(self, node):
        return any(n in self.batched for n in _value_loads(node))

    def iter_batched(self, node):
        """Whether a loop's range depends on a batched value (``len(x)`` does not: it is
        the length of every example)."""
        if isinstance(node, gast.Call) and isinstance(node.func, gast.Name) and node.func.id == "len" \
                and self.p.ns.get("len", len) is len:
            return False
        if isinstance(node, gast.Name):
            return node.id in self.batched
        return any(self.iter_batched(c) for c in gast.iter_child_nodes(node))

    def visit(self, stmts, loops, ctrl):
        for s in stmts:
            if id(s) in self.loops:
                written = _written(s)
                self.mark(written)
                # a list the loop fills may have another length in each example
                self.mark_ragged([n for n in written if n in self.p.lists or n in self.p.opaque])
                continue
            if not isinstance(s, (gast.Break, gast.Continue, gast.Pass)) and self.reads_ragged(
                    s if not isinstance(s, (gast.If, gast.While, gast.For)) else
                    (s.test if not isinstance(s, gast.For) else s.iter)):
                self.loop(s, "a list whose length differs between examples", loops)
                continue
            if isinstance(s, gast.Assign):
                self.assign(s, ctrl)
            elif isinstance(s, gast.Expr):
                self.expr(s, ctrl)
            elif isinstance(s, gast.If):
                if isinstance(s.test, gast.Name) and s.test.id in self.batched:
                    reason = self.p.select_blocker(s)
                    if reason is None:
                        if id(s) not in self.selects:
                            self.selects.add(id(s))
                            self.changed = True
                        self.visit(s.body, loops, True)
                        self.visit(s.orelse, loops, True)
                        continue
                    self.loop(s, reason, loops)
                    continue
                self.visit(s.body, loops, ctrl)
                self.visit(s.orelse, loops, ctrl)
            elif isinstance(s, gast.While):
                if self.is_b(s.test):
                    self.loop(s, "a `while` on a batched value", loops)
                    continue
                self.visit(s.body, loops + [s], ctrl)
            elif isinstance(s, gast.For):
                if self.iter_batched(s.iter):
                    self.loop(s, "a `for` over a batched range", loops)
                    continue
                self.visit(s.body, loops + [s], ctrl)
            elif isinstance(s, gast.Try):
                if any(n in self.batched for n in _loads(s) + list(_written(s))):
                    self.loop(s, "a `try` on batched values", loops)
                    continue
                self.visit(s.body, loops, ctrl)
                for h in s.handlers:
                    self.visit(h.body, loops, ctrl)
            elif isinstance(s, (gast.Break, gast.Continue)):
                if ctrl:
                    # a jump decided by a batched value: the loop's trip count is batched
                    self.loop(s, "a loop left on a batched condition", loops)

    def assign(self, s, ctrl):
        t = s.targets[0]
        if isinstance(t, gast.Subscript):
            if ctrl or self.is_b(s.value) or self.is_b(t.slice):
                self.mark([t.value.id])
            return
        outs = _targets(s)
        if ctrl:
            self.mark(outs)
            return
        op = self.p.classify(s)
        if op.kind == "call":
            mask = self.call_mask(op)
            self.call_masks[id(s)] = mask
            if any(mask):
                flags = self.p.callee_outputs(op.callee, mask)
                self.mark([n for n, f in zip(outs, flags) if f])
                self.mark_ragged([n for n, f in zip(outs, flags) if f == RAGGED])
            return
        if op.prim.name in META:
            return
        if any(n in self.batched for a in op.args.values() for n in _value_loads(a)):
            self.mark(outs)

    def call_mask(self, op):
        return tuple((RAGGED if a.id in self.ragged else a.id in self.batched)
                     if isinstance(a, gast.Name) else False for a in op.call_args)

    def expr(self, s, ctrl):
        v = s.value
        if isinstance(v, gast.Call) and isinstance(v.func, gast.Attribute) and v.func.attr == "append" \
                and isinstance(v.func.value, gast.Name) and v.func.value.id not in self.p.ns:
            if ctrl or self.is_b(v.args[0]):
                self.mark([v.func.value.id])
            return
        if isinstance(v, gast.Call):
            try:
                op = ops.classify(v, self.p.ns)
            except KeyError:
                return
            if op.kind == "call":
                mask = self.call_mask(op)
                self.call_masks[id(s)] = mask
                if any(mask):
                    self.p.callee_outputs(op.callee, mask)


class _BatchPass:
    def __init__(self, callee, derived, batched_in):
        self.c = callee
        self.d = derived
        self.batched_in = batched_in
        self.ns = dict(callee.namespace)
        self.filename = getattr(callee, "filename", "<generated>")
        self.loc = None
        self.size = None       # the name of the batch size, once something needs it

    def error(self, msg, hint=None):
        return TransformError(msg, filename=self.filename, lineno=getattr(self.loc, "lineno", None),
                              hint=hint)

    def classify(self, s):
        try:
            return ops.classify(s.value, self.ns)
        except KeyError as e:
            raise self.error(f"internal: {e}")

    def callee_outputs(self, callee, mask):
        d = batch_callee(callee, mask)
        if not d.done:   # recursion: every output is batched (its return makes it so)
            d.all_batched_out = True
            return [True] * max(1, count_leaves(callee.out_skel) if callee.out_skel is not None else 1)
        return list(d.batched_out)

    # ----------------------------------------------------------------- run
    def run(self):
        c, d = self.c, self.d
        src = ir.clone(c.fdef)
        self.namer = Namer(names_in(src) | set(self.ns))
        if restructure_mod.needs_restructure(src):
            restructure_mod.restructure(src, self.namer)
        params = list(c.params)
        for p in params:
            self.namer.reserve(p)
        self.params = params
        batched_params = [p for p, b in zip(params, self.batched_in) if b]
        self.first_batched = batched_params[0] if batched_params else None
        self.lists = set(getattr(c, "list_params", ()))
        for n in gast.walk(src):
            if isinstance(n, gast.Assign) and isinstance(n.targets[0], gast.Name) and self.is_list(n):
                self.lists.add(n.targets[0].id)
            elif isinstance(n, gast.Call) and isinstance(n.func, gast.Attribute) \
                    and n.func.attr == "append" and isinstance(n.func.value, gast.Name):
                self.lists.add(n.func.value.id)
        self.opaque = _opaque(src, params, self.lists, self.ns)
        self.an = _Analysis(self, src, batched_params,
                            [p for p, b in zip(params, self.batched_in) if b == RAGGED])
        self.an.run()
        self.b = self.an.batched
        self.ragged = self.an.ragged
        self.read_anywhere = {}
        for n in gast.walk(src):
            if isinstance(n, gast.Name) and isinstance(n.ctx, gast.Load):
                self.read_anywhere.setdefault(n.id, []).append(n)
        body = src.body
        ret = body[-1] if body and isinstance(body[-1], gast.Return) else None
        if ret is not None:
            body = body[:-1]
        self.defined = set(params)   # assigned on some path so far
        self.sure = set(params)      # assigned on every path so far
        self.unassigned = set()      # read by batch code where they may be unassigned: None at entry
        # parameters that come in unbatched and stay so at entry (the whole function as one
        # loop over the batch reads them whole, even when its body rebinds them)
        self.unbatched_params = {p for p, flag in zip(params, self.batched_in) if not flag}
        entry = []
        if self.an.whole is not None:
            # the whole function as one loop over the batch
            outs = self._return_names(ret)
            self.b |= set(outs) | _written(gast.Module(body=body, type_ignores=[]))
            self.ragged |= {n for n in outs if n in self.lists or n in self.opaque}
            stmts = self.loop_over_batch(body, self.an.whole, outs)
        else:
            for p, flag in zip(params, self.batched_in):
                if not flag and p in self.b:
                    entry.append(ir.assign(p, self.broadcast(ir.name(p), p in getattr(c, "list_params", ())), src))
                    self.unbatched_params.discard(p)
            stmts = self.block(body)
            # (None: "this example never assigned it", as a loop over the batch writes it)
            entry.extend(ir.assign(n, ir.const(None), src) for n in sorted(self.unassigned))
        final = self.returned(ret, d) if ret is not None else []
        if self.size is not None:
            # (a batched tuple or list may hold no array: the next batched argument tells)
            sources = [ir.name(p) for p, b in zip(params, self.batched_in) if b]
            unpacked = {n.value.id for n in gast.walk(src) if isinstance(n, gast.Assign)
                        and isinstance(n.targets[0], gast.Tuple) and isinstance(n.value, gast.Name)}
            if self.first_batched not in self.lists and self.first_batched not in unpacked:
                sources = sources[:1]
            entry.insert(0, ir.assign(self.size, ir.call(ir.name("batch_size"), sources), src))
            self.ns["batch_size"] = batching.batch_size
        fdef = ir.function_def(d.name, params, entry + stmts + final, loc=src)
        ir.fill_empty_blocks(fdef)
        simplify(fdef, self.ns, {})
        d.fdef = fdef
        d.namespace = prune_namespace(self.ns, fdef)
        d.params = params
        d.arg_skels = c.arg_skels
        d.out_skel = c.out_skel
        d.batched_in = self.batched_in
        d.list_params = set(getattr(c, "list_params", ()))
        d.witness = {}
        d.done = True

    def returned(self, ret, d):
        """The return statement, and which of its values are batched (`d.batched_out`).
        A tuple inside the returned one (the residuals of a forward sweep) is one value:
        batched when any of its leaves is, with every leaf then broadcast along the batch.
        A function that calls itself returns every value batched (its recursive calls
        assumed so)."""
        atoms = _return_atoms(ret, count_leaves(self.c.out_skel))
        everything = getattr(d, "all_batched_out", False)
        pre, flags, new = [], [], []
        for a in atoms:
            ragged = any(n in self.ragged for n in _loads(a))
            if everything or (isinstance(a, gast.Tuple) and self.is_b(a)):
                new.append(self.full_tree(a, pre))
                flags.append(RAGGED if ragged else True)
            else:
                new.append(a)
                flags.append(RAGGED if ragged else isinstance(a, gast.Name) and a.id in self.b)
        d.batched_out = tuple(flags)
        if isinstance(ret.value, gast.Tuple) and len(atoms) == len(ret.value.elts):
            value = ir.tuple_(new)
        else:
            value = new[0] if new else ret.value
        return pre + [ir.copy_loc(gast.Return(value=value), ret)]

    def full_tree(self, atom, out):
        if isinstance(atom, gast.Tuple):
            return ir.tuple_([self.full_tree(e, out) for e in atom.elts])
        if isinstance(atom, gast.Name) and atom.id in self.lists and atom.id not in self.b:
            n = self.namer.fresh(f"{atom.id}_b")
            out.append(ir.assign(n, self.broadcast(atom, True), self.loc))
            return ir.name(n)
        return self.full(atom, out)

    def _return_names(self, ret):
        """The variables a return statement reads (in nested tuples too), once each."""
        if ret is None:
            return []
        out = []
        for n in _loads(ret.value):
            if n not in out and n not in self.ns:
                out.append(n)
        return out

    # --------------------------------------------------------------- values
    def batch_size_name(self):
        if self.size is None:
            self.size = self.namer.fresh("B")
        return self.size

    def broadcast(self, atom, is_list=False):
        """``with_batch(atom, B)``: an unbatched value along the batch (a runtime list:
        each of its items)."""
        fn = batching.with_batch_items if is_list else batching.with_batch
        self.ns[fn.__name__] = fn
        return ir.call(ir.name(fn.__name__), [ir.clone(atom), ir.name(self.batch_size_name())])

    def is_list(self, s):
        """Whether assignment `s` binds a runtime list."""
        if isinstance(s.value, gast.List):
            return True
        try:
            op = ops.classify(s.value, self.ns)
        except KeyError:
            return False
        if op.kind == "call":
            return False
        return bool(op.prim.returns_list) or op.prim.name in ("method.copy", "list")

    def expand(self, atom, out):
        """An unbatched operand of a batched operation: a trailing axis of length one."""
        if not isinstance(atom, gast.Name) or atom.id in self.b:
            return atom
        self.ns["np"] = np
        n = self.namer.fresh(f"{atom.id}_1b")
        out.append(ir.assign(n, ir.call("np.expand_dims", [ir.clone(atom), ir.const(-1)]), self.loc))
        return ir.name(n)

    def full(self, atom, out):
        """An unbatched operand that must have the whole batch (`with_batch`)."""
        if isinstance(atom, gast.Name) and atom.id in self.b:
            return atom
        n = self.namer.fresh(f"{atom.id}_b" if isinstance(atom, gast.Name) else "const_b")
        out.append(ir.assign(n, self.broadcast(atom), self.loc))
        return ir.name(n)

    def is_b(self, node):
        return any(n in self.b for n in _value_loads(node))

    # --------------------------------------------------------------- blocks
    def block(self, stmts):
        out = []
        for s in stmts:
            saved = self.loc
            self.loc = s
            try:
                self.stmt(s, out)
            except TransformError as e:
                raise e.located(self.filename, getattr(s, "lineno", None))
            finally:
                self.loc = saved
            self.defined.update(_written(s))
        return out

    def stmt(self, s, out):
        reason = self.an.loops.get(id(s))
        if reason is not None:
            outs = sorted(n for n in _written(s) if self.used_outside(n, s))
            out.extend(self.loop_over_batch([s], reason, outs))
            self.sure.update(_written(s))
            return
        before = set(self.sure)
        if isinstance(s, gast.Assign):
            self.assign(s, out)
            self.sure.update(_written(s))
        elif isinstance(s, gast.Expr):
            self.expr_stmt(s, out)
        elif isinstance(s, gast.If):
            if id(s) in self.an.selects:
                self.select(s, out)   # assigns every name of either branch, for every example
                self.sure.update(_written(s))
            else:
                body = self.block(s.body)
                after_body, self.sure = self.sure, set(before)
                orelse = self.block(s.orelse)
                self.sure = before | (after_body & self.sure)
                out.append(ir.copy_loc(gast.If(test=s.test, body=body, orelse=orelse), s))
        elif isinstance(s, gast.For):
            self.defined.update(_stores(s.target))
            out.append(ir.copy_loc(gast.For(target=s.target, iter=s.iter, body=self.block(s.body),
                                            orelse=[], type_comment=None), s))
            self.sure = before   # the body may not run
        elif isinstance(s, gast.While):
            out.append(ir.copy_loc(gast.While(test=s.test, body=self.block(s.body), orelse=[]), s))
            self.sure = before
        elif isinstance(s, gast.Try):
            body = self.block(s.body)
            self.sure = set(before)
            handlers = [ir.copy_loc(gast.ExceptHandler(type=h.type, name=h.name, body=self.block(h.body)), h)
                        for h in s.handlers]
            out.append(ir.copy_loc(gast.Try(body=body, handlers=handlers, orelse=[],
                                            finalbody=[]), s))
            self.sure = before   # the body may stop anywhere
        else:
            out.append(s)

    def maybe_unassigned(self, n):
        """`n` is assigned on some paths to here but not on all: code that reads it for
        the whole batch (a select, a loop over the batch) finds None where it is not."""
        if n in self.defined and n not in self.sure and n not in self.params:
            self.unassigned.add(n)
            return True
        return False

    def used_outside(self, name, stmt):
        inside = {id(n) for n in gast.walk(stmt)}
        return any(id(n) not in inside for n in self.read_anywhere.get(name, ()))

    # ------------------------------------------------------------ statements
    def assign(self, s, out):
        t = s.targets[0]
        if isinstance(t, gast.Subscript):
            self.setitem(s, out)
            return
        outs = _targets(s)
        if not self.is_b(s.value):
            if isinstance(s.value, gast.List) and len(outs) == 1 and outs[0] in self.b:
                # a list literal of a batched list: its items along the batch
                pre = []
                elts = [self.full(e, pre) for e in s.value.elts]
                out.extend(pre)
                out.append(ir.assign(ir.clone(t), gast.List(elts=elts, ctx=gast.Load()), s))
                return
            out.append(s)
            for n in outs:
                if n in self.b:
                    out.append(ir.assign(n, self.broadcast(ir.name(n), self.is_list(s)), s))
            return
        op = self.classify(s)
        if op.kind == "call":
            self.user_call(s, op, outs, out)
            return
        prim = op.prim
        if prim.name == "copy":
            out.append(s)
            return
        rule = getattr(prim, "batch", None)
        if rule is None and _elementwise(prim):
            args = {p: self.expand(a, out) for p, a in op.args.items()}
            out.append(ir.assign(ir.clone(t), ops.build(prim, args), s))
            return
        if prim.name == "getitem" and not self.is_b(op.args["idx"]):
            self.getitem(s, op, out)
            return
        if prim.name in ("tuple", "list"):
            self.container(s, op, outs, out)
            return
        if rule is not None:
            if self.apply_rule(s, prim, op, outs, out):
                if prim.name in META:
                    # a per-example size is the same for every example; a variable that
                    # is batched elsewhere (changed under a batched `if`) gets it broadcast
                    for n in outs:
                        if n in self.b:
                            out.append(ir.assign(n, self.broadcast(ir.name(n)), s))
                return
        why = f"{prim.label()} has no batch rule" if rule is None else \
            f"{prim.label()} with a batched {self._blocking_param(prim, op)}"
        outs_live = [n for n in outs]
        out.extend(self.loop_over_batch([s], why, outs_live))

    def _blocking_param(self, prim, op):
        arrays = getattr(prim, "batch_arrays", ())
        for p, a in op.args.items():
            if p not in arrays and self.is_b(a):
                return p
        return "argument"

    def apply_rule(self, s, prim, op, outs, out):
        arrays = prim.batch_arrays
        if any(self.is_b(a) for p, a in op.args.items() if p not in arrays):
            return False
        for u in prim.batch_unless:
            p, _, v = u.partition("=")
            a = op.args.get(p)
            if a is None and v and repr(prim.defaults.get(p, _NO_DEFAULT)) == v:
                return False     # the parameter left out: its default is the excluded value
            if a is not None and (not v or not isinstance(a, gast.Constant) or repr(a.value) == v):
                return False
        pre = []
        bindings = {}
        for p, a in op.args.items():
            lift = self.full if p in prim.batch_full else self.expand
            if p in arrays:
                if isinstance(a, (gast.List, gast.Tuple)):
                    bindings[p] = type(a)(elts=[lift(e, pre) for e in a.elts], ctx=gast.Load())
                else:
                    bindings[p] = lift(a, pre)
            else:
                bindings[p] = a
        tpl = prim.batch
        if "B" in tpl.params:
            bindings["B"] = ir.name(self.batch_size_name())
        if isinstance(s, gast.Expr):
            # a check: its last call as a statement
            stmts, res = tpl.inline(bindings, self.namer, self.ns, loc=s)
            last = stmts.pop() if stmts and isinstance(stmts[-1], gast.Assign) else None
            out.extend(pre)
            out.extend(stmts)
            if last is not None:
                out.append(ir.expr_stmt(last.value, s))
            return True
        multi = len(outs) > 1 or isinstance(s.targets[0], gast.Tuple)
        stmts, res = tpl.inline(bindings, self.namer, self.ns, target=None if multi else outs[0], loc=s)
        out.extend(pre)
        out.extend(stmts)
        if multi:
            elts = list(res) if isinstance(res, tuple) else [res]
            if len(elts) == 1 and len(outs) > 1:
                out.append(ir.assign(ir.clone(s.targets[0]), elts[0], s))
            else:
                for n, e in zip(outs, elts):
                    if not (isinstance(e, gast.Name) and e.id == n):
                        out.append(ir.assign(n, e, s))
        elif not (isinstance(res, gast.Name) and res.id == outs[0]):
            out.append(ir.assign(outs[0], res, s))
        return True

    def getitem(self, s, op, out):
        x, idx = op.args["x"], op.args["idx"]
        if not self.is_b(x):
            raise self.error("internal: an unbatched getitem with unbatched index reached the rule")
        out.append(ir.assign(ir.clone(s.targets[0]),
                             gast.Subscript(value=x, slice=self.batch_index(idx, out), ctx=gast.Load()), s))

    def batch_index(self, idx, out):
        """The index of the batched value for per-example index `idx`."""
        elts = idx.elts if isinstance(idx, gast.Tuple) else [idx]
        if any(isinstance(e, gast.Constant) and e.value is Ellipsis for e in elts):
            return gast.Tuple(elts=[ir.clone(e) for e in elts] + [gast.Slice(lower=None, upper=None, step=None)],
                              ctx=gast.Load())
        if isinstance(idx, gast.Name) and not self.is_int(idx.id):
            # a runtime index value may hold an Ellipsis
            self.ns["batch_index"] = batching.batch_index
            n = self.namer.fresh(f"{idx.id}_b")
            out.append(ir.assign(n, ir.call(ir.name("batch_index"), [ir.clone(idx)]), self.loc))
            return ir.name(n)
        return idx

    def is_int(self, name):
        return name in self.int_names

    @property
    def int_names(self):
        names = getattr(self, "_int_names", None)
        if names is None:
            names = set()
            for n in gast.walk(self.c.fdef):
                if isinstance(n, gast.For) and isinstance(n.target, gast.Name):
                    names.add(n.target.id)   # loops run over ranges
            self._int_names = names
        return names

    def setitem(self, s, out):
        t = s.targets[0]
        base = t.value.id
        if base not in self.b:
            out.append(s)
            return
        if self.is_b(t.slice):
            out.extend(self.loop_over_batch([s], "an in-place write at a batched index", []))
            return
        value = s.value
        pre = []
        if not self.is_b(value):
            value = self.expand(value, pre) if isinstance(value, gast.Name) else value
        out.extend(pre)
        new_t = gast.Subscript(value=ir.name(base, gast.Load()), slice=self.batch_index(t.slice, out),
                               ctx=gast.Store())
        out.append(ir.assign(new_t, value, s))

    def container(self, s, op, outs, out):
        items = op.args["items"]
        t = s.targets[0]
        if isinstance(t, gast.Tuple):
            # an unpacking of a literal: element by element
            for e, v in zip(t.elts, items.elts):
                self.assign(ir.assign(ir.clone(e), ir.clone(v), s), out)
            return
        if outs[0] in self.b:
            pre = []
            elts = []
            for e in items.elts:
                elts.append(self.full(e, pre))
            out.extend(pre)
            out.append(ir.assign(ir.clone(t), type(items)(elts=elts, ctx=gast.Load()), s))
            return
        out.append(s)

    def expr_stmt(self, s, out):
        v = s.value
        if isinstance(v, gast.Call) and isinstance(v.func, gast.Attribute) and v.func.attr == "append" \
                and isinstance(v.func.value, gast.Name) and v.func.value.id in self.b:
            item = v.args[0]
            if not self.is_b(item):
                n = self.namer.fresh("item_b")
                out.append(ir.assign(n, self.broadcast(item), s))
                item = ir.name(n)
            out.append(ir.expr_stmt(ir.call(ir.attr(ir.name(v.func.value.id), "append"), [item]), s))
            return
        if isinstance(v, gast.Call) and self.is_b(v):
            try:
                op = ops.classify(v, self.ns)
            except KeyError:
                op = None
            if op is not None and op.kind == "call":
                self.user_call(s, op, [], out)
                return
            if op is not None and op.kind == "prim" and op.prim.batch is not None \
                    and self.apply_rule(s, op.prim, op, [], out):
                return
            if op is not None and op.kind == "prim":
                out.extend(self.loop_over_batch([s], f"{op.prim.label()} on a batched value", []))
                return
        out.append(s)

    def user_call(self, s, op, outs, out):
        mask = self.an.call_masks.get(id(s))
        if mask is None:
            mask = tuple(isinstance(a, gast.Name) and a.id in self.b for a in op.call_args)
        bc = batch_callee(op.callee, mask)
        name = bind_callee(self.ns, self.namer, bc)
        call = ir.call(ir.name(name), [ir.clone(a) for a in op.call_args])
        if isinstance(s, gast.Expr):
            out.append(ir.expr_stmt(call, s))
            return
        out.append(ir.assign(ir.clone(s.targets[0]), call, s))
        flags = bc.batched_out if bc.done else (True,) * len(outs)
        for n, f in zip(outs, flags):
            if n in self.b and not f:
                out.append(ir.assign(n, self.broadcast(ir.name(n)), s))

    # ---------------------------------------------------------------- select
    def select_blocker(self, s):
        """Why an `if` on a batched value cannot run both branches and select (None: it can)."""
        for blk in (s.body, s.orelse):
            for st in blk:
                if isinstance(st, gast.Pass):
                    continue
                if not isinstance(st, gast.Assign) or not isinstance(st.targets[0], (gast.Name, gast.Tuple)):
                    return "an `if` on a batched value whose branches are not plain assignments"
                try:
                    op = ops.classify(st.value, self.ns)
                except KeyError:
                    return "an `if` on a batched value whose branches are not plain assignments"
                if op.kind != "prim" or not (op.prim.elementwise or op.prim.name in ("copy", "tuple")
                                             or op.prim.name in META
                                             or (op.prim.batch is not None and not _may_raise(op.prim))):
                    return "an `if` on a batched value whose branches are not plain assignments"
                if op.prim.name in ("div", "floordiv", "mod", "pow"):
                    # a Python number may raise (1.0 / 0) in the branch not taken
                    if not any(n in self.an.batched for a in op.args.values() for n in _value_loads(a)):
                        return "an `if` on a batched value whose branches may raise"
        return None

    def select(self, s, out):
        test = s.test
        then_names, else_names = {}, {}
        for blk, names in ((s.body, then_names), (s.orelse, else_names)):
            for st in blk:
                if isinstance(st, gast.Pass):
                    continue
                st = _Rename(names).visit(ir.clone(st))
                batched = self.is_b(st.value)
                for n in _targets(st):
                    new = self.namer.fresh(n)
                    names[n] = new
                    if batched:
                        self.b.add(new)
                st.targets[0] = _RenameStores(names).visit(st.targets[0])
                self.assign(st, out)
        assigned = sorted(set(then_names) | set(else_names))
        self.ns["np"] = np
        for n in assigned:
            if not self.used_outside(n, s):
                continue
            a = then_names.get(n)
            b = else_names.get(n)
            if (a is None or b is None) and n in self.b and self.maybe_unassigned(n):
                # the examples that never assigned `n` take the branch's value (they do not
                # read `n` before they assign it)
                self.ns["select_assigned"] = batching.select_assigned
                new = self.expand(ir.name(a or b), out)
                args = [ir.clone(test), new, ir.name(n)] if a else [ir.clone(test), ir.name(n), new]
                out.append(ir.assign(n, ir.call(ir.name("select_assigned"), args), s))
                continue
            if a is None or b is None:
                other = n if n in self.defined else (a or b)
                a, b = a or other, b or other
            # an unbatched branch value gets a batch axis of length one (np.where broadcasts)
            va, vb = self.expand(ir.name(a), out), self.expand(ir.name(b), out)
            out.append(ir.assign(n, ir.call("np.where", [ir.clone(test), va, vb]), s))

    # ---------------------------------------------------------------- loops
    def loop_over_batch(self, stmts, reason, outs):
        """`stmts` (per-example code) run once per batch element; the batched values they
        read are sliced, the ones in `outs` stacked back along the batch."""
        size = self.batch_size_name()
        i = self.namer.fresh("i")
        body_mod = gast.Module(body=stmts, type_ignores=[])
        reads = set(_loads(body_mod))
        writes = _written(body_mod)
        local = {}
        for n in sorted((reads | writes) & self.b):
            local[n] = self.namer.fresh(f"{n}_i")
        new_stmts = [_Rename(local, stores=True).visit(ir.clone(st)) for st in stmts]
        pre = [ir.expr_stmt(ir.const(COMMENT + reason + ": a loop over the batch"), stmts[0])]
        lists = {}
        for n in outs:
            lists[n] = self.namer.fresh(f"{n}_items")
            pre.append(ir.assign(lists[n], gast.List(elts=[], ctx=gast.Load()), stmts[0]))
        head = []
        for n in sorted(local):
            if n in reads or n in self.defined:
                if n not in self.defined and n not in self.params:
                    continue
                if n in self.unbatched_params:
                    value = ir.name(n)
                elif n in self.lists or n in self.opaque or self.maybe_unassigned(n):
                    self.ns["example"] = batching.example
                    value = ir.call(ir.name("example"), [ir.name(n), ir.name(i)])
                else:
                    value = gast.Subscript(value=ir.name(n), slice=gast.Tuple(
                        elts=[ir.const(Ellipsis), ir.name(i)], ctx=gast.Load()), ctx=gast.Load())
                head.append(ir.assign(local[n], value, stmts[0]))
        # an output the statements may leave unassigned (and that was not defined before
        # them) is None for those examples; `stack_assigned` fills it in for them (the
        # program assigns it before it reads it there)
        maybe = [n for n in outs if n not in self.sure and n not in self.params]
        for n in maybe:
            if n not in self.defined:
                head.append(ir.assign(local.get(n, n), ir.const(None), stmts[0]))
        tail = [ir.expr_stmt(ir.call(ir.attr(ir.name(lists[n]), "append"), [ir.name(local.get(n, n))]), stmts[0])
                for n in outs]
        loop = ir.copy_loc(gast.For(target=ir.store(i), iter=ir.call(ir.name("range"), [ir.name(size)]),
                                    body=head + new_stmts + tail, orelse=[], type_comment=None), stmts[0])
        self.ns["np"] = np
        post = []
        for n in outs:
            if n in self.lists or n in self.opaque:
                self.ns["stack_examples"] = batching.stack_examples
                value = ir.call(ir.name("stack_examples"), [ir.name(lists[n])])
            elif n in maybe:
                self.ns["stack_assigned"] = batching.stack_assigned
                value = ir.call(ir.name("stack_assigned"), [ir.name(lists[n])])
            else:
                value = ir.call("np.stack", [ir.name(lists[n])], {"axis": ir.const(-1)})
            post.append(ir.assign(n, value, stmts[0]))
        return pre + [loop] + post


class _Rename(gast.NodeTransformer):
    def __init__(self, names, stores=False):
        self.names = names
        self.stores = stores

    def visit_Name(self, node):
        if node.id in self.names and (self.stores or isinstance(node.ctx, gast.Load)):
            return ir.copy_loc(gast.Name(id=self.names[node.id], ctx=node.ctx, annotation=None,
                                         type_comment=None), node)
        return node


class _RenameStores(gast.NodeTransformer):
    def __init__(self, names):
        self.names = names

    def visit_Name(self, node):
        if isinstance(node.ctx, gast.Store) and node.id in self.names:
            return gast.Name(id=self.names[node.id], ctx=node.ctx, annotation=None, type_comment=None)
        return node


def _opaque(fdef, params, lists, ns):
    """Variables that may hold a tuple or a list rather than an array (the residuals of a
    forward sweep and what is unpacked from them, results of calls): a loop over the batch
    slices and stacks them item by item."""
    out = set(lists)
    copies, items = [], []
    for n in gast.walk(fdef):
        if not isinstance(n, gast.Assign):
            continue
        t, v = n.targets[0], n.value
        if isinstance(t, gast.Tuple):
            if isinstance(v, gast.Name):
                out.add(v.id)
            out.update(e.id for e in t.elts if isinstance(e, gast.Name))
        elif isinstance(t, gast.Name):
            if isinstance(v, gast.Name):
                copies.append((t.id, v.id))
            elif isinstance(v, gast.Call):
                try:
                    if ops.classify(v, ns).kind == "call":
                        out.add(t.id)
                except KeyError:
                    pass
            elif isinstance(v, gast.Subscript) and isinstance(v.value, gast.Name):
                items.append((t.id, v.value.id))   # an item of a tape may be a tuple or a list
    changed = True
    while changed:
        changed = False
        for a, b in copies:
            if (a in out) != (b in out):
                out.update((a, b))
                changed = True
        for a, b in items:
            if b in out and a not in out:
                out.add(a)
                changed = True
    return out


def _return_atoms(r, n_out):
    if r is None:
        return []
    v = r.value
    if n_out == 1 and not isinstance(v, gast.Tuple):
        return [v]
    if isinstance(v, gast.Tuple):
        return list(v.elts)
    return [v]

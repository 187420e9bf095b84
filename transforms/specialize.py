"""Specialize: a normalized function + the layout of its arguments -> flat IR.

This pass is an abstract interpreter over the A-normal form. It resolves every name to
what it refers to at transform time, so that the passes after it see only primitives,
calls of generated functions, and control flow over flat runtime variables:

- names resolve to objects (globals, closure cells, builtins, imports inside the
  function); NumPy functions and array methods become canonical primitive calls
  (``x.sum(axis=1)`` -> ``np.sum(x, axis=1)``, ``x.T`` -> ``np.transpose(x)``);
- tuples, lists, dicts and namedtuples with a layout known at transform time are
  flattened into their leaves (``params['W']`` -> the variable ``params_W``); a list that
  grows in a loop stays a runtime list;
- values known at transform time are folded (``if axis is None``, ``len(params)``);
- nested defs and lambdas become separate generated functions that receive the values
  they close over as arguments; ``functools.partial`` is applied at transform time;
- calls of user functions become calls of their specializations (cached by the
  argument layout; recursion allowed); transform applications (``ad.grad(g)(x)``) are
  evaluated to calls of the generated functions; ``stop_gradient`` and custom-rule
  functions stay visible to the derivative passes.

A variable keeps one layout on all paths: where two paths disagree (a number on one,
a runtime value on the other; a tuple built from different variables) the variable is
*pinned* to a layout and both paths are specialized again writing into it.
"""

from __future__ import annotations

import builtins
import copy
import functools
import importlib
import operator
import sys
import sysconfig
import types

import gast
import numpy as np

from s2sad.errors import TransformError
from s2sad.runtime import registry
from s2sad.transforms import ir, ops
from s2sad.transforms.naming import reserved, Namer, names_in
from s2sad.transforms.values import (fdef_key, 
    AV, Closure, Const, DictV, Dyn, IterV, Lit, PartialV, RtList, SClosure, SConst, SLeaf, STup,
    SDict, TransformV, Tup, Undefined, count_leaves, flatten, is_literal, is_namedtuple_class,
    is_number, leaf_paths, unflatten)

_UNDEF = Undefined()


class StaticRequired(Exception):
    """A value had to be known at transform time but is a runtime value."""


class _Retry(Exception):
    pass


# ------------------------------------------------------------------------- Spec

class Spec(ops.Callee):
    """A user function specialized to an argument layout: flat IR + namespace."""

    kind = "primal"

    def __init__(self, key, origin, name, filename):
        self.key = key
        self.origin = origin          # Python function, Closure, or custom-rule object
        self.name = name
        self.filename = filename
        self.fdef = None              # the flat IR FunctionDef
        self.namespace = {}
        self.params = []              # flat parameter names
        self.arg_skels = ()           # layout of the arguments
        self.out_skel = None          # layout of the result (None while in progress)
        self.custom = None            # custom_jvp / custom_vjp object
        self.deps = []                # (mapping, name, object) read at transform time
        self.done = False
        self.recursive = False

    def __repr__(self):
        return f"<spec {self.name}>"

    @property
    def n_out(self):
        return count_leaves(self.out_skel) if self.out_skel is not None else 1


_SPECS: dict = {}
_NORMALIZED: dict = {}


def deps_valid(deps) -> bool:
    """Do the names generated code read at transform time still mean the same objects?"""
    for mapping, name, obj in deps:
        if isinstance(mapping, types.CellType):
            try:
                if mapping.cell_contents is not obj:
                    return False
            except ValueError:
                return False
        elif mapping.get(name, _MISSING) is not obj:
            return False
    return True


def _valid(spec) -> bool:
    return deps_valid(spec.deps)


_MISSING = object()


_LIBRARY: dict = {}
_PATHS = None


def _is_library_function(fn) -> bool:
    """Functions from the standard library, NumPy, SciPy and Numba are not user code."""
    code = getattr(fn, "__code__", None)
    if code is None:
        return True
    hit = _LIBRARY.get(code)
    if hit is None:
        hit = _LIBRARY[code] = _library_code(fn, code)
    return hit


def _library_code(fn, code) -> bool:
    global _PATHS
    filename = code.co_filename
    if filename.startswith("<"):
        return False
    mod = getattr(fn, "__module__", "") or ""
    root = mod.split(".")[0]
    if root in ("numpy", "scipy", "numba", "optree", "gast", "beniget", "jax", "torch"):
        return True
    if root == "s2sad":
        return not (mod.startswith("s2sad.runtime.loops") or mod.startswith("s2sad.runtime.custom"))
    if _PATHS is None:
        paths = sysconfig.get_paths()
        _PATHS = (paths["stdlib"], paths["purelib"])
    stdlib, purelib = _PATHS
    if filename.startswith(stdlib) and not filename.startswith(purelib):
        return True
    return False


def normalized_of(fn):
    """(Captured, normalized FunctionDef, Namer) for a Python function, cached."""
    from s2sad.transforms.capture import capture
    from s2sad.transforms.normalize import normalize
    key = fn
    hit = _NORMALIZED.get(key)
    if hit is not None and hit[0].fn.__code__ is fn.__code__:
        return hit
    cap = capture(fn)
    node, namer = normalize(cap.node, cap.filename)  # generated code too: it is Python
    hit = (cap, node, namer)
    _NORMALIZED[key] = hit
    return hit


# ----------------------------------------------------------------------- Scope

class Scope:
    """Where names are looked up while specializing one function."""

    def __init__(self, globals_, builtins_, closure=None, captured=None, filename="<unknown>",
                 deps=None, cells=None):
        self.env: dict = {}
        self.globals = globals_
        self.builtins = builtins_
        self.closure = closure or {}      # free name -> value (closure cells)
        self.cells = cells or {}          # free name -> cell (for cache validation)
        self.captured = captured or {}    # free name -> AV (nested function)
        self.filename = filename
        self.deps = deps if deps is not None else []

    def copy_env(self):
        return dict(self.env)


# --------------------------------------------------------------------- Builder

_ARRAY_METHODS = {
    # name: (numpy function, how the method's arguments map)
    "sum": (np.sum, "plain"), "mean": (np.mean, "plain"), "prod": (np.prod, "plain"),
    "max": (np.max, "plain"), "min": (np.min, "plain"), "cumsum": (np.cumsum, "plain"),
    "cumprod": (np.cumprod, "plain"), "var": (np.var, "plain"), "std": (np.std, "plain"),
    "all": (np.all, "plain"), "any": (np.any, "plain"), "argmax": (np.argmax, "plain"),
    "argmin": (np.argmin, "plain"), "dot": (np.dot, "plain"), "clip": (np.clip, "plain"),
    "round": (np.round, "plain"), "trace": (np.trace, "plain"), "diagonal": (np.diagonal, "plain"),
    "conj": (np.conj, "plain"), "conjugate": (np.conj, "plain"), "copy": (np.copy, "plain"),
    "squeeze": (np.squeeze, "plain"), "swapaxes": (np.swapaxes, "plain"),
    "ravel": (np.ravel, "plain"), "flatten": (np.ravel, "plain"),
    "reshape": (np.reshape, "shape"), "transpose": (np.transpose, "axes"),
    "nonzero": (np.nonzero, "plain"), "repeat": (np.repeat, "plain"),
}
_KEPT_METHODS = {"astype", "item"}  # stay method calls (primitives "method.<name>")


class Builder:
    """Specializes one function body into a Spec."""

    def __init__(self, spec: Spec, scope: Scope, namer: Namer, loc_node=None):
        self.spec = spec
        self.scope = scope
        self.namer = namer
        self.ns = spec.namespace
        self.filename = scope.filename
        self.pins: dict = {}
        self.out_skels: list = []
        self.loops: list = []   # stack of dicts(breaks=[], continues=[])
        self.loc = loc_node
        self.original_names = set()
        self.stored = set()

    # ---------------------------------------------------------------- errors
    def error(self, message, hint=None, node=None):
        node = node if node is not None else self.loc
        return TransformError(message, filename=self.filename,
                              lineno=getattr(node, "lineno", None), hint=hint)

    # --------------------------------------------------------------- lookups
    def lookup(self, name):
        sc = self.scope
        if name in sc.env:
            v = sc.env[name]
            if isinstance(v, Undefined):
                raise self.error(f"the variable {name!r} may be used before it is assigned")
            return v
        if name in sc.captured:
            return sc.captured[name]
        if name in sc.closure:
            value = sc.closure[name]
            if name in sc.cells:
                sc.deps.append((sc.cells[name], name, value))
            return self.from_static(value, name)
        if name in sc.globals:
            value = sc.globals[name]
            sc.deps.append((sc.globals, name, value))
            return self.from_static(value, name)
        b = sc.builtins
        if name in b:
            return Const(b[name], name)
        raise self.error(f"name {name!r} is not defined")

    def from_static(self, value, hint="c"):
        if isinstance(value, np.generic) and not isinstance(value, np.ndarray):
            value = value.item() if value.dtype.kind in "biufc" else value
        if isinstance(value, tuple) and is_namedtuple_class(type(value)):
            return Tup(tuple(self.from_static(v, f"{hint}_{f}") for f, v in zip(value._fields, value)),
                       type(value))
        if type(value) in (tuple, list):
            return Tup(tuple(self.from_static(v, f"{hint}_{i}") for i, v in enumerate(value)), type(value))
        if type(value) is dict:
            keys = tuple(sorted(value, key=_dict_sort_key))
            return DictV(keys, tuple(self.from_static(value[k], f"{hint}_{k}") for k in keys))
        return Const(value, hint)

    # ----------------------------------------------------------------- atoms
    def atom(self, node):
        """AV of an IR atom or dotted name."""
        if isinstance(node, gast.Name):
            return self.lookup(node.id)
        if isinstance(node, gast.Constant):
            return Const(node.value)
        if isinstance(node, gast.Attribute):
            return self.attribute(self.atom(node.value), node.attr, None)
        if isinstance(node, gast.Starred):
            raise self.error("starred value in this position is not supported")
        raise self.error(f"internal: unexpected atom {type(node).__name__}")

    def bind_const(self, obj, hint):
        """A name in the generated namespace bound to `obj`."""
        for k, v in self.ns.items():
            if v is obj:
                return k
        if isinstance(obj, types.ModuleType) and obj is np:
            self.ns["np"] = np
            return "np"
        spelled = _numpy_spelling(obj)
        if spelled:
            self.ns.setdefault("np", np)
            return spelled
        base = _clean_hint(hint)
        name = base
        i = 1
        while name in self.ns or (name in self.namer.taken and not self.bindable(name)
                                  and not (name in reserved() and name not in self.original_names)):
            if self.ns.get(name) is obj:
                return name
            name = f"{base}_{i}"
            i += 1
        self.namer.reserve(name)
        self.ns[name] = obj
        return name

    def bindable(self, name):
        """A source name that never holds a runtime value here can name a constant."""
        return name in self.original_names and name not in self.stored

    def emit_atom(self, av, for_call=True):
        """An atom (or literal tuple) that denotes `av` in generated code."""
        if isinstance(av, (Dyn, RtList)):
            return ir.name(av.var)
        if isinstance(av, Lit):
            return ir.const(av.value)
        if isinstance(av, Const):
            v = av.value
            if isinstance(v, np.generic) and not isinstance(v, np.ndarray) and v.dtype.kind in "biufc":
                v = v.item()
            if is_literal(v):
                return ir.const(v)
            if isinstance(v, slice):
                return ir.call(ir.name(self.bind_const(slice, "slice")),
                               [self.emit_atom(Const(v.start)), self.emit_atom(Const(v.stop)),
                                self.emit_atom(Const(v.step))])
            return ir.dotted(self.bind_const(v, av.hint))
        if isinstance(av, Tup):
            return ir.tuple_([self.emit_atom(i) for i in av.items])
        if isinstance(av, DictV):
            return gast.Dict(keys=[ir.const(k) for k in av.keys],
                             values=[self.emit_atom(i) for i in av.items])
        if isinstance(av, (Closure, PartialV, TransformV)):
            raise self.error("a function value cannot be passed to a NumPy primitive")
        if isinstance(av, IterV):
            raise self.error(f"a {av.kind} object cannot be used as an array here")
        raise self.error(f"internal: cannot emit {av!r}")

    # ---------------------------------------------------------------- writes
    def before_write(self, var, out):
        """`var` is about to be reassigned: values that alias it get their own copy."""
        env = self.scope.env
        for k, v in list(env.items()):
            if k == var:
                continue
            if v == Dyn(var):
                if k in self.pins:
                    continue
                out.append(ir.assign(k, ir.name(var), self.loc))
                env[k] = Dyn(k)
            elif v == RtList(var):
                out.append(ir.assign(k, ir.name(var), self.loc))
                env[k] = RtList(k)
            elif _mentions(v, var):
                env[k] = self._snapshot(v, var, out)

    def _snapshot(self, av, var, out):
        if av == Dyn(var) or av == RtList(var):
            new = self.namer.fresh(f"{var}_old")
            out.append(ir.assign(new, ir.name(var), self.loc))
            return Dyn(new) if isinstance(av, Dyn) else RtList(new)
        if isinstance(av, Tup):
            return Tup(tuple(self._snapshot(i, var, out) for i in av.items), av.kind)
        if isinstance(av, DictV):
            return DictV(av.keys, tuple(self._snapshot(i, var, out) for i in av.items))
        if isinstance(av, PartialV):
            return PartialV(self._snapshot(av.func, var, out),
                            tuple(self._snapshot(a, var, out) for a in av.args),
                            tuple((k, self._snapshot(v, var, out)) for k, v in av.kwargs))
        if isinstance(av, Closure) and av.frame is None:
            cap = {k: self._snapshot(v, var, out) for k, v in av.captured.items()}
            return Closure(av.fdef, av.name, None, cap, av.defaults, av.kw_defaults, av.globals,
                           av.builtins, av.filename, av.decorators)
        return av

    def bind_var(self, name, av, out):
        """Bind user/IR variable `name` to `av` (emitting copies where needed)."""
        env = self.scope.env
        if name in self.pins:
            self.materialize(av, self.pins[name], out)
            env[name] = self.pins[name]
            return
        if isinstance(av, Const) and is_number(av.value):
            env[name] = av
        elif isinstance(av, (Dyn, RtList)):
            env[name] = av
        else:
            env[name] = av

    def materialize(self, av, layout, out):
        """Emit copies so that `layout` (pinned variables) holds the value `av`."""
        if isinstance(layout, Dyn):
            if av == layout:
                return
            if isinstance(av, Tup) or isinstance(av, DictV) or isinstance(av, RtList):
                raise self.error(f"the variable {layout.var!r} holds a runtime value on one path "
                                 f"and a {_kind_name(av)} on another",
                                 hint="give it the same kind of value on every path")
            if not isinstance(av, (Dyn, Const)) or (isinstance(av, Const) and not _joinable(av.value)):
                raise self.error(f"the variable {layout.var!r} holds {_kind_name(av)} on one path "
                                 f"and a runtime value on another",
                                 hint="give it the same kind of value on every path")
            self.before_write(layout.var, out)
            value = self.emit_atom(av)
            if isinstance(av, Const) and _is_array(av.value):
                # an array from outside the function becomes a variable: its own copy (the
                # function may write into the variable)
                value = ir.call("np.copy", [value])
                self.ns.setdefault("np", np)
            out.append(ir.assign(layout.var, value, self.loc))
            return
        if isinstance(layout, RtList):
            if av == layout:
                return
            if isinstance(av, RtList):
                out.append(ir.assign(layout.var, ir.name(av.var), self.loc))
                return
            if isinstance(av, Tup) and av.kind is list:
                if any(not isinstance(i, (Dyn, Const)) for i in av.items):
                    raise self.error("a list that grows at run time can only hold arrays and numbers")
                self.before_write(layout.var, out)
                out.append(ir.assign(layout.var, gast.List(elts=[self.emit_atom(i) for i in av.items],
                                                           ctx=gast.Load()), self.loc))
                return
            raise self.error(f"the variable {layout.var!r} holds a list on one path and "
                             f"{_kind_name(av)} on another")
        if isinstance(layout, Tup):
            if not isinstance(av, Tup) or len(av.items) != len(layout.items):
                raise self.error(f"a variable holds tuples of different lengths or kinds on "
                                 f"different paths ({_kind_name(av)})",
                                 hint="keep the same structure on every path")
            for a, l in zip(av.items, layout.items):
                self.materialize(a, l, out)
            return
        if isinstance(layout, DictV):
            if not isinstance(av, DictV) or av.keys != layout.keys:
                raise self.error("a variable holds dicts with different keys on different paths")
            for a, l in zip(av.items, layout.items):
                self.materialize(a, l, out)
            return
        if av != layout:
            raise self.error(f"a variable holds {_kind_name(av)} on one path and "
                             f"{_kind_name(layout)} on another",
                             hint="a function or static value must be the same on every path")

    def make_layout(self, name, values):
        """A pinned layout able to hold every value in `values`."""
        vals = [v for v in values if not isinstance(v, Undefined)]
        if all(isinstance(v, (Dyn, Const)) for v in vals) and \
                all(not isinstance(v, Const) or _joinable(v.value) for v in vals) and \
                any(not isinstance(v, Const) or _runtime_ok(v.value) for v in vals):
            return Dyn(name)
        if any(isinstance(v, RtList) for v in vals) or \
                (all(isinstance(v, (Tup, RtList)) for v in vals)
                 and all(isinstance(v, RtList) or v.kind is list for v in vals)
                 and len({len(v.items) for v in vals if isinstance(v, Tup)} | set()) > 1):
            return RtList(name)
        if all(isinstance(v, Tup) for v in vals):
            n = {len(v.items) for v in vals}
            kinds = {v.kind for v in vals}
            if len(n) == 1 and len(kinds) == 1:
                k = kinds.pop()
                fields = getattr(k, "_fields", None)
                items = tuple(self.make_layout(self.namer.fresh(f"{name}_{fields[i] if fields else i}"),
                                               [v.items[i] for v in vals]) for i in range(n.pop()))
                return Tup(items, k)
        if all(isinstance(v, DictV) for v in vals):
            keys = {v.keys for v in vals}
            if len(keys) == 1:
                ks = keys.pop()
                items = tuple(self.make_layout(self.namer.fresh(f"{name}_{k}"),
                                               [v.items[i] for v in vals]) for i, k in enumerate(ks))
                return DictV(ks, items)
        if all(v == vals[0] for v in vals):
            return vals[0]
        kinds = ", ".join(sorted({_kind_name(v) for v in vals}))
        raise self.error(f"the variable {name!r} holds different kinds of values on different "
                         f"paths ({kinds})", hint="give it the same kind of value on every path")

    # --------------------------------------------------------------- blocks
    def block(self, stmts, out) -> bool:
        """Specialize statements into `out`; returns whether the end is reachable."""
        for i, s in enumerate(stmts):
            saved = self.loc
            self.loc = s
            self._next = stmts[i + 1:]
            try:
                reach = self.stmt(s, out)
            except TransformError as e:
                raise e.located(self.filename, getattr(s, "lineno", None))
            except (StaticRequired, _Retry):
                raise
            except RecursionError:
                raise
            except Exception as e:  # an internal error: report it at the user's line
                raise TransformError(f"internal error while transforming this line: "
                                     f"{type(e).__name__}: {e}", filename=self.filename,
                                     lineno=getattr(s, "lineno", None)) from e
            finally:
                self.loc = saved
            if not reach:
                return False
        return True

    def stmt(self, s, out) -> bool:
        if isinstance(s, gast.Assign):
            self.assign(s, out)
        elif isinstance(s, gast.Expr):
            self.expr_stmt(s, out)
        elif isinstance(s, gast.If):
            return self.if_stmt(s, out)
        elif isinstance(s, gast.For):
            return self.for_stmt(s, out)
        elif isinstance(s, gast.While):
            return self.while_stmt(s, out)
        elif isinstance(s, gast.Return):
            self.return_stmt(s, out)
            return False
        elif isinstance(s, gast.Break):
            if not self.loops:
                raise self.error("`break` outside a loop")
            self.loops[-1]["breaks"].append(self.scope.copy_env())
            out.append(ir.copy_loc(gast.Break(), s))
            return False
        elif isinstance(s, gast.Continue):
            if not self.loops:
                raise self.error("`continue` outside a loop")
            self.loops[-1]["continues"].append(self.scope.copy_env())
            out.append(ir.copy_loc(gast.Continue(), s))
            return False
        elif isinstance(s, gast.Pass):
            pass
        elif isinstance(s, gast.Raise):
            self.raise_stmt(s, out)
            return False
        elif isinstance(s, gast.Try):
            return self.try_stmt(s, out)
        elif isinstance(s, gast.FunctionDef):
            self.def_stmt(s, out)
        elif isinstance(s, (gast.Import, gast.ImportFrom)):
            self.import_stmt(s)
        else:
            raise self.error(f"unsupported statement {type(s).__name__}")
        return True

    # ------------------------------------------------------------ statements
    def assign(self, s, out):
        target = s.targets[0]
        if isinstance(target, gast.Subscript):
            self.setitem(target, s.value, out)
            return
        name = target.id
        av = self.expr(s.value, name, out)
        self.bind_var(name, av, out)

    def setitem(self, target, value, out):
        name = target.value.id
        base = self.lookup(name)
        v = self.atom(value)
        if isinstance(base, Tup) and base.kind is list:
            key = self.static_index(target.slice)
            items = list(base.items)
            items[key] = v
            self.bind_var(name, Tup(tuple(items), list), out)
            return
        if isinstance(base, (Dyn, RtList)):
            if isinstance(v, (Tup, DictV)) and isinstance(base, RtList):
                raise self.error("a list that is written at run time can only hold arrays and numbers")
            idx = self.index_node(target.slice)
            sub = gast.Subscript(value=ir.name(base.var), slice=idx, ctx=gast.Store())
            out.append(ir.assign(sub, self.emit_atom(v), self.loc))
            return
        if isinstance(base, Const):
            raise self.error(f"in-place write into {name!r}, a value from outside the function",
                             hint=f"copy it first: {name} = {name}.copy()")
        raise self.error(f"cannot assign an item of {_kind_name(base)}")

    def expr_stmt(self, s, out):
        v = s.value
        if isinstance(v, gast.Call):
            self.call_node(v, None, out, discard=True)
        else:
            self.expr(v, None, out)

    def if_stmt(self, s, out) -> bool:
        test = self.atom(s.test)
        if isinstance(test, Const) or isinstance(test, (Tup, DictV, Closure, PartialV, TransformV)):
            value = test.value if isinstance(test, Const) else _static_truth(test)
            try:
                taken = bool(value)
            except Exception:
                raise self.error("the truth value of this condition is unknown at transform time")
            return self.block(s.body if taken else s.orelse, out)
        if isinstance(test, RtList):
            test_atom = ir.call(ir.name(self.bind_const(len, "len")), [ir.name(test.var)])
            cond = self.namer.fresh("nonempty")
            out.append(ir.assign(cond, test_atom, self.loc))
            test = Dyn(cond)
        for _ in range(6):
            entry = self.scope.copy_env()
            b_out, o_out = [], []
            self.scope.env = dict(entry)
            reach_b = self.block(s.body, b_out)
            env_b = self.scope.env
            self.scope.env = dict(entry)
            reach_o = self.block(s.orelse, o_out)
            env_o = self.scope.env
            ends = ([env_b] if reach_b else []) + ([env_o] if reach_o else [])
            conflicts = _conflicts(ends)
            if not conflicts:
                break
            self.scope.env = entry
            self.pin(conflicts, ends, out)
        else:
            raise self.error("internal: branch layouts did not settle")
        out.append(ir.if_(ir.name(test.var), b_out or [gast.Pass()], o_out, s))
        self.scope.env = _merge(ends) if ends else entry
        return bool(ends)

    def pin(self, conflicts, ends, out):
        """Pin conflicting variables and materialize their current values."""
        env = self.scope.env
        for var in sorted(conflicts):
            values = [e.get(var, _UNDEF) for e in ends] + [env.get(var, _UNDEF)]
            layout = self.make_layout(var, values)
            self.pins[var] = layout
            cur = env.get(var, _UNDEF)
            if not isinstance(cur, Undefined):
                self.materialize(cur, layout, out)
                env[var] = layout

    def loop(self, out, header_setup, body_stmts, make_node):
        """Shared fixpoint for `for` and `while` loops.

        `header_setup(body_out)` binds the loop variables at the top of the body;
        `make_node(body_out)` builds the loop statement.
        """
        for _ in range(8):
            entry = self.scope.copy_env()
            self.loops.append({"breaks": [], "continues": []})
            body_out = []
            self.scope.env = dict(entry)
            try:
                header_setup(body_out)
                reach = self.block(body_stmts, body_out)
            finally:
                ctx = self.loops.pop()
            ends = ([self.scope.env] if reach else []) + ctx["continues"]
            conflicts = set()
            for e in ends + ctx["breaks"]:
                for var, hv in entry.items():
                    ev = e.get(var, hv)
                    if not _same(ev, hv):
                        conflicts.add(var)
            # Variables first bound in the body must agree between ends and breaks.
            exits = ends + ctx["breaks"]
            body_vars = set().union(*[set(e) for e in exits]) - set(entry) if exits else set()
            for var in body_vars:
                vals = [e.get(var, _UNDEF) for e in exits]
                defined = [v for v in vals if not isinstance(v, Undefined)]
                if any(not _same(v, defined[0]) for v in defined):
                    conflicts.add(var)
            if not conflicts:
                break
            self.scope.env = entry
            all_ends = exits + [entry]
            self.pin(conflicts, all_ends, out)
        else:
            raise self.error("internal: loop layouts did not settle")
        out.append(make_node(body_out))
        exit_envs = [entry] + ends + ctx["breaks"]
        self.scope.env = _merge(exit_envs, loose=True)
        return True

    def for_stmt(self, s, out) -> bool:
        it = self.atom(s.iter)
        tname = s.target.id
        if isinstance(it, (Tup, DictV)):
            items = it.items if isinstance(it, Tup) else tuple(Const(k) for k in it.keys)
            return self.unrolled(tname, items, s.body, out)
        if isinstance(it, IterV) and it.kind == "range":
            args = it.args
            if all(isinstance(a, Const) for a in args):
                rng = range(*[a.value for a in args])
                if len(rng) == 0:
                    return True
            try:
                return self.range_loop(s, tname, args, out)
            except StaticRequired:
                if all(isinstance(a, Const) for a in args) and len(range(*[a.value for a in args])) <= 4096:
                    items = tuple(Const(v) for v in range(*[a.value for a in args]))
                    return self.unrolled(tname, items, s.body, out)
                raise
        if isinstance(it, IterV):
            return self.iter_loop(s, tname, it, out)
        if isinstance(it, (Dyn, RtList)) or (isinstance(it, Const) and isinstance(it.value, np.ndarray)):
            return self.iter_loop(s, tname, IterV("seq", (it,)), out)
        raise self.error(f"cannot loop over {_kind_name(it)}",
                         hint="loop over range(...), an array, a list, zip(...) or enumerate(...)")

    def range_loop(self, s, tname, args, out):
        pre = []
        self.before_write(tname, pre)
        out.extend(pre)
        rng = ir.call(ir.name(self.bind_const(range, "range")), [self.emit_atom(a) for a in args])

        def setup(body_out):
            self.scope.env[tname] = Dyn(tname)
            self.pins.pop(tname, None)

        def make(body_out):
            node = gast.For(target=ir.store(tname), iter=rng, body=body_out or [gast.Pass()],
                            orelse=[], type_comment=None)
            return ir.copy_loc(node, s)
        return self.loop(out, setup, s.body, make)

    def iter_loop(self, s, tname, it, out):
        """for v in seq / zip(...) / enumerate(...) / reversed(...) (nested too) -> a
        counted loop ``for i in range(n)`` whose body starts by reading the elements."""
        names = _unpack_names(s)
        if it.kind == "enumerate" and names and names[0] is not None:
            k = names[0]
            pre = []
            self.before_write(k, pre)
            out.extend(pre)
        else:
            k = self.namer.fresh("i")
        it = self._pin_sequences(it, s, out)
        n_atom = self._iter_len(it, out)
        rng = ir.call(ir.name(self.bind_const(range, "range")), [n_atom])
        top_seq = it.kind == "seq" and not _is_unpack_temp(s)

        def setup(body_out):
            self.scope.env[k] = Dyn(k)
            value = self._iter_elem(it, Dyn(k), body_out, names, tname if top_seq else None)
            self.bind_var(tname, value, body_out)

        def make(body_out):
            node = gast.For(target=ir.store(k), iter=rng, body=body_out or [gast.Pass()],
                            orelse=[], type_comment=None)
            return ir.copy_loc(node, s)
        return self.loop(out, setup, s.body, make)

    def _pin_sequences(self, it, s, out):
        """Python iterates over the object a sequence had when the loop started: a
        sequence variable that the loop rebinds is read through a name of its own."""
        stored = {n.id for st in s.body for n in gast.walk(st)
                  if isinstance(n, gast.Name) and isinstance(n.ctx, gast.Store)}
        stored |= {n.id for n in gast.walk(s.target) if isinstance(n, gast.Name)}
        env = self.scope.env

        def pin(a):
            if isinstance(a, IterV):
                return a if a.kind == "range" else IterV(a.kind, tuple(pin(x) for x in a.args))
            if isinstance(a, (Dyn, RtList)) and any(n in stored and v == a for n, v in env.items()):
                new = self.namer.fresh(f"{a.var}_seq")
                out.append(ir.assign(new, ir.name(a.var), self.loc))
                return type(a)(new)
            return a
        return pin(it)

    def _iter_len(self, it, out):
        """An expression for the number of elements of an iterator (statements into out)."""
        len_name = self.bind_const(len, "len")
        if it.kind == "seq":
            q = it.args[0]
            if isinstance(q, (Tup, DictV)):
                raise self.error("zip/enumerate over a tuple or dict known at transform time "
                                 "is not supported", hint="loop over range(len(...)) instead")
            return ir.call(ir.name(len_name), [self.emit_atom(q)])
        if it.kind == "range":
            r = ir.call(ir.name(self.bind_const(range, "range")), [self.emit_atom(a) for a in it.args])
            return ir.call(ir.name(len_name), [r])
        if it.kind == "zip":
            lens = [self._iter_len(_as_iter(a), out) for a in it.args]
            if len(lens) == 1:
                return lens[0]
            from s2sad.runtime import helpers
            name = self.bind_const(helpers.shortest, "shortest")
            n = lens[0]
            for m in lens[1:]:
                n = ir.call(ir.name(name), [n, m])
            return n
        if it.kind in ("enumerate", "reversed"):
            n = self._iter_len(_as_iter(it.args[0]), out)
            if it.kind == "reversed":
                name = self.namer.fresh("n")
                out.append(ir.assign(name, n, self.loc))
                self.scope.env[name] = Dyn(name)
                self._reversed_n = getattr(self, "_reversed_n", {})
                self._reversed_n[id(it)] = name
                return ir.name(name)
            return n
        raise self.error(f"cannot loop over a {it.kind} object")

    def _iter_elem(self, it, idx, out, names=None, name=None):
        """The element at index `idx` (an AV) of an iterator, reading arrays into `out`."""
        if it.kind == "seq":
            q = it.args[0]
            if name is None:
                name = self.namer.fresh(f"{q.var if isinstance(q, (Dyn, RtList)) else 'seq'}_item")
            self.before_write(name, out)
            sub = gast.Subscript(value=self.emit_atom(q), slice=self.emit_atom(idx), ctx=gast.Load())
            out.append(ir.assign(name, sub, self.loc))
            return Dyn(name)
        if it.kind == "range":
            a = it.args
            start = a[0] if len(a) > 1 else Const(0)
            step = a[2] if len(a) > 2 else Const(1)
            v = idx
            if not (isinstance(step, Const) and step.value == 1):
                v = self.binop(gast.BinOp(left=_AVAtom(v), op=gast.Mult(), right=_AVAtom(step)), None, out)
            if not (isinstance(start, Const) and start.value == 0):
                v = self.binop(gast.BinOp(left=_AVAtom(start), op=gast.Add(), right=_AVAtom(v)), None, out)
            return v
        if it.kind == "zip":
            items = []
            for j, a in enumerate(it.args):
                sug = names[j] if names and j < len(names) else None
                items.append(self._iter_elem(_as_iter(a), idx, out, None, sug))
            return Tup(tuple(items))
        if it.kind == "enumerate":
            start = it.args[1] if len(it.args) > 1 else Const(0)
            i = idx
            if not (isinstance(start, Const) and start.value == 0):
                i = self.binop(gast.BinOp(left=_AVAtom(idx), op=gast.Add(), right=_AVAtom(start)), None, out)
            sug = names[1] if names and len(names) > 1 else None
            return Tup((i, self._iter_elem(_as_iter(it.args[0]), idx, out, None, sug)))
        if it.kind == "reversed":
            n = self._reversed_n[id(it)]
            last = self.binop(gast.BinOp(left=ir.name(n), op=gast.Sub(), right=ir.const(1)), None, out)
            ri = self.binop(gast.BinOp(left=_AVAtom(last), op=gast.Sub(), right=_AVAtom(idx)), None, out)
            return self._iter_elem(_as_iter(it.args[0]), ri, out, names, name)
        raise self.error(f"cannot loop over a {it.kind} object")

    def unrolled(self, tname, items, body, out) -> bool:
        for item in items:
            self.bind_var(tname, item, out)
            self.loops.append({"breaks": [], "continues": [], "unrolled": True})
            try:
                reach = self.block(body, out)
            finally:
                ctx = self.loops.pop()
            if ctx["breaks"] or ctx["continues"]:
                raise self.error("`break`/`continue` in a loop over a tuple or dict known at "
                                 "transform time is not supported",
                                 hint="use an if/else inside the loop body")
            if not reach:
                return False
        return True

    def while_stmt(self, s, out) -> bool:
        test = self.atom(s.test)
        if isinstance(test, (Tup, DictV, RtList, Closure, PartialV)):
            raise self.error("the condition of a while loop must be a number or boolean")
        if isinstance(s.test, gast.Constant):
            if not s.test.value:
                return True
            test_var = None
        else:
            test_var = s.test.id

        def setup(body_out):
            pass

        def make(body_out):
            t = ir.name(test_var) if test_var else ir.const(True)
            return ir.copy_loc(gast.While(test=t, body=body_out or [gast.Pass()], orelse=[]), s)

        if test_var is not None and test_var not in self.pins:
            # The test variable is reassigned at the end of the body: pin it.
            self.pins[test_var] = Dyn(test_var)
            cur = self.scope.env.get(test_var)
            if cur != Dyn(test_var):
                self.materialize(cur, Dyn(test_var), out)
                self.scope.env[test_var] = Dyn(test_var)
        return self.loop(out, setup, s.body, make)

    def return_stmt(self, s, out):
        av = _freeze(self, self.atom(s.value))
        # numbers and arrays known at transform time are returned as runtime values: an
        # output is never static (its derivatives are zeros, not the constant itself)
        av = self.as_leaves(self._numbers_to_leaves(av, out))
        skel, leaves = flatten(av)
        self.out_skels.append(skel)
        atoms = [self.emit_atom(l) for l in leaves]
        if len(atoms) == 1 and isinstance(skel, SLeaf):
            value = atoms[0]
        elif not atoms:
            value = ir.const(None)
        else:
            value = ir.tuple_(atoms)
        out.append(ir.copy_loc(gast.Return(value=value), s))

    def as_leaves(self, av):
        """Numbers and arrays known at transform time as runtime leaves (for tangents)."""
        if isinstance(av, Const) and isinstance(av.value, np.ndarray):
            return Dyn(self.bind_const(av.value, av.hint))
        if isinstance(av, Const) and _runtime_ok(av.value):
            v = av.value.item() if isinstance(av.value, np.generic) else av.value
            return Lit(v)
        if isinstance(av, Tup):
            return Tup(tuple(self.as_leaves(i) for i in av.items), av.kind)
        if isinstance(av, DictV):
            return DictV(av.keys, tuple(self.as_leaves(i) for i in av.items))
        return av

    def _numbers_to_leaves(self, av, out, hint="ret", keep_ints=False):
        """Numbers returned (or passed on) are runtime values, not static constants."""
        if isinstance(av, Const) and _runtime_ok(av.value):
            if keep_ints and isinstance(av.value, (bool, int)):
                return av
            v = av.value
            if isinstance(v, np.generic):
                v = v.item()
            if is_literal(v):
                return Lit(v)
            name = self.namer.fresh(hint)
            out.append(ir.assign(name, self.emit_atom(av), self.loc))
            return Dyn(name)
        if isinstance(av, Tup):
            return Tup(tuple(self._numbers_to_leaves(i, out, hint, keep_ints) for i in av.items), av.kind)
        if isinstance(av, DictV):
            return DictV(av.keys, tuple(self._numbers_to_leaves(i, out, hint, keep_ints) for i in av.items))
        return av

    def raise_stmt(self, s, out):
        exc = s.exc
        if exc is None:
            out.append(ir.copy_loc(gast.Raise(exc=None, cause=None), s))
            return
        if isinstance(exc, gast.Call):
            f = self.atom(exc.func)
            if not isinstance(f, Const) or not (isinstance(f.value, type) and issubclass(f.value, BaseException)):
                raise self.error("raise needs an exception class", node=s)
            args = [self.emit_atom(self.atom(a)) for a in exc.args]
            node = ir.call(ir.dotted(self.bind_const(f.value, f.value.__name__)), args)
        else:
            f = self.atom(exc)
            if isinstance(f, Const):
                node = ir.dotted(self.bind_const(f.value, getattr(f.value, "__name__", "exc")))
            else:
                node = self.emit_atom(f)
        out.append(ir.copy_loc(gast.Raise(exc=node, cause=None), s))

    def try_stmt(self, s, out) -> bool:
        assigned = _assigned_names(s.body)
        env = self.scope.env
        # Values reassigned in the body keep a fixed layout, so that a handler can
        # start from any point of the body.
        conflicts = {v for v in assigned if v in env and not isinstance(env[v], Undefined)
                     and v not in self.pins}
        if conflicts:
            self.pin(conflicts, [env], out)
        for _ in range(6):
            entry = self.scope.copy_env()
            body_out = []
            reach_b = self.block(s.body, body_out)
            ends = [self.scope.env] if reach_b else []
            handlers = []
            for h in s.handlers:
                self.scope.env = dict(entry)
                htype = None
                if h.type is not None:
                    t = self.atom(h.type)
                    if isinstance(t, Tup):
                        htype = ir.tuple_([ir.dotted(self.bind_const(i.value, i.value.__name__))
                                           for i in t.items])
                    elif isinstance(t, Const):
                        htype = ir.dotted(self.bind_const(t.value, getattr(t.value, "__name__", "exc")))
                    else:
                        htype = self.emit_atom(t)
                if h.name is not None:
                    self.scope.env[h.name] = Dyn(h.name)
                h_out = []
                reach_h = self.block(h.body, h_out)
                if reach_h:
                    ends.append(self.scope.env)
                handlers.append(ir.copy_loc(gast.ExceptHandler(
                    type=htype, name=ir.store(h.name) if h.name else None,
                    body=h_out or [gast.Pass()]), h))
            conflicts = _conflicts(ends)
            if not conflicts:
                break
            self.scope.env = entry
            self.pin(conflicts, ends, out)
        else:
            raise self.error("internal: try/except layouts did not settle")
        out.append(ir.copy_loc(gast.Try(body=body_out or [gast.Pass()], handlers=handlers,
                                        orelse=[], finalbody=[]), s))
        self.scope.env = _merge(ends) if ends else entry
        return bool(ends)

    def def_stmt(self, s, out):
        decorators = []
        for d in s.decorator_list:
            dv = self.func_value(d, out) if isinstance(d, (gast.Name, gast.Attribute)) else None
            from s2sad.transforms import pipeline
            if not (isinstance(dv, Const) and pipeline.is_transform(dv.value)):
                raise self.error("decorators on nested functions are not supported (except "
                                 "s2sad transforms such as @ad.checkpoint)",
                                 hint="define the decorated function at module level")
            decorators.append(dv)
        s = copy.copy(s)
        s.decorator_list = []
        defaults = tuple(self.atom(d) for d in s.args.defaults)
        kwd = {}
        for a, d in zip(s.args.kwonlyargs, s.args.kw_defaults):
            if d is not None:
                kwd[a.id] = self.atom(d)
        clo = Closure(s, s.name, self.scope, {}, defaults, kwd, self.scope.globals,
                      self.scope.builtins, self.filename)
        for dv in reversed(decorators):
            clo = self.call(dv, [clo], {}, None, out)
        self.bind_var(s.name, clo, out)

    def import_stmt(self, s):
        if isinstance(s, gast.Import):
            for a in s.names:
                mod = importlib.import_module(a.name)
                if a.asname:
                    self.scope.env[a.asname] = Const(mod, a.asname)
                else:
                    root = a.name.split(".")[0]
                    self.scope.env[root] = Const(sys.modules[root], root)
        else:
            if s.level:
                raise self.error("relative imports inside a differentiated function are not supported")
            mod = importlib.import_module(s.module)
            for a in s.names:
                value = getattr(mod, a.name)
                self.scope.env[a.asname or a.name] = self.from_static(value, a.asname or a.name)

    # ------------------------------------------------------------ expressions
    def target_name(self, target, hint_node):
        if target is not None:
            return target
        from s2sad.transforms.normalize import hint_of
        return self.namer.fresh(hint_of(hint_node))

    def emit_value(self, value_node, target, out, hint_node=None):
        """Emit `target = value_node`; returns Dyn(target)."""
        name = self.target_name(target, hint_node if hint_node is not None else value_node)
        self.before_write(name, out)
        out.append(ir.assign(name, value_node, self.loc))
        return Dyn(name)

    def expr(self, node, target, out):
        """Evaluate the right-hand side `node` (one operation); returns an AV."""
        if isinstance(node, (gast.Name, gast.Constant)):
            return self.atom(node)
        if isinstance(node, gast.Attribute):
            return self.attribute(self.atom(node.value), node.attr, target, out)
        if isinstance(node, gast.BinOp):
            return self.binop(node, target, out)
        if isinstance(node, gast.UnaryOp):
            return self.unaryop(node, target, out)
        if isinstance(node, gast.Compare):
            return self.compare(node, target, out)
        if isinstance(node, gast.Call):
            return self.call_node(node, target, out)
        if isinstance(node, gast.Subscript):
            return self.subscript(self.atom(node.value), node.slice, target, out)
        if isinstance(node, gast.Tuple):
            return Tup(tuple(self._elts(node.elts)), tuple)
        if isinstance(node, gast.List):
            return Tup(tuple(self._elts(node.elts)), list)
        if isinstance(node, gast.Dict):
            keys = []
            for k in node.keys:
                kv = self.atom(k)
                if not isinstance(kv, Const):
                    raise self.error("dict keys must be known at transform time (strings or numbers)")
                keys.append(kv.value)
            vals = [self.atom(v) for v in node.values]
            order = sorted(range(len(keys)), key=lambda i: _dict_sort_key(keys[i]))
            return DictV(tuple(keys[i] for i in order), tuple(vals[i] for i in order))
        if isinstance(node, gast.JoinedStr):
            values = []
            for v in node.values:
                if isinstance(v, gast.FormattedValue):
                    v = gast.FormattedValue(value=self.emit_atom(self.atom(v.value)),
                                            conversion=v.conversion, format_spec=v.format_spec)
                values.append(v)
            return self.emit_value(gast.JoinedStr(values=values), target, out)
        raise self.error(f"unsupported expression {type(node).__name__}")

    def _elts(self, elts):
        out = []
        for e in elts:
            if isinstance(e, gast.Starred):
                v = self.atom(e.value)
                if not isinstance(v, Tup):
                    raise self.error("only a tuple or list known at transform time can be unpacked with *")
                out.extend(v.items)
            else:
                out.append(self.atom(e))
        return out

    # attributes
    def attribute(self, av, attr, target, out=None):
        if isinstance(av, Const):
            obj = av.value
            try:
                value = getattr(obj, attr)
            except AttributeError:
                raise self.error(f"{_describe(obj)} has no attribute {attr!r}")
            if isinstance(obj, np.ndarray):
                return self.attribute(Dyn(self.bind_const(obj, av.hint)), attr, target, out)
            return self.from_static(value, attr)
        if isinstance(av, Tup):
            fields = getattr(av.kind, "_fields", None)
            if fields and attr in fields:
                return av.items[fields.index(attr)]
            raise self.error(f"a {_kind_name(av)} has no attribute {attr!r}")
        if isinstance(av, Dyn):
            if out is None:
                raise self.error(f"internal: attribute {attr} needs statements")
            if attr == "T":
                return self.prim_call(np.transpose, [av], {}, target, out)
            if attr in ("real", "imag"):
                return self.prim_call(getattr(np, attr), [av], {}, target, out)
            if attr in ops.META_ATTRS:
                node = gast.Attribute(value=ir.name(av.var), attr=attr, ctx=gast.Load())
                return self.emit_value(node, target, out)
            raise self.error(f"the array attribute {attr!r} is not supported",
                             hint="use the NumPy function instead")
        raise self.error(f"{_kind_name(av)} has no attribute {attr!r}")

    # operators
    def binop(self, node, target, out):
        left, right = self.atom(node.left), self.atom(node.right)
        key = ops.BINOP_KEYS[type(node.op)]
        if isinstance(left, Const) and isinstance(right, Const) and not _is_array(left.value) \
                and not _is_array(right.value):
            try:
                return self.from_static(registry.BINOP_FUNCS[key](left.value, right.value))
            except Exception as e:
                raise self.error(f"{type(e).__name__}: {e}")
        if isinstance(left, Tup) or isinstance(right, Tup):
            if key == "add" and isinstance(left, Tup) and isinstance(right, Tup):
                return Tup(left.items + right.items, left.kind)
            if key == "mul" and isinstance(left, Tup) and isinstance(right, Const):
                return Tup(left.items * right.value, left.kind)
            raise self.error(f"operator {key} on a {_kind_name(left if isinstance(left, Tup) else right)}",
                             hint="tuples and lists are containers here, not arrays; use np.array")
        value = gast.BinOp(left=self.emit_atom(left), op=node.op, right=self.emit_atom(right))
        return self.emit_value(value, target, out)

    def unaryop(self, node, target, out):
        x = self.atom(node.operand)
        if isinstance(x, Const) and not _is_array(x.value):
            f = {gast.USub: operator.neg, gast.UAdd: operator.pos, gast.Not: operator.not_,
                 gast.Invert: operator.invert}[type(node.op)]
            return self.from_static(f(x.value))
        if isinstance(node.op, gast.Not) and not isinstance(x, (Dyn, Const)):
            return Const(not _static_truth(x))
        if isinstance(node.op, gast.UAdd):
            return x
        value = gast.UnaryOp(op=node.op, operand=self.emit_atom(x))
        return self.emit_value(value, target, out)

    def compare(self, node, target, out):
        left, right = self.atom(node.left), self.atom(node.comparators[0])
        op = node.ops[0]
        if isinstance(op, (gast.Is, gast.IsNot)):
            if isinstance(left, Const) and isinstance(right, Const):
                r = left.value is right.value
            elif isinstance(left, (Dyn, RtList)) or isinstance(right, (Dyn, RtList)):
                other = right if isinstance(left, (Dyn, RtList)) else left
                if isinstance(other, Const) and other.value is None:
                    r = False  # a runtime value is never None
                elif isinstance(left, Dyn) and isinstance(right, Dyn) and left.var == right.var:
                    r = True
                else:
                    raise self.error("`is` between runtime values is not supported")
            else:
                r = left is right or (left == right)
            return Const(r if isinstance(op, gast.Is) else not r)
        if isinstance(op, (gast.In, gast.NotIn)):
            if isinstance(right, (Tup, DictV)) and isinstance(left, Const):
                keys = [i.value for i in right.items if isinstance(i, Const)] if isinstance(right, Tup) \
                    else list(right.keys)
                r = left.value in keys
                return Const(r if isinstance(op, gast.In) else not r)
            raise self.error("`in` is supported for tuples and dicts known at transform time only")
        if isinstance(left, Const) and isinstance(right, Const) and not _is_array(left.value) \
                and not _is_array(right.value):
            f = {gast.Lt: operator.lt, gast.LtE: operator.le, gast.Gt: operator.gt,
                 gast.GtE: operator.ge, gast.Eq: operator.eq, gast.NotEq: operator.ne}[type(op)]
            return Const(f(left.value, right.value))
        if isinstance(left, (Tup, DictV)) or isinstance(right, (Tup, DictV)):
            if isinstance(op, (gast.Eq, gast.NotEq)) and isinstance(left, Tup) and isinstance(right, Tup) \
                    and all(isinstance(i, Const) for i in left.items + right.items):
                r = [i.value for i in left.items] == [i.value for i in right.items]
                return Const(r if isinstance(op, gast.Eq) else not r)
            raise self.error("comparison of tuples or dicts with runtime values is not supported")
        value = gast.Compare(left=self.emit_atom(left), ops=[op], comparators=[self.emit_atom(right)])
        return self.emit_value(value, target, out)

    # indexing
    def static_index(self, idx):
        if isinstance(idx, gast.Slice):
            parts = [self.atom(p).value if p is not None else None for p in (idx.lower, idx.upper, idx.step)]
            for p, node in zip(parts, (idx.lower, idx.upper, idx.step)):
                if node is not None and not isinstance(self.atom(node), Const):
                    raise StaticRequired()
            return slice(*parts)
        if isinstance(idx, gast.Tuple):
            return tuple(self.static_index(e) for e in idx.elts)
        v = self.atom(idx)
        if not isinstance(v, Const):
            if isinstance(v, Tup) and all(isinstance(i, Const) for i in v.items):
                return tuple(i.value for i in v.items)
            raise StaticRequired()
        return v.value

    def index_node(self, idx):
        if isinstance(idx, gast.Slice):
            parts = [self.emit_atom(self.atom(p)) if p is not None else None
                     for p in (idx.lower, idx.upper, idx.step)]
            parts = [None if isinstance(p, gast.Constant) and p.value is None else p for p in parts]
            return gast.Slice(lower=parts[0], upper=parts[1], step=parts[2])
        if isinstance(idx, gast.Tuple):
            return gast.Tuple(elts=[self.index_node(e) for e in idx.elts], ctx=gast.Load())
        v = self.atom(idx)
        if isinstance(v, Tup) and v.kind is list:
            # x[[2, 0]]: a list of indices is one (fancy) index, not a tuple of them
            return gast.List(elts=[self._index_item(i) for i in v.items], ctx=gast.Load())
        if isinstance(v, Tup):
            return gast.Tuple(elts=[self._index_item(i) for i in v.items], ctx=gast.Load())
        return self._index_item(v)

    def _index_item(self, v):
        if isinstance(v, Const) and isinstance(v.value, slice):
            s = v.value
            return gast.Slice(lower=self.emit_atom(Const(s.start)) if s.start is not None else None,
                              upper=self.emit_atom(Const(s.stop)) if s.stop is not None else None,
                              step=self.emit_atom(Const(s.step)) if s.step is not None else None)
        if isinstance(v, Tup):
            return self.emit_atom(v)
        return self.emit_atom(v)

    def subscript(self, av, idx, target, out):
        if isinstance(av, Tup):
            key = self.static_index(idx)
            try:
                item = av.items[key]
            except (IndexError, TypeError) as e:
                raise self.error(f"index {key!r} into a {_kind_name(av)}: {e}")
            if isinstance(key, slice):
                return Tup(item, av.kind if not is_namedtuple_class(av.kind) else tuple)
            return item
        if isinstance(av, DictV):
            key = self.static_index(idx)
            try:
                return av.get(key)
            except KeyError:
                raise self.error(f"the dict has no key {key!r}")
        if isinstance(av, Const) and isinstance(av.value, (str, bytes)):
            return Const(av.value[self.static_index(idx)])
        if isinstance(av, Const) and not isinstance(av.value, np.ndarray):
            raise self.error(f"cannot index {_describe(av.value)}")
        base = self.emit_atom(av)
        value = gast.Subscript(value=base, slice=self.index_node(idx), ctx=gast.Load())
        hint = gast.Subscript(value=base if isinstance(base, gast.Name) else ir.name("x"),
                              slice=ir.const(0), ctx=gast.Load())
        return self.emit_value(value, target, out, hint_node=hint)

    # calls
    def call_node(self, node, target, out, discard=False):
        func = self.func_value(node.func, out)
        args = self._elts(node.args)
        kwargs = {}
        for k in node.keywords:
            if k.arg is None:
                d = self.atom(k.value)
                if not isinstance(d, DictV):
                    raise self.error("only a dict known at transform time can be unpacked with **")
                kwargs.update(dict(zip(d.keys, d.items)))
            else:
                kwargs[k.arg] = self.atom(k.value)
        return self.call(func, args, kwargs, target, out, discard)

    def func_value(self, node, out):
        if isinstance(node, gast.Attribute):
            recv = self.data_value(node.value, out)
            if isinstance(recv, (Dyn, RtList, Tup, DictV)) or \
                    (isinstance(recv, Const) and isinstance(recv.value, np.ndarray)):
                var = node.value.id if isinstance(node.value, gast.Name) else None
                return _Method(recv, node.attr, var)
            return self.attribute(recv, node.attr, None, out)
        return self.atom(node)

    def data_value(self, node, out):
        """The value of an attribute chain used as data (``x.T`` in ``x.T.ravel()``)."""
        if isinstance(node, gast.Attribute):
            return self.attribute(self.data_value(node.value, out), node.attr, None, out)
        return self.atom(node)

    def call(self, f, args, kwargs, target, out, discard=False):
        if isinstance(f, _Method):
            return self.method_call(f, args, kwargs, target, out, discard)
        if isinstance(f, Const):
            return self.call_static(f.value, args, kwargs, target, out, discard)
        if isinstance(f, Closure):
            return self.call_user(f, args, kwargs, target, out, discard)
        if isinstance(f, PartialV):
            merged = dict(f.kwargs)
            merged.update(kwargs)
            return self.call(f.func, list(f.args) + list(args), merged, target, out, discard)
        if isinstance(f, TransformV):
            from s2sad.transforms import pipeline
            return pipeline.call_transform(self, f, args, kwargs, target, out)
        raise self.error(f"cannot call {_kind_name(f)}",
                         hint="only functions known at transform time can be called")

    def call_static(self, obj, args, kwargs, target, out, discard):
        from s2sad.runtime import custom, helpers
        from s2sad.transforms import pipeline
        if obj is helpers.stop_gradient:
            if kwargs or len(args) != 1:
                raise self.error("stop_gradient takes one argument")
            return self.leafwise(args[0], lambda leaf: self.prim_call(helpers.stop_gradient, [leaf], {},
                                                                         None, out))
        if pipeline.is_transform(obj):
            return pipeline.transform_value(self, obj, args, kwargs, out)
        if getattr(obj, "__s2sad_transform__", False):
            # a transformed function (ad.grad(f), ...) called inside a function
            from s2sad.transforms.pipeline import _spec_for
            if kwargs:
                raise self.error("keyword arguments to a transformed function are not supported")
            callee, leaves = _spec_for(self, Const(obj), list(args), {}, out)
            return self.emit_call(callee, leaves, target, out, discard)
        if isinstance(obj, ops.Callee):
            return self.call_callee(obj, args, kwargs, target, out, discard)
        if isinstance(obj, (custom.custom_jvp, custom.custom_vjp)):
            return self.call_user(Const(obj), args, kwargs, target, out, discard)
        if isinstance(obj, custom.Checkpointed):
            from s2sad.transforms.checkpoint import checkpoint_callee
            spec, leaves = specialize_call(self, self.from_static(obj.fun, "f"), args, kwargs, out)
            return self.emit_call(checkpoint_callee(spec), leaves, target, out, discard)
        handler = _BUILTINS.get(id(obj))
        if handler is not None and handler[0] is obj:
            return handler[1](self, args, kwargs, target, out, discard)
        prim = registry.lookup_object(obj)
        if prim is not None:
            return self.prim_call(obj, args, kwargs, target, out, prim=prim)
        if isinstance(obj, functools.partial):
            inner = self.from_static(obj.func, getattr(obj.func, "__name__", "f"))
            pargs = tuple(self.from_static(a, f"arg{i}") for i, a in enumerate(obj.args))
            pkw = tuple(sorted((k, self.from_static(v, k)) for k, v in obj.keywords.items()))
            return self.call(PartialV(inner, pargs, pkw), args, kwargs, target, out, discard)
        if obj is functools.partial:
            if not args:
                raise self.error("partial needs a function")
            return PartialV(args[0], tuple(args[1:]), tuple(sorted(kwargs.items())))
        if is_namedtuple_class(obj):
            fields = obj._fields
            vals = list(args) + [None] * (len(fields) - len(args))
            for k, v in kwargs.items():
                vals[fields.index(k)] = v
            return Tup(tuple(vals), obj)
        if isinstance(obj, type) and issubclass(obj, BaseException):
            return Const(obj(*[a.value for a in args if isinstance(a, Const)]))
        if isinstance(obj, types.FunctionType) and not _is_library_function(obj):
            return self.call_user(Const(obj), args, kwargs, target, out, discard)
        if any(obj is b for b in _NAMESPACE_BUILTINS):
            raise self.error(f"`{obj.__name__}` is not supported in a differentiated function",
                             hint="s2sad reads the function's source once; code that runs or "
                                  "changes names at run time cannot be transformed")
        if discard and not any(isinstance(a, (Closure, PartialV, TransformV)) for a in args):
            # A call kept for its side effect only (print, pdb.set_trace, logging).
            name = self.bind_const(obj, getattr(obj, "__name__", "fn"))
            node = ir.call(ir.dotted(name), [self.emit_atom(a) for a in args],
                           {k: self.emit_atom(v) for k, v in kwargs.items()})
            out.append(ir.expr_stmt(node, self.loc))
            return Const(None)
        raise self.error(f"call of {_describe(obj)}, which s2sad does not know how to differentiate",
                         hint="use a NumPy primitive listed by `s2sad primitives`, or wrap it in "
                              "ad.custom_jvp / ad.custom_vjp")

    def leafwise(self, av, fn):
        if isinstance(av, (Dyn,)):
            return fn(av)
        if isinstance(av, Const):
            return av if not _is_array(av.value) else fn(av)
        if isinstance(av, Tup):
            return Tup(tuple(self.leafwise(i, fn) for i in av.items), av.kind)
        if isinstance(av, DictV):
            return DictV(av.keys, tuple(self.leafwise(i, fn) for i in av.items))
        raise self.error(f"cannot apply this to {_kind_name(av)}")

    def prim_call(self, obj, args, kwargs, target, out, prim=None):
        prim = prim or registry.lookup_object(obj)
        try:
            bound = prim.bind(list(args), dict(kwargs))
        except TypeError as e:
            raise self.error(str(e))
        for p in prim.static:
            if p in bound and not isinstance(bound[p], (Const, Tup)):
                raise self.error(f"the argument {p!r} of {prim.label()} must be known at transform time")
        atoms = {p: self.emit_atom(v) for p, v in bound.items()}
        value = ops.build(prim, atoms)
        self.ns.setdefault("np", np)
        if prim.kind == "call":
            spelling = prim.spelling or ""
            if "." not in spelling:
                self.ns[spelling] = prim.obj
            elif not spelling.startswith("np."):
                root = spelling.split(".")[0]
                importlib.import_module(spelling.rsplit(".", 1)[0])
                self.ns[root] = sys.modules[root]
        nout = prim.outputs(bound) if callable(getattr(prim, "outputs", None)) else None
        if nout is None:
            return self.emit_value(value, target, out)
        base = self.target_name(target, value)
        names = [self.namer.fresh(f"{base}_{i}") for i in range(nout)]
        for n in names:
            self.before_write(n, out)
        out.append(ir.assign(ir.tuple_([ir.store(n) for n in names], gast.Store()), value, self.loc))
        return Tup(tuple(Dyn(n) for n in names))

    def method_call(self, m, args, kwargs, target, out, discard):
        recv, name = m.recv, m.name
        if isinstance(recv, Const):  # an array from outside the function
            recv = Dyn(self.bind_const(recv.value, "arr"))
        if isinstance(recv, RtList) or (isinstance(recv, Tup) and recv.kind is list):
            return self.list_method(m, args, kwargs, target, out)
        if isinstance(recv, (Tup, DictV)):
            return self.container_method(recv, name, args, kwargs)
        if name in _ARRAY_METHODS:
            fn, style = _ARRAY_METHODS[name]
            if style == "shape":
                if len(args) != 1 and not kwargs:
                    args = [Tup(tuple(args))]
                return self.prim_call(fn, [recv] + list(args), kwargs, target, out)
            if style == "axes":
                if len(args) > 1:
                    args = [Tup(tuple(args))]
                return self.prim_call(fn, [recv] + list(args), kwargs, target, out)
            return self.prim_call(fn, [recv] + list(args), kwargs, target, out)
        if name in _KEPT_METHODS:
            prim = registry.get("method." + name)
            try:
                bound = prim.bind([recv] + list(args), kwargs)
            except TypeError as e:
                raise self.error(str(e))
            atoms = {p: self.emit_atom(v) for p, v in bound.items()}
            return self.emit_value(ops.build(prim, atoms), target, out)
        raise self.error(f"the array method .{name}() is not supported",
                         hint="use the NumPy function instead (see `s2sad primitives`)")

    def list_method(self, m, args, kwargs, target, out):
        recv, name = m.recv, m.name
        var = self._receiver_var(m)
        if isinstance(recv, Tup):
            # A list whose layout is known: update it at transform time.
            if name == "append":
                new = Tup(recv.items + (args[0],), list)
                self.rebind_receiver(var, new, out)
                return Const(None)
            if name == "extend":
                if not isinstance(args[0], Tup):
                    raise self.error("extend needs a tuple or list known at transform time")
                self.rebind_receiver(var, Tup(recv.items + args[0].items, list), out)
                return Const(None)
            if name == "pop":
                i = args[0].value if args else -1
                items = list(recv.items)
                item = items.pop(i)
                self.rebind_receiver(var, Tup(tuple(items), list), out)
                return item
            if name == "copy":
                return Tup(recv.items, list)
            if name in ("index", "count"):
                return self.container_method(recv, name, args, kwargs)
            raise self.error(f"list method .{name}() is not supported")
        if name == "append":
            v = args[0]
            if not isinstance(v, (Dyn, Const)) or (isinstance(v, Const) and not _runtime_ok(v.value)
                                                   and not _is_array(v.value)):
                raise self.error("a list that grows at run time can only hold arrays and numbers",
                                 hint="append arrays, or keep a separate list per component")
            node = ir.call(ir.attr(ir.name(recv.var), "append"), [self.emit_atom(v)])
            out.append(ir.expr_stmt(node, self.loc))
            return Const(None)
        if name == "pop":
            node = ir.call(ir.attr(ir.name(recv.var), "pop"), [self.emit_atom(a) for a in args])
            return self.emit_value(node, target, out, hint_node=ir.call("pop", [ir.name(recv.var)]))
        if name == "copy":
            node = ir.call(ir.attr(ir.name(recv.var), "copy"), [])
            v = self.emit_value(node, target, out)
            return RtList(v.var)
        raise self.error(f"list method .{name}() on a runtime list is not supported")

    def _receiver_var(self, m):
        return getattr(m, "var", None)

    def rebind_receiver(self, var, new, out):
        if var is None:
            raise self.error("internal: list method on an unnamed list")
        self.bind_var(var, new, out)

    def container_method(self, recv, name, args, kwargs):
        if isinstance(recv, DictV):
            if name == "keys":
                return Tup(tuple(Const(k) for k in recv.keys), list)
            if name == "values":
                return Tup(recv.items, list)
            if name == "items":
                return Tup(tuple(Tup((Const(k), v)) for k, v in zip(recv.keys, recv.items)), list)
            if name == "get":
                key = args[0].value
                try:
                    return recv.get(key)
                except KeyError:
                    return args[1] if len(args) > 1 else Const(None)
            if name == "copy":
                return recv
        if isinstance(recv, Tup):
            if name == "_replace" and is_namedtuple_class(recv.kind):
                fields = recv.kind._fields
                items = list(recv.items)
                for k, v in kwargs.items():
                    items[fields.index(k)] = v
                return Tup(tuple(items), recv.kind)
            if name == "_asdict" and is_namedtuple_class(recv.kind):
                return DictV(tuple(recv.kind._fields), recv.items)
            if name in ("index", "count"):
                vals = [i.value if isinstance(i, Const) else i for i in recv.items]
                target = args[0].value if isinstance(args[0], Const) else args[0]
                return Const(getattr(vals, name)(target))
        raise self.error(f"method .{name}() of a {_kind_name(recv)} is not supported")

    def call_callee(self, callee, args, kwargs, target, out, discard):
        """Call an already generated function (e.g. a pullback) with flat arguments."""
        if kwargs:
            raise self.error("keyword arguments to a generated function are not supported")
        leaves = []
        for a in args:
            # numbers and arrays known at transform time are passed as runtime values
            flatten(self.as_leaves(self._numbers_to_leaves(a, out)), leaves)
        if len(leaves) != len(callee.params):
            raise self.error(f"{callee.name} takes {len(callee.params)} values, "
                             f"{len(leaves)} were given")
        return self.emit_call(callee, leaves, target, out, discard)

    def emit_call(self, callee, leaves, target, out, discard):
        name = self.bind_const(callee, callee.name)
        call = ir.call(ir.name(name), [self.emit_atom(l) for l in leaves])
        skel = callee.out_skel if callee.out_skel is not None else SLeaf()
        n = count_leaves(skel)
        if n == 0:
            out.append(ir.expr_stmt(call, self.loc))
            return unflatten(skel, [])
        if n == 1 and isinstance(skel, SLeaf):
            return self.emit_value(call, target if not discard else None, out,
                                   hint_node=ir.call(callee.name, []))
        base = target or callee.name
        names = self._unpacked_names(target, n) or [self.namer.fresh(n_) for n_ in leaf_paths(skel, base)]
        for n_ in names:
            self.before_write(n_, out)
        out.append(ir.assign(ir.tuple_([ir.store(n_) for n_ in names], gast.Store()), call, self.loc))
        kinds = _leaf_kinds(skel)
        return unflatten(skel, [RtList(n_) if k else Dyn(n_) for n_, k in zip(names, kinds)])

    def call_user(self, f, args, kwargs, target, out, discard):
        """Call a user function (or closure): specialize it to the argument layout."""
        spec, leaves = specialize_call(self, f, args, kwargs, out)
        return self.emit_call(spec, leaves, target, out, discard)


def _unpacked_names(self, target, n):
    """`t = call(); a = t[0]; b = t[1]` (normalized unpacking): use a, b for the results."""
    if target is None:
        return None
    names = []
    for stmt in getattr(self, "_next", [])[:n]:
        if (isinstance(stmt, gast.Assign) and isinstance(stmt.targets[0], gast.Name)
                and isinstance(stmt.value, gast.Subscript) and isinstance(stmt.value.value, gast.Name)
                and stmt.value.value.id == target and isinstance(stmt.value.slice, gast.Constant)
                and stmt.value.slice.value == len(names)):
            names.append(stmt.targets[0].id)
        else:
            return None
    if len(names) != n or len(set(names)) != n or any(nm in self.pins for nm in names):
        return None
    return names


Builder._unpacked_names = _unpacked_names


class _Method:
    def __init__(self, recv, name, var=None):
        self.recv = recv
        self.name = name
        self.var = var


# ----------------------------------------------------------------- builtins

def _b_range(b, args, kwargs, target, out, discard):
    if kwargs or not 1 <= len(args) <= 3:
        raise b.error("range takes 1 to 3 positional arguments")
    for a in args:
        if not isinstance(a, (Dyn, Const)):
            raise b.error("range arguments must be integers")
    return IterV("range", tuple(args))


def _b_len(b, args, kwargs, target, out, discard):
    (x,) = args
    if isinstance(x, Tup):
        return Const(len(x.items))
    if isinstance(x, DictV):
        return Const(len(x.keys))
    if isinstance(x, Const) and not isinstance(x.value, np.ndarray):
        return Const(len(x.value))
    return b.prim_call(len, [x], {}, target, out)


def _b_iter(kind):
    def handler(b, args, kwargs, target, out, discard):
        if kind == "enumerate":
            start = kwargs.get("start", args[1] if len(args) > 1 else Const(0))
            seq = args[0]
            if isinstance(seq, (Tup, DictV)):
                items = seq.items if isinstance(seq, Tup) else tuple(Const(k) for k in seq.keys)
                return Tup(tuple(Tup((Const(start.value + i), it)) for i, it in enumerate(items)), list)
            return IterV("enumerate", (seq, start))
        if kind == "zip":
            if all(isinstance(a, (Tup, DictV)) for a in args):
                seqs = [a.items if isinstance(a, Tup) else tuple(Const(k) for k in a.keys) for a in args]
                return Tup(tuple(Tup(t) for t in zip(*seqs)), list)
            return IterV("zip", tuple(args))
        if kind == "reversed":
            (seq,) = args
            if isinstance(seq, Tup):
                return Tup(tuple(reversed(seq.items)), list)
            if isinstance(seq, IterV) and seq.kind == "range" and all(isinstance(a, Const) for a in seq.args):
                r = range(*[a.value for a in seq.args])[::-1]
                return IterV("range", (Const(r.start), Const(r.stop), Const(r.step)))
            return IterV("reversed", (seq,))
    return handler


# builtins that run code or read and write namespaces at run time
_NAMESPACE_BUILTINS = (exec, eval, compile, globals, locals, vars, setattr, delattr, __import__)


def _b_print(b, args, kwargs, target, out, discard):
    node = ir.call(ir.name(b.bind_const(print, "print")), [b.emit_atom(a) for a in args],
                   {k: b.emit_atom(v) for k, v in kwargs.items()})
    out.append(ir.expr_stmt(node, b.loc))
    return Const(None)


def _b_container(kind):
    def handler(b, args, kwargs, target, out, discard):
        if not args:
            return Tup((), kind) if kind in (tuple, list) else DictV((), ())
        (x,) = args
        if isinstance(x, Tup):
            return Tup(x.items, kind)
        if isinstance(x, DictV) and kind in (tuple, list):
            return Tup(tuple(Const(k) for k in x.keys), kind)
        if kind is dict and isinstance(x, DictV):
            return x
        if isinstance(x, IterV) and x.kind == "range" and all(isinstance(a, Const) for a in x.args):
            return Tup(tuple(Const(v) for v in range(*[a.value for a in x.args])), kind)
        raise b.error(f"{kind.__name__}() of a runtime value is not supported",
                      hint="build the container from values known at transform time")
    return handler


def _b_dict(b, args, kwargs, target, out, discard):
    base = {}
    if args:
        x = args[0]
        if not isinstance(x, DictV):
            raise b.error("dict() of a runtime value is not supported")
        base.update(zip(x.keys, x.items))
    base.update(kwargs)
    keys = tuple(sorted(base, key=_dict_sort_key))
    return DictV(keys, tuple(base[k] for k in keys))


def _b_isinstance(b, args, kwargs, target, out, discard):
    x, t = args
    if not isinstance(t, (Const, Tup)):
        raise b.error("isinstance needs a type known at transform time")
    types_ = t.value if isinstance(t, Const) else tuple(i.value for i in t.items)
    if isinstance(x, Const):
        return Const(isinstance(x.value, types_))
    if isinstance(x, Tup):
        return Const(isinstance(x.kind(), types_) if x.kind in (tuple, list) else issubclass(x.kind, types_))
    if isinstance(x, DictV):
        return Const(isinstance({}, types_))
    raise b.error("isinstance of a runtime value cannot be decided at transform time",
                  hint="use x.ndim or np.ndim(x) to tell arrays apart")


def _b_minmax(which):
    np_fn = np.maximum if which == "max" else np.minimum
    py_fn = max if which == "max" else min

    def handler(b, args, kwargs, target, out, discard):
        if kwargs:
            raise b.error(f"{which}() with keyword arguments is not supported")
        if len(args) == 1:
            (x,) = args
            if isinstance(x, Tup):
                args = list(x.items)
            else:
                return b.prim_call(np.max if which == "max" else np.min, [x], {"axis": Const(0)},
                                   target, out)
        if all(isinstance(a, Const) for a in args):
            return Const(py_fn(*[a.value for a in args]))
        acc = args[0]
        for i, a in enumerate(args[1:]):
            acc = b.prim_call(np_fn, [acc, a], {}, target if i == len(args) - 2 else None, out)
        return acc
    return handler


def _b_sum(b, args, kwargs, target, out, discard):
    x = args[0]
    start = args[1] if len(args) > 1 else Const(0)
    if isinstance(x, Tup):
        acc = start
        for i, item in enumerate(x.items):
            if isinstance(acc, Const) and acc.value == 0 and i == 0:
                acc = item
                continue
            acc = b.binop(gast.BinOp(left=_AVAtom(acc), op=gast.Add(), right=_AVAtom(item)),
                          target if i == len(x.items) - 1 else None, out)
        return acc
    s = b.prim_call(np.sum, [x], {"axis": Const(0)}, None if not (isinstance(start, Const) and start.value == 0)
                    else target, out)
    if isinstance(start, Const) and start.value == 0:
        return s
    return b.binop(gast.BinOp(left=_AVAtom(s), op=gast.Add(), right=_AVAtom(start)), target, out)


def _b_abs(b, args, kwargs, target, out, discard):
    (x,) = args
    if isinstance(x, Const) and not _is_array(x.value):
        return Const(abs(x.value))
    return b.prim_call(np.abs, [x], {}, target, out)


def _b_getattr(b, args, kwargs, target, out, discard):
    obj, name = args[0], args[1]
    if not isinstance(name, Const):
        raise b.error("getattr needs an attribute name known at transform time")
    try:
        return b.attribute(obj, name.value, target, out)
    except TransformError:
        if len(args) > 2:
            return args[2]
        raise


def _b_hasattr(b, args, kwargs, target, out, discard):
    obj, name = args
    if isinstance(obj, Const):
        return Const(hasattr(obj.value, name.value))
    if isinstance(obj, Tup):
        return Const(name.value in (getattr(obj.kind, "_fields", None) or ()))
    if isinstance(obj, Dyn):
        return Const(name.value in ("shape", "ndim", "dtype", "size", "T", "real", "imag"))
    return Const(False)


def _b_pow(b, args, kwargs, target, out, discard):
    x, y = args
    return b.binop(gast.BinOp(left=_AVAtom(x), op=gast.Pow(), right=_AVAtom(y)), target, out)


def _b_conv(fn):
    def handler(b, args, kwargs, target, out, discard):
        if len(args) == 1 and isinstance(args[0], Const) and not _is_array(args[0].value):
            return Const(fn(args[0].value))
        return b.prim_call(fn, args, kwargs, target, out)
    return handler


class _AVAtom(gast.Name):
    """An atom standing for an already computed abstract value (used by builtins)."""

    def __init__(self, av):
        super().__init__(id="__av__", ctx=gast.Load(), annotation=None, type_comment=None)
        self.av = av


_orig_atom = Builder.atom


def _atom_with_av(self, node):
    if isinstance(node, _AVAtom):
        return node.av
    return _orig_atom(self, node)


Builder.atom = _atom_with_av

_BUILTINS = {}
for _obj, _h in [
    (range, _b_range), (len, _b_len), (enumerate, _b_iter("enumerate")), (zip, _b_iter("zip")),
    (reversed, _b_iter("reversed")), (print, _b_print), (tuple, _b_container(tuple)),
    (list, _b_container(list)), (dict, _b_dict), (isinstance, _b_isinstance),
    (max, _b_minmax("max")), (min, _b_minmax("min")), (sum, _b_sum), (abs, _b_abs),
    (getattr, _b_getattr), (hasattr, _b_hasattr), (pow, _b_pow),
    (float, _b_conv(float)), (int, _b_conv(int)), (complex, _b_conv(complex)), (bool, _b_conv(bool)),
]:
    _BUILTINS[id(_obj)] = (_obj, _h)


# ----------------------------------------------------------- specialization

def _bind_params(b, fdef, args, kwargs, defaults, kw_defaults, fname):
    """Match call arguments to the parameters of `fdef`; returns [(name, AV)]."""
    a = fdef.args
    pos = [p.id for p in a.posonlyargs + a.args]
    kwonly = [p.id for p in a.kwonlyargs]
    if len(args) > len(pos):
        raise b.error(f"{fname}() takes {len(pos)} positional arguments but {len(args)} were given")
    bound = dict(zip(pos, args))
    for k, v in kwargs.items():
        if k not in pos and k not in kwonly:
            raise b.error(f"{fname}() got an unexpected keyword argument {k!r}")
        if k in bound:
            raise b.error(f"{fname}() got multiple values for argument {k!r}")
        bound[k] = v
    n_def = len(defaults)
    for i, p in enumerate(pos):
        if p not in bound:
            j = i - (len(pos) - n_def)
            if j < 0:
                raise b.error(f"{fname}() missing required argument {p!r}")
            bound[p] = defaults[j]
    for p in kwonly:
        if p not in bound:
            if p not in kw_defaults:
                raise b.error(f"{fname}() missing required keyword argument {p!r}")
            bound[p] = kw_defaults[p]
    return [(p, bound[p]) for p in pos + kwonly]


def _free_names(fdef):
    """Names a nested function reads from enclosing scopes."""
    bound = {p.id for p in fdef.args.posonlyargs + fdef.args.args + fdef.args.kwonlyargs}
    loads = []
    for n in gast.walk(fdef):
        if isinstance(n, gast.Name):
            if isinstance(n.ctx, (gast.Store, gast.Param, gast.Del)):
                bound.add(n.id)
            else:
                loads.append(n.id)
        elif isinstance(n, gast.FunctionDef) and n is not fdef:
            bound.add(n.name)
        elif isinstance(n, gast.alias):
            bound.add((n.asname or n.name).split(".")[0])
        elif isinstance(n, gast.ExceptHandler) and n.name:
            bound.add(n.name)
    seen = []
    for x in loads:
        if x not in bound and x not in seen:
            seen.append(x)
    return seen


def _closure_snapshot(b, clo: Closure):
    """The values a closure reads from its defining scope, as of now."""
    if clo.frame is None:
        return clo.captured
    frame = clo.frame
    cap = {}
    for name in _free_names(clo.fdef):
        if name in frame.env:
            v = frame.env[name]
            if isinstance(v, Undefined):
                continue
            cap[name] = _freeze(b, v)
        elif name in frame.captured:
            cap[name] = _freeze(b, frame.captured[name])
        elif name in frame.closure:
            cap[name] = b.from_static(frame.closure[name], name)
    return cap


def _freeze(b, av):
    """Closures inside a value that read their defining scope live get a snapshot."""
    if isinstance(av, Closure) and av.frame is not None:
        return Closure(av.fdef, av.name, None, _closure_snapshot(b, av), av.defaults,
                       av.kw_defaults, av.globals, av.builtins, av.filename, av.decorators)
    if isinstance(av, Tup):
        return Tup(tuple(_freeze(b, i) for i in av.items), av.kind)
    if isinstance(av, DictV):
        return DictV(av.keys, tuple(_freeze(b, i) for i in av.items))
    if isinstance(av, PartialV):
        return PartialV(_freeze(b, av.func), tuple(_freeze(b, a) for a in av.args),
                        tuple((k, _freeze(b, v)) for k, v in av.kwargs))
    if isinstance(av, TransformV):
        return TransformV(av.kind, _freeze(b, av.func), av.options)
    return av


def specialize_call(b, f, args, kwargs, out):
    """Specialize the callee `f` (Const function / custom object or Closure) for a call.

    Returns (Spec, runtime leaf AVs to pass)."""
    from s2sad.runtime import custom
    custom_obj = None
    if isinstance(f, Const):
        obj = f.value
        if isinstance(obj, (custom.custom_jvp, custom.custom_vjp)):
            custom_obj = obj
            fn = obj.fun
        else:
            fn = obj
        cap, fdef, namer = normalized_of(fn)
        fname = cap.name
        defaults_map = cap.defaults
        pos = [p.id for p in fdef.args.posonlyargs + fdef.args.args]
        defaults = tuple(b.from_static(defaults_map[p], p) for p in pos if p in defaults_map)
        kwd = {p.id: b.from_static(defaults_map[p.id], p.id) for p in fdef.args.kwonlyargs
               if p.id in defaults_map}
        captured = {}
        origin_key = ("fn", id(fn), id(custom_obj))
        closure = Closure(fdef, fname, None, {}, defaults, kwd, cap.globals, cap.builtins, cap.filename)
    else:
        closure = f
        fdef = f.fdef
        fname = f.name
        defaults, kwd = f.defaults, f.kw_defaults
        captured = _closure_snapshot(b, f)
        origin_key = ("closure", fdef_key(fdef))
        cap = None
        fn = None
    if custom_obj is not None and custom_obj.nondiff_argnums:
        pass
    params = _bind_params(b, fdef, args, kwargs, defaults, kwd, fname)
    # Numbers passed as arguments are runtime values of the callee.
    params = [(p, _freeze(b, b._numbers_to_leaves(v, out, p, keep_ints=True))) for p, v in params]
    skels, leaves = [], []
    for p, v in params:
        s, _ = flatten(v, leaves)
        skels.append(s)
    cap_items = sorted(captured.items())
    cap_skels = []
    for k, v in cap_items:
        v = b._numbers_to_leaves(v, out, k, keep_ints=True)
        s, _ = flatten(v, leaves)
        cap_skels.append((k, s))
    key = (origin_key, tuple(skels), tuple(cap_skels))
    spec = _SPECS.get(key)
    if spec is not None and not _valid(spec):
        spec = None
    if spec is None:
        spec = Spec(key, custom_obj or fn or closure, fname, closure.filename if cap is None else cap.filename)
        spec.custom = custom_obj
        _SPECS[key] = spec
        try:
            if cap is not None:
                build_spec(spec, fdef, cap.globals, cap.builtins, cap.closure, {}, [p for p, _ in params],
                           skels, cap_skels=[], namer=namer.child(), filename=cap.filename,
                           cells=_cells_of(fn))
            else:
                from s2sad.transforms.naming import Namer as _N
                build_spec(spec, fdef, closure.globals, closure.builtins, {}, {}, [p for p, _ in params],
                           skels, cap_skels=cap_skels, namer=_N(names_in(fdef) | set(k for k, _ in cap_skels)),
                           filename=closure.filename)
        except BaseException:
            _SPECS.pop(key, None)
            raise
    elif not spec.done:
        spec.recursive = True
    return spec, leaves


def _cells_of(fn):
    out = {}
    if fn is not None and fn.__closure__:
        for name, cell in zip(fn.__code__.co_freevars, fn.__closure__):
            out[name] = cell
    return out


def build_spec(spec, fdef, globals_, builtins_, closure_values, _unused, param_names, skels,
               cap_skels, namer, filename, cells=None):
    """Fill `spec` with the specialized body of `fdef`."""
    scope = Scope(globals_, builtins_, closure_values, None, filename, spec.deps, cells)
    b = Builder(spec, scope, namer, fdef)
    b.original_names = names_in(fdef)
    b.stored = {n.id for n in gast.walk(fdef) if isinstance(n, gast.Name)
                and isinstance(n.ctx, (gast.Store, gast.Param))} - set(param_names)
    b.ns.setdefault("np", np)
    flat_params = []
    for pname, skel in zip(param_names, skels):
        names = [namer.fresh(n) if n != pname else n for n in leaf_paths(skel, pname)]
        for n in names:
            namer.reserve(n)
            b.stored.add(n)
        kinds = _leaf_kinds(skel)
        av = unflatten(skel, [RtList(n) if k else Dyn(n) for n, k in zip(names, kinds)])
        scope.env[pname] = av
        flat_params.extend(names)
    captured = {}
    for cname, skel in cap_skels:
        names = [namer.fresh(n) if n != cname else n for n in leaf_paths(skel, cname)]
        for n in names:
            namer.reserve(n)
        kinds = _leaf_kinds(skel)
        captured[cname] = unflatten(skel, [RtList(n) if k else Dyn(n) for n, k in zip(names, kinds)])
        flat_params.extend(names)
    scope.captured = captured
    body = []
    reach = b.block(fdef.body, body)
    if reach:
        b.loc = fdef.body[-1] if fdef.body else fdef
        b.return_stmt(ir.copy_loc(gast.Return(value=ir.const(None)), b.loc), body)
    skels_out = b.out_skels
    out_skel = skels_out[0] if skels_out else SConst(("NoneType", None), None)
    for s in skels_out[1:]:
        if s != out_skel:
            raise TransformError(f"{spec.name} returns values of different structure on different "
                                 f"paths", filename=filename, lineno=fdef.lineno,
                                 hint="return the same kind of value (and tuple layout) everywhere")
    if spec.recursive and not isinstance(out_skel, SLeaf):
        raise TransformError(f"the recursive function {spec.name} must return one array or number",
                             filename=filename, lineno=fdef.lineno)
    new = ir.function_def(spec.name, flat_params, body, loc=fdef)
    ir.fill_empty_blocks(new)
    used = {n.id for n in gast.walk(new) if isinstance(n, gast.Name)}
    for k in [k for k in spec.namespace if k not in used]:
        del spec.namespace[k]
    spec.fdef = new
    spec.params = flat_params
    kinds = []
    for skel in skels:
        kinds.extend(_leaf_kinds(skel))
    spec.list_params = {p for p, k in zip(flat_params, kinds) if k}
    spec.arg_skels = tuple(skels)
    spec.out_skel = out_skel
    spec.done = True
    return spec


def _leaf_kinds(skel):
    out = []

    def walk(s):
        if isinstance(s, SLeaf):
            out.append(s.list)
        elif isinstance(s, (STup, SDict)):
            for i in s.items:
                walk(i)
        elif isinstance(s, SClosure):
            for _, i in s.captured:
                walk(i)
            for i in s.defaults:
                walk(i)
            for _, i in s.kw_defaults:
                walk(i)
        elif hasattr(s, "func") and hasattr(s, "args") and hasattr(s, "kwargs"):
            walk(s.func)
            for i in s.args:
                walk(i)
            for _, i in s.kwargs:
                walk(i)
        elif hasattr(s, "func") and hasattr(s, "options"):
            walk(s.func)
        elif hasattr(s, "kind") and hasattr(s, "args"):
            for i in s.args:
                walk(i)
    walk(skel)
    return out


def specialize_top(fn, arg_skels, name=None, custom_obj=None):
    """Specialize a Python function for arguments of the given layouts (the API door)."""
    cap, fdef, namer = normalized_of(fn)
    pos = [p.id for p in fdef.args.posonlyargs + fdef.args.args]
    key = (("top", id(fn)), tuple(arg_skels))
    spec = _SPECS.get(key)
    if spec is not None and _valid(spec) and spec.done:
        return spec
    if len(arg_skels) > len(pos):
        raise TypeError(f"{cap.name}() takes {len(pos)} positional arguments but "
                        f"{len(arg_skels)} were given")
    skels = list(arg_skels)
    dummy = Builder(Spec(None, fn, cap.name, cap.filename),
                    Scope(cap.globals, cap.builtins, cap.closure, None, cap.filename), namer.child())
    # Parameters not passed take their defaults, baked in as values known at transform time.
    kwonly = [p.id for p in fdef.args.kwonlyargs]
    for p in pos[len(arg_skels):] + kwonly:
        if p not in cap.defaults:
            raise TypeError(f"{cap.name}() missing required argument {p!r}")
        skels.append(flatten(dummy.from_static(cap.defaults[p], p))[0])
    spec = Spec(key, fn, name or cap.name, cap.filename)
    spec.custom = custom_obj
    _SPECS[key] = spec
    try:
        build_spec(spec, fdef, cap.globals, cap.builtins, cap.closure, {}, pos + kwonly, skels, [],
                   namer.child(), cap.filename, cells=_cells_of(fn))
    except BaseException:
        _SPECS.pop(key, None)
        raise
    spec.arg_skels = tuple(arg_skels)
    return spec


# ------------------------------------------------------------------ helpers

def _same(a, b) -> bool:
    if isinstance(a, Undefined) or isinstance(b, Undefined):
        return True
    return a == b


def _conflicts(envs):
    if len(envs) < 2:
        return set()
    out = set()
    keys = set().union(*[set(e) for e in envs])
    for k in keys:
        vals = [e.get(k, _UNDEF) for e in envs]
        defined = [v for v in vals if not isinstance(v, Undefined)]
        if any(not _same(v, defined[0]) for v in defined[1:]):
            out.add(k)
    return out


def _merge(envs, loose=False):
    out = {}
    keys = set().union(*[set(e) for e in envs]) if envs else set()
    for k in keys:
        vals = [e.get(k, _UNDEF) for e in envs]
        defined = [v for v in vals if not isinstance(v, Undefined)]
        out[k] = defined[0] if defined else _UNDEF
    return out


def _mentions(av, var) -> bool:
    if isinstance(av, (Dyn, RtList)):
        return av.var == var
    if isinstance(av, (Tup, DictV)):
        return any(_mentions(i, var) for i in av.items)
    if isinstance(av, PartialV):
        return _mentions(av.func, var) or any(_mentions(a, var) for a in av.args) or \
            any(_mentions(v, var) for _, v in av.kwargs)
    if isinstance(av, Closure) and av.frame is None:
        return any(_mentions(v, var) for v in av.captured.values())
    if isinstance(av, TransformV):
        return _mentions(av.func, var)
    if isinstance(av, IterV):
        return any(_mentions(a, var) for a in av.args)
    return False


def _runtime_ok(value) -> bool:
    """Can a static value become a runtime variable? (numbers and booleans)"""
    return is_number(value)


def _joinable(value) -> bool:
    """Can a static value join a runtime one in a variable (a number, or a numeric array
    captured from outside and rebound in a loop)?"""
    return _runtime_ok(value) or (_is_array(value) and value.dtype.kind in "biufc")


def _is_array(value) -> bool:
    return isinstance(value, np.ndarray)


def _static_truth(av):
    if isinstance(av, Tup):
        return len(av.items) > 0
    if isinstance(av, DictV):
        return len(av.keys) > 0
    return True


def _kind_name(av) -> str:
    if isinstance(av, Dyn):
        return "a runtime value"
    if isinstance(av, RtList):
        return "a runtime list"
    if isinstance(av, Const):
        return _describe(av.value)
    if isinstance(av, Tup):
        if is_namedtuple_class(av.kind):
            return f"{av.kind.__name__} namedtuple"
        return f"{av.kind.__name__} of length {len(av.items)}"
    if isinstance(av, DictV):
        return "dict"
    if isinstance(av, Closure):
        return f"function {av.name}"
    if isinstance(av, PartialV):
        return "partial function"
    if isinstance(av, TransformV):
        return f"{av.kind} function"
    if isinstance(av, IterV):
        return f"{av.kind} object"
    return type(av).__name__


def _describe(obj) -> str:
    if isinstance(obj, types.ModuleType):
        return f"module {obj.__name__}"
    if callable(obj):
        mod = getattr(obj, "__module__", None)
        name = getattr(obj, "__qualname__", getattr(obj, "__name__", repr(obj)))
        return f"{mod}.{name}" if mod and mod != "builtins" else name
    if obj is None:
        return "None"
    if isinstance(obj, str):
        return f"the string {obj!r}"
    return f"a {type(obj).__name__}"


def _dict_sort_key(k):
    return (type(k).__name__, k)


def _clean_hint(hint):
    from s2sad.transforms.naming import clean
    return clean(hint or "c")


_NP_NAMES: dict = {}


def _numpy_spelling(obj):
    """'np.float64' for objects that live in the numpy namespace (dtypes, constants)."""
    if not _NP_NAMES:
        for name in dir(np):
            if name.startswith("_"):
                continue
            try:
                v = getattr(np, name)
            except Exception:
                continue
            if isinstance(v, (type, np.dtype, types.FunctionType, np.ufunc, types.BuiltinFunctionType)):
                _NP_NAMES.setdefault(id(v), (v, f"np.{name}"))
        for sub in ("linalg", "fft", "random"):
            mod = getattr(np, sub)
            _NP_NAMES.setdefault(id(mod), (mod, f"np.{sub}"))
    name = getattr(obj, "__name__", None)
    if isinstance(name, str) and getattr(np, name, None) is obj:
        return f"np.{name}"
    hit = _NP_NAMES.get(id(obj))
    if hit is not None and hit[0] is obj:
        return hit[1]
    return None


def _assigned_names(stmts):
    out = set()
    for s in stmts:
        for n in gast.walk(s):
            if isinstance(n, gast.Name) and isinstance(n.ctx, gast.Store):
                out.add(n.id)
    return out


def _as_iter(av):
    if isinstance(av, IterV):
        return av
    return IterV("seq", (av,))


def _is_unpack_temp(for_node) -> bool:
    """Was the loop target introduced by `normalize` for an unpacking target?"""
    names = _unpack_names(for_node)
    return names is not None


def _unpack_names(for_node):
    """For `for item in ...:` followed by `a = item[0]; b = item[1]` -> ['a', 'b']."""
    t = for_node.target.id
    names = []
    for stmt in for_node.body:
        if (isinstance(stmt, gast.Assign) and isinstance(stmt.targets[0], gast.Name)
                and isinstance(stmt.value, gast.Subscript) and isinstance(stmt.value.value, gast.Name)
                and stmt.value.value.id == t and isinstance(stmt.value.slice, gast.Constant)
                and stmt.value.slice.value == len(names)):
            names.append(stmt.targets[0].id)
        else:
            break
    return names or None


class _EmitterSpec:
    def __init__(self, namespace, name):
        self.namespace = namespace
        self.name = name
        self.deps = []


def emitter(namespace, namer, filename, loc=None):
    """A Builder that emits calls into an existing generated function (used by the
    derivative passes to specialize user rules such as custom_jvp rules)."""
    import builtins as _b
    spec = _EmitterSpec(namespace, "emitter")
    scope = Scope(namespace, vars(_b), None, None, filename, spec.deps)
    b = Builder(spec, scope, namer, loc)
    return b

"""Randomized differential testing of s2sad (issue 6): a generator of random NumPy programs
as Python SOURCE text, and the oracles every transform is checked against.

Used by tests/test_fuzz.py (a fixed-seed CI sample) and benchmarks/fuzz.py (long campaigns).

Generator (`programs()`, a hypothesis strategy): a module with a main function ``core`` over
1-3 float arguments of random shapes (and sometimes an int ``n``), module-level helper
functions (with defaults, recursion, functions as arguments), module constants, and a
scalar entry point ``f``.  Bodies are straight-line code over elementwise primitives,
reductions with axes, dot/matmul, reshape/transpose, indexing and slicing reads,
np.where/maximum/minimum/abs/max, stop_gradient, tuples/dicts/lists, nested expressions,
reassignment, if/elif/else on values, for over ranges/arrays/enumerate/zip, while loops with
a bounded trip count, break/continue, early return, in-place writes into preallocated
buffers, closures and lambdas.  Every program is well defined by construction: log and
sqrt see positives, divisions see denominators bounded away from zero, loops terminate,
no array is aliased and then written (a written buffer is copied where it would escape).

Oracles (`check()`): the program's branch decisions are recorded by an instrumented copy of
the source (comparisons, maximum/minimum, abs, max/min reductions) and inputs are redrawn
until every decision is stable over the finite-difference stencil (see `Recorder`), so
finite differences are well conditioned; stop_gradient is replayed from the base point in
the finite-difference copy.  Then:
  jvp vs central finite differences (Richardson) · linearize vs jvp · vjp vs jvp by
  <w, J v> == <J^T w, v> · jacfwd vs jacrev vs J v · grad vs jacrev vs jacfwd vs vjp ·
  hessian symmetric, hvp four ways (jvp of grad, grad of jvp pairing, jacrev(grad) @ v,
  hessian @ v) and v^T H v vs second differences · ad.source deterministic and
  re-executable.  Any exception other than TransformError from s2sad is an internal error.

`unsupported_programs()` injects a construct SPEC section 3 refuses (class, with, global,
nonlocal, *args, **kwargs, del, attribute write, exec, yield, unknown C function) into a
valid program; `check_unsupported()` demands TransformError naming the file and line.
"""

from __future__ import annotations

import ast
import copy
import hashlib
import importlib.util
import math
import os
import re
import signal
import tempfile
import traceback
import warnings
from dataclasses import dataclass, field

import numpy as np
from hypothesis import strategies as st

import s2sad as ad
from s2sad.errors import TransformError

# ================================================================== the generator

SHAPES = [(), (3,), (2,), (2, 3), (6,), (3, 2)]
CONST = {  # module-level constants (global reads); named by shape
    (): None,
    (2,): ("C2", "np.array([0.7, -1.3])"),
    (3,): ("C3", "np.array([0.5, -0.25, 1.5])"),
    (6,): ("C6", "np.linspace(-1.0, 1.0, 6)"),
    (2, 3): ("C23", "np.array([[0.5, -1.0, 0.25], [1.5, 0.75, -0.5]])"),
    (3, 2): ("C32", "np.array([[0.3, -0.6], [1.2, 0.9], [-0.4, 0.8]])"),
    (3, 3): ("C33", "np.array([[0.6, -0.2, 0.1], [0.3, 0.5, -0.4], [-0.1, 0.2, 0.7]])"),
}
LITERALS = ["0.5", "2.0", "1.5", "-0.5", "0.3", "-1.0", "0.25", "3.0", "-2.0", "0.1"]

# unary templates: (feature, text); safe for any real input (bounded or positive inputs to
# log/sqrt/division); the raw exp is kept, its blow-ups are rejected by the magnitude check
UNARY = [
    ("sin", "np.sin({a})"), ("cos", "np.cos({a})"), ("tanh", "np.tanh({a})"),
    ("mul_const", "{c} * {a}"), ("neg", "-{a}"), ("square", "np.square({a})"),
    ("pow2", "{a} ** 2"), ("pow3", "{a} ** 3"),
    ("exp", "np.exp(np.sin({a}))"), ("exp", "np.exp(-{a} ** 2)"), ("exp_raw", "np.exp({a})"),
    ("log", "np.log(1.0 + {a} ** 2)"), ("log", "np.log(2.0 + np.cos({a}))"),
    ("log", "np.log(np.exp({a}) + 1.0)"), ("log1p", "np.log1p({a} * {a})"),
    ("sqrt", "np.sqrt(1.0 + np.square({a}))"), ("sqrt", "np.sqrt({a} ** 2 + 0.5)"),
    ("recip", "1.0 / (1.0 + {a} ** 2)"), ("pow_neg", "(2.0 + np.sin({a})) ** -1"),
    ("abs", "np.abs({a})"), ("abs", "abs({a})"), ("arctan", "np.arctan({a})"),
    ("sinh", "np.sinh(np.tanh({a}))"), ("cosh", "np.cosh(np.sin({a}))"),
    ("stop_gradient", "ad.stop_gradient({a})"),
]
BINOPS = ["+", "-", "*"]
DENOMS = ["(1.5 + np.tanh({b}))", "(1.0 + {b} * {b})", "(2.0 + np.cos({b}))", "np.exp(np.sin({b}))"]
CMPS = [">", "<", ">=", "<="]


@dataclass
class Var:  # noqa: D101 (a variable the generator may use)
    kind: str                   # 'f' float, 'i' int, 'tup', 'dict', 'list', 'fn'
    shape: tuple = ()
    lo: int = 0                 # int range
    hi: int = 0
    items: tuple = ()           # tup: shapes; dict: ((key, shape), ...); list: (shape, length)
    params: tuple = ()          # fn: parameter shapes (out shape in `shape`)
    buf: bool = False           # a preallocated buffer: written in place, copied when it escapes
    param: bool = False
    ro: bool = False            # captured by a closure: read only there


@dataclass
class E:
    text: str
    shape: tuple
    views: frozenset = frozenset()   # buffers this value may be a view of
    atom: bool = False               # needs no parentheses
    fresh: bool = False              # certainly a new array (not a view of anything)


@dataclass
class Helper:
    name: str
    params: tuple          # shapes; None for a function parameter
    out: tuple
    default: bool = False  # last (scalar) parameter has a default
    kind: str = "plain"    # plain | recursive | apply
    called: bool = False


@dataclass
class Program:
    source: str
    shapes: tuple                  # float argument shapes of core/f, in order
    int_arg: int | None            # value of the int argument n (last), if any
    out_spec: object               # 'scalar' | ('array', s) | ('tuple', (s, ...)) | ('dict', ((k, s), ...))
    features: frozenset
    argnames: tuple
    expect_line: int | None = None  # unsupported programs: the line TransformError must name
    expect_text: str | None = None  # ... and a regex its message must match
    construct: str | None = None
    inject_in: str | None = None    # 'core' or the helper's name
    def_line: int | None = None     # the line of the def the construct was injected into
    path: str | None = None         # file it was written to (set by load)

    def __str__(self):
        return self.source


class Gen:
    """Builds one program from a stream of hypothesis draws (choices shrink to the first /
    smallest option, booleans to False, so shrinking simplifies programs)."""

    def __init__(self, draw, max_stmts=7, max_depth=3, allow=None):
        self._draw = draw
        self.max_stmts = max_stmts
        self.max_depth = max_depth
        self.allow = allow          # optional set of features to allow (None: all)
        self.features = set()
        self.counter = 0
        self.helpers: list[Helper] = []
        self.consts_used = set()
        self.budget = 0

    # -- draws
    def int(self, lo, hi):
        return self._draw(st.integers(lo, hi))

    def pick(self, options):
        return options[self._draw(st.integers(0, len(options) - 1))]

    def flag(self, p):
        return self._draw(st.integers(0, 99)) >= 100 - int(100 * p)

    def ok(self, feature):
        return self.allow is None or feature in self.allow

    def feat(self, name):
        self.features.add(name)

    def fresh(self, prefix="v"):
        self.counter += 1
        return f"{prefix}{self.counter}"

    def literal(self):
        return self.pick(LITERALS)

    def lit(self) -> "E":
        t = self.literal()
        return E(t, (), atom=not t.startswith("-"))

    def const(self, shape):
        name, text = CONST[shape]
        self.consts_used.add(shape)
        self.feat("global_const")
        return name

    # -- environments
    @staticmethod
    def floats(env, shape=None, nobuf=False):
        return [n for n, v in env.items() if v.kind == "f" and (shape is None or v.shape == shape)
                and not (nobuf and v.buf)]

    @staticmethod
    def ints(env):
        return [n for n, v in env.items() if v.kind == "i"]

    # -- expressions -------------------------------------------------------------
    def par(self, e: E) -> str:
        return e.text if e.atom else f"({e.text})"

    def leaf(self, env, shape) -> E:
        names = self.floats(env, shape)
        r = self.int(0, 9)
        if names and r < 7:
            n = self.pick(names)
            v = env[n]
            return E(n, shape, frozenset([n]) if v.buf else frozenset(), atom=True)
        if shape == () and r in (7, 8):
            return self.lit()
        return self.from_var(env, shape)

    def from_var(self, env, shape) -> E:
        """An expression of `shape` computed directly from some float variable."""
        names = self.floats(env)
        if not names:
            if shape == ():
                return self.lit()
            return E(self.const(shape), shape, atom=True)
        n = self.pick(names)
        v = env[n]
        views = frozenset([n]) if v.buf else frozenset()
        s = v.shape
        if s == shape:
            return E(n, shape, views, atom=True)
        if shape == ():
            if self.flag(0.5):
                idx = ", ".join(str(self.int(0, d - 1)) for d in s)
                return E(f"{n}[{idx}]", (), atom=True)
            return E(f"np.sum({n})", (), atom=True)
        if s == () or _broadcasts(s, shape):
            return E(f"{n} * {self.const(shape)}", shape, fresh=True)
        if math.prod(s) == math.prod(shape):
            self.feat("reshape")
            return E(f"{n}.reshape({', '.join(map(str, shape))})", shape, views, atom=True)
        return E(f"np.sum({n}) * {self.const(shape)}", shape, fresh=True)

    def expr(self, env, shape, d) -> E:
        if d <= 0 or self.flag(0.2):
            return self.leaf(env, shape)
        options = ["unary", "binary", "binary", "leaf"]
        if shape == ():
            options += ["reduce", "reduce", "index", "dot"]
        else:
            options += ["index", "reduce", "shape_op", "where", "maxmin"]
        options += ["div", "call", "container", "ifexp", "intmix"]
        kind = self.pick(options)
        if not self.ok(kind):
            return self.leaf(env, shape)
        e = getattr(self, "x_" + kind)(env, shape, d)
        return e if e is not None else self.leaf(env, shape)

    def x_leaf(self, env, shape, d):
        return self.leaf(env, shape)

    def x_unary(self, env, shape, d):
        feat, tmpl = self.pick(UNARY)
        if not self.ok(feat):
            return None
        a = self.expr(env, shape, d - 1)
        self.feat(feat)
        text = tmpl.format(a=self.par(a), c=self.literal())
        views = a.views if feat == "stop_gradient" and shape != () else frozenset()
        return E(text, shape, views, atom=_is_call(text), fresh=feat != "stop_gradient")

    def bshape(self, shape):
        """A shape that broadcasts to `shape` (or the string 'col' for an (m, 1) column)."""
        opts = [shape, ()]
        if len(shape) == 2:
            opts += [shape[1:], "col"]
        return self.pick(opts)

    def bexpr(self, env, shape, d) -> E:
        s = self.bshape(shape)
        if s == "col":
            e = self.expr(env, shape[:1], d)
            self.feat("broadcast_col")
            if self.flag(0.5):
                return E(f"{self.par(e)}.reshape({shape[0]}, 1)", (shape[0], 1), e.views, atom=True)
            self.feat("none_index")
            return E(f"{self.par(e)}[:, None]", (shape[0], 1), e.views, atom=True)
        if s != shape:
            self.feat("broadcast")
        return self.expr(env, s, d)

    def x_binary(self, env, shape, d):
        op = self.pick(BINOPS)
        a = self.expr(env, shape, d - 1)
        b = self.bexpr(env, shape, d - 1)
        if self.flag(0.5):
            a, b = b, a
        self.feat("arith")
        return E(f"{self.par(a)} {op} {self.par(b)}", shape, fresh=True)

    def x_div(self, env, shape, d):
        a = self.expr(env, shape, d - 1)
        b = self.bexpr(env, shape, d - 1)
        den = self.pick(DENOMS).format(b=self.par(b))
        self.feat("div")
        if self.flag(0.2):
            self.feat("augmented_div_const")
            return E(f"{self.par(a)} / {self.pick(['2.0', '4.0', '-3.0'])}", shape, fresh=True)
        return E(f"{self.par(a)} / {den}", shape, fresh=True)

    def x_maxmin(self, env, shape, d):
        if not self.ok("maxmin"):
            return None
        a = self.expr(env, shape, d - 1)
        b = self.bexpr(env, shape, d - 1)
        fn = self.pick(["np.maximum", "np.minimum"])
        self.feat("maxmin")
        return E(f"{fn}({a.text}, {b.text})", shape, atom=True, fresh=True)

    def cmp(self, env, shape, d) -> str:
        """A comparison whose result has `shape` (broadcasting) or is a scalar bool."""
        a = self.expr(env, shape, d - 1)
        if self.flag(0.5):
            b = self.lit()
        else:
            b = self.bexpr(env, shape, d - 1)
        op = self.pick(CMPS)
        self.feat("compare")
        return f"{self.par(a)} {op} {self.par(b)}"

    def cond(self, env, d) -> str:
        """A scalar condition for if/while: value comparisons, sometimes on ints, and/or."""
        ints = self.ints(env)
        if ints and self.flag(0.3):
            i = self.pick(ints)
            v = env[i]
            self.feat("int_condition")
            c = self.int(v.lo, v.hi)
            return self.pick([f"{i} == {c}", f"{i} % 2 == 0", f"{i} > {c}"])
        c = self.cmp(env, (), d)
        if self.flag(0.15):
            self.feat("boolop")
            c2 = self.cmp(env, (), d - 1)
            c = f"{c} {self.pick(['and', 'or'])} {c2}"
            if self.flag(0.3):
                c = f"not ({c})"
        return c

    def x_where(self, env, shape, d):
        if not self.ok("where"):
            return None
        c = self.cmp(env, shape, d)
        a = self.bexpr(env, shape, d - 1)
        b = self.expr(env, shape, d - 1)
        if self.flag(0.5):
            a, b = b, a
        self.feat("where")
        return E(f"np.where({c}, {a.text}, {b.text})", shape, atom=True, fresh=True)

    def x_ifexp(self, env, shape, d):
        c = self.cond(env, d - 1)
        a = self.expr(env, shape, d - 1)
        b = self.expr(env, shape, d - 1)
        self.feat("ifexp")
        return E(f"{self.par(a)} if {c} else {self.par(b)}", shape, a.views | b.views)

    def x_intmix(self, env, shape, d):
        ints = self.ints(env)
        if not ints:
            return None
        i = self.pick(ints)
        a = self.expr(env, shape, d - 1)
        self.feat("int_arith")
        return E(f"{self.par(a)} * ({i} + {self.int(1, 2)})", shape, fresh=True)

    def x_dot(self, env, shape, d):
        n = self.pick([3, 2, 6])
        a = self.expr(env, (n,), d - 1)
        b = self.expr(env, (n,), d - 1)
        self.feat("dot")
        form = self.pick(["np.dot({a}, {b})", "{a} @ {b}", "{a}.dot({b})", "np.vdot({a}, {b})",
                          "np.inner({a}, {b})"])
        return E(form.format(a=self.par(a), b=self.par(b)), (), atom=form.startswith("np."))

    def x_reduce(self, env, shape, d):
        sources = {
            (): [(s, None) for s in [(3,), (2,), (6,), (2, 3), (3, 2)]],
            (2,): [((2, 3), 1), ((2, 3), -1), ((3, 2), 0), ("mv", (2, 3)), ("vm", (3, 2))],
            (3,): [((2, 3), 0), ((3, 2), 1), ((3, 2), -1), ("mv", (3, 2)), ("vm", (2, 3))],
            (2, 3): [("mm", (2, 3)), ("outer", None)],
            (3, 2): [("mm", (3, 2)), ("outer", None)],
            (6,): [],
        }[shape]
        if not sources:
            return None
        src, axis = self.pick(sources)
        if src == "mv":          # matrix @ vector
            A = self.expr(env, axis, d - 1)
            x = self.expr(env, (axis[1],), d - 1)
            self.feat("matmul")
            form = self.pick(["{A} @ {x}", "np.dot({A}, {x})", "np.matmul({A}, {x})"])
            return E(form.format(A=self.par(A), x=self.par(x)), shape, fresh=True)
        if src == "vm":
            A = self.expr(env, axis, d - 1)
            x = self.expr(env, (axis[0],), d - 1)
            self.feat("matmul")
            return E(f"{self.par(x)} @ {self.par(A)}", shape, fresh=True)
        if src == "mm":          # with a constant square matrix, either side
            A = self.expr(env, axis, d - 1)
            self.feat("matmul")
            C = self.const((3, 3))
            if axis == (2, 3):
                return E(f"{self.par(A)} @ {C}", shape, fresh=True)
            return E(f"{C} @ {self.par(A)}", shape, fresh=True)
        if src == "outer":
            a = self.expr(env, (shape[0],), d - 1)
            b = self.expr(env, (shape[1],), d - 1)
            self.feat("outer")
            return E(f"np.outer({a.text}, {b.text})", shape, atom=True, fresh=True)
        a = self.expr(env, src, d - 1)
        fn = self.pick(["sum", "mean", "max", "min", "method_sum", "prod"] if shape == ()
                       else ["sum", "mean", "max", "method_sum", "min"])
        if fn in ("max", "min") and not self.ok("reduce_max"):
            fn = "sum"
        if fn == "prod" and math.prod(src) > 3:
            fn = "sum"
        self.feat("reduce_" + fn if fn in ("max", "min", "prod") else "reduce")
        ax = "" if axis is None else f", axis={axis}"
        if fn == "method_sum":
            return E(f"{self.par(a)}.sum({ax[2:]})", shape, atom=True, fresh=True)
        if axis is not None:
            self.feat("reduce_axis")
        return E(f"np.{fn}({a.text}{ax})", shape, atom=True, fresh=True)

    def index_int(self, env, dim):
        """An int index valid for an axis of length `dim`: a literal or a loop variable."""
        ints = [i for i in self.ints(env) if env[i].lo >= 0 and env[i].hi < dim]
        if ints and self.flag(0.6):
            self.feat("index_by_loop_var")
            return self.pick(ints)
        i = self.int(0, dim - 1)
        if self.flag(0.2):
            self.feat("negative_index")
            return str(i - dim)
        return str(i)

    def x_index(self, env, shape, d):
        opts = {
            (): [(3,), (2,), (6,), (2, 3), (3, 2)],
            (2,): [("row", (3, 2)), ("col", (2, 3)), ("slice", (3,)), ("fancy", (3,)), ("slice", (6,))],
            (3,): [("row", (2, 3)), ("col", (3, 2)), ("slice", (6,)), ("fancy", (6,))],
            (2, 3): [("rows", (2, 3)), ("fancy_rows", (2, 3))],
            (3, 2): [("rows", (3, 2)), ("flip", (3, 2))],
            (6,): [("flip", (6,))],
        }[shape]
        o = self.pick(opts)
        if shape == ():
            src = o
            a = self.expr(env, src, d - 1)
            idx = ", ".join(self.index_int(env, n) for n in src)
            self.feat("index_scalar")
            return E(f"{self.par(a)}[{idx}]", (), atom=True)
        how, src = o
        a = self.expr(env, src, d - 1)
        pa = self.par(a)
        if how == "row":
            t = f"{pa}[{self.index_int(env, src[0])}]"
        elif how == "col":
            t = f"{pa}[:, {self.index_int(env, src[1])}]"
        elif how == "slice":
            n, m = src[0], shape[0]
            cands = [f"{pa}[:{m}]", f"{pa}[{n - m}:]", f"{pa}[-{m}:]"]
            if n == 2 * m:
                cands.append(f"{pa}[::2]")
            if n == 3 and m == 2:
                cands.append(f"{pa}[::2]")
            t = self.pick(cands)
            self.feat("slice")
        elif how == "fancy":
            n, m = src[0], shape[0]
            idx = [self.int(0, n - 1) for _ in range(m)]
            t = f"{pa}[{idx}]"
            self.feat("fancy_index")
        elif how == "rows":
            t = self.pick([f"{pa}[:, :]", f"{pa}[::-1]", f"{pa}[:, ::-1]"])
            self.feat("slice")
        elif how == "fancy_rows":
            t = f"{pa}[[1, 0]]"
            self.feat("fancy_index")
        else:  # flip
            t = self.pick([f"{pa}[::-1]", f"np.flip({a.text}, axis=0)"])
            self.feat("flip")
        self.feat("index")
        return E(t, shape, a.views, atom=True)

    def x_shape_op(self, env, shape, d):
        if shape in ((2, 3), (3, 2)):
            other = (shape[1], shape[0])
            k = self.pick(["T", "reshape6", "transpose", "stack", "broadcast"])
            if k == "T":
                a = self.expr(env, other, d - 1)
                self.feat("transpose")
                return E(f"{self.par(a)}.T", shape, a.views, atom=True)
            if k == "transpose":
                a = self.expr(env, other, d - 1)
                self.feat("transpose")
                return E(f"np.transpose({a.text})", shape, a.views, atom=True)
            if k == "reshape6":
                a = self.expr(env, (6,), d - 1)
                self.feat("reshape")
                if self.flag(0.5):
                    return E(f"np.reshape({a.text}, {shape})", shape, a.views, atom=True)
                return E(f"{self.par(a)}.reshape{shape}", shape, a.views, atom=True)
            if k == "stack":
                rows = [self.expr(env, (shape[1],) if shape == (2, 3) else (shape[0],), d - 1)
                        for _ in range(shape[0] if shape == (2, 3) else shape[1])]
                self.feat("stack")
                ax = "" if shape == (2, 3) else ", axis=1"
                return E(f"np.stack([{', '.join(r.text for r in rows)}]{ax})", shape, atom=True, fresh=True)
            a = self.expr(env, (shape[1],), d - 1)
            self.feat("broadcast_to")
            return E(f"np.broadcast_to({a.text}, {shape})", shape, a.views, atom=True)
        if shape == (6,):
            k = self.pick(["ravel", "concat", "reshape"])
            if k == "concat":
                m = self.pick([3, 2])
                parts = [self.expr(env, (m,), d - 1) for _ in range(6 // m)]
                self.feat("concatenate")
                return E(f"np.concatenate([{', '.join(p.text for p in parts)}])", shape, atom=True, fresh=True)
            a = self.expr(env, self.pick([(2, 3), (3, 2)]), d - 1)
            self.feat("reshape")
            form = self.pick(["{a}.ravel()", "{a}.reshape(6)", "{a}.reshape(-1)", "np.ravel({t})"])
            return E(form.format(a=self.par(a), t=a.text), shape, a.views, atom=True)
        if shape in ((2,), (3,)):
            a = self.expr(env, (6,), d - 1)
            self.feat("reshape")
            other = 6 // shape[0]
            ax = self.pick([0, 1])
            two = (other, shape[0]) if ax == 0 else (shape[0], other)
            return E(f"np.sum({self.par(a)}.reshape{two}, axis={ax})", shape, atom=True, fresh=True)
        return None

    def x_call(self, env, shape, d):
        fns = [n for n, v in env.items() if v.kind == "fn" and v.shape == shape]
        hs = [h for h in self.helpers if h.out == shape]
        if not fns and not hs:
            return None
        if fns and (not hs or self.flag(0.5)):
            n = self.pick(fns)
            args = [self.expr(env, s, d - 1) for s in env[n].params]
            self.feat("call_local_fn")
            return E(f"{n}({', '.join(self.arg(a) for a in args)})", shape, atom=True)
        h = self.pick(hs)
        h.called = True
        self.feat("call_helper")
        if h.kind == "recursive":
            a = self.expr(env, h.params[0], d - 1)
            self.feat("recursion")
            return E(f"{h.name}({self.arg(a)}, {self.int(0, 3)})", shape, atom=True)
        if h.kind == "apply":
            a = self.expr(env, shape, d - 1)
            fn = self.lambda_text(env, shape, d - 1)
            self.feat("function_argument")
            return E(f"{h.name}({fn}, {self.arg(a)})", shape, atom=True)
        ps = h.params[:-1] if h.default else h.params
        args = [self.arg(self.expr(env, s, d - 1)) for s in ps]
        if h.default and self.flag(0.5):
            b = self.expr(env, (), d - 1)
            self.feat("keyword_argument")
            if self.flag(0.5):
                args.append(f"b={b.text}")
            else:
                args.append(b.text)
        return E(f"{h.name}({', '.join(args)})", shape, atom=True)

    def arg(self, e: E) -> str:
        """An argument/element/return value: copy a written buffer it may be a view of."""
        if e.views and e.shape != ():
            self.feat("copy")
            return f"{self.par(e)}.copy()"
        return e.text

    def lambda_text(self, env, shape, d):
        p = self.fresh("u")
        inner = {n: v for n, v in env.items() if not v.buf}
        inner[p] = Var("f", shape)
        body = self.expr(inner, shape, max(d, 1))
        self.feat("lambda")
        return f"lambda {p}: {body.text}"

    def x_container(self, env, shape, d):
        cands = []
        for n, v in env.items():
            if v.kind == "tup":
                cands += [f"{n}[{k}]" for k, s in enumerate(v.items) if s == shape]
            elif v.kind == "dict":
                cands += [f"{n}[{k!r}]" for k, s in v.items if s == shape]
            elif v.kind == "list" and v.items[0] == shape and v.items[1] > 0:
                cands += [f"{n}[{self.int(0, v.items[1] - 1)}]", f"{n}[-1]"]
        if not cands:
            return None
        self.feat("container_read")
        return E(self.pick(cands), shape, atom=True)

    # -- statements --------------------------------------------------------------
    def block(self, env, n, ctx, indent=0):
        """`n` statements; returns (lines, env after). ctx: dict(loop=bool, depth=int,
        ret=output spec or None, fn=name)."""
        lines = []
        for _ in range(n):
            if self.budget <= 0:
                break
            self.budget -= 1
            kinds = ["assign", "assign", "reassign", "augassign", "buffer", "setitem", "if",
                     "for_range", "tuple", "dict"]
            if ctx["depth"] < 2:
                kinds += ["for_array", "while", "closure", "list", "if"]
            if ctx["loop"]:
                kinds += ["break", "continue"]
            if ctx["ret"] is not None:
                kinds += ["early_return"]
            kind = self.pick(kinds)
            if not self.ok(kind):
                continue
            out = getattr(self, "s_" + kind)(env, ctx)
            if out is None:
                continue
            new_lines, env = out
            lines += new_lines
        return lines, env

    def rhs(self, env, shape, d=None):
        e = self.expr(env, shape, self.max_depth if d is None else d)
        if e.atom and re.fullmatch(r"\w+", e.text) and e.shape != ():
            e = E(f"{e.text} * 1.0", e.shape)   # never alias a whole array
        return e

    def s_assign(self, env, ctx):
        shape = self.pick(SHAPES)
        e = self.rhs(env, shape)
        name = self.fresh()
        env = dict(env)
        env[name] = Var("f", shape)
        return [f"{name} = {self.arg(e)}"], env

    def s_reassign(self, env, ctx):
        names = [n for n in self.floats(env) if not env[n].ro]
        if not names:
            return None
        n = self.pick(names)
        v = env[n]
        e = self.rhs(env, v.shape)
        self.feat("reassign")
        text = self.arg(e)
        fresh = e.fresh or text.endswith(".copy()")
        if ctx["loop"] and self.flag(0.7):      # keep loop-carried values bounded
            text = f"np.tanh({text})"
            fresh = True
        if self.ok("self_op") and self.flag(0.2):
            # the variable is an operand of the operation that rebinds it (`x = x + x`,
            # `x = x * e`): the derivative of the old value flows into the new one
            op = self.pick(BINOPS)
            if ctx["loop"]:
                text = f"np.tanh({n}) {op} {n}"
            else:
                other = e if e.shape == v.shape or _broadcasts(e.shape, v.shape) else E(n, v.shape, atom=True)
                text = self.pick([f"{n} {op} {n}", f"{n} {op} {self.par(other)}", f"{self.par(other)} {op} {n}"])
            self.feat("self_op")
            fresh = True
        env = dict(env)
        # a buffer rebound to a view (of an argument, say) is no longer written to
        env[n] = Var("f", v.shape, buf=v.buf and (fresh or v.shape == ()), param=v.param)
        return [f"{n} = {text}"], env

    def s_augassign(self, env, ctx):
        names = [n for n in self.floats(env) if (env[n].buf or (env[n].shape == () and not env[n].param))
                 and not env[n].ro]
        if not names:
            return None
        n = self.pick(names)
        v = env[n]
        op = self.pick(["+=", "-=", "*=", "/="])
        b = self.bexpr(env, v.shape, self.max_depth - 1)
        if b.shape == "col" or (isinstance(b.shape, tuple) and len(b.shape) > len(v.shape)):
            return None
        self.feat("augassign")
        if op == "/=":
            rhs = self.pick(DENOMS).format(b=self.par(b))
        elif op == "*=":
            rhs = f"np.tanh({b.text})" if self.flag(0.5) else self.pick(["0.5", "1.5", "-1.0"])
        else:
            rhs = self.par(b)
        return [f"{n} {op} {rhs}"], env

    def s_buffer(self, env, ctx):
        shape = self.pick([s for s in SHAPES if s != ()])
        name = self.fresh("buf")
        srcs = self.floats(env, shape)
        how = self.pick(["zeros", "ones", "copy", "zeros_like"])
        if how in ("copy", "zeros_like") and not srcs:
            how = "zeros"
        if how == "zeros":
            init = f"np.zeros({shape if len(shape) > 1 else shape[0]})"
        elif how == "ones":
            init = f"np.ones({shape if len(shape) > 1 else shape[0]})"
        elif how == "copy":
            init = self.pick([f"{self.pick(srcs)}.copy()", f"np.copy({self.pick(srcs)})"])
        else:
            init = f"np.zeros_like({self.pick(srcs)})"
        self.feat("buffer_" + how)
        env = dict(env)
        env[name] = Var("f", shape, buf=True)
        lines = [f"{name} = {init}"]
        if self.flag(0.7) and self.ok("for_range"):        # the classic fill loop
            i = self.fresh("i")
            inner = dict(env)
            inner[i] = Var("i", lo=0, hi=shape[0] - 1)
            target = f"{name}[{i}]"
            e = self.expr(inner, shape[1:], self.max_depth - 1)
            op = self.pick(["=", "+="])
            self.feat("setitem_loop")
            lines += [f"for {i} in range({shape[0]}):", f"    {target} {op} {self.arg(e)}"]
            if self.flag(0.3):
                e2 = self.expr(inner, shape[1:], self.max_depth - 1)
                lines.append(f"    {target} {self.pick(['+=', '*=', '-='])} {self.arg(e2)}")
        return lines, env

    def s_setitem(self, env, ctx):
        bufs = [n for n, v in env.items() if v.kind == "f" and v.buf and not v.ro]
        if not bufs:
            return None
        n = self.pick(bufs)
        s = env[n].shape
        forms = [("idx", s[1:])]
        if len(s) == 2:
            forms += [("col", (s[0],)), ("elem", ())]
        if s[0] >= 3 and (2,) + s[1:] in CONST:     # shapes the generator knows
            forms += [("slice", (2,) + s[1:])]
        how, vs = self.pick(forms)
        if how == "idx":
            t = f"{n}[{self.index_int(env, s[0])}]"
        elif how == "col":
            t = f"{n}[:, {self.index_int(env, s[1])}]"
        elif how == "elem":
            t = f"{n}[{self.index_int(env, s[0])}, {self.index_int(env, s[1])}]"
        else:
            t = self.pick([f"{n}[1:3]", f"{n}[:2]", f"{n}[-2:]"])
        e = self.expr(env, vs, self.max_depth - 1)
        op = self.pick(["=", "+=", "-=", "*="])
        self.feat("setitem" if op == "=" else "setitem_aug")
        return [f"{t} {op} {self.arg(e)}"], env

    def sub(self, env, ctx, n=None, **kw):
        c = dict(ctx)
        c.update(kw)
        c["depth"] = ctx["depth"] + 1
        lines, env2 = self.block(env, self.int(1, 3) if n is None else n, c)
        if not lines:
            lines = ["pass"]
        return ["    " + l for l in lines], env2

    def s_if(self, env, ctx):
        c = self.cond(env, self.max_depth - 1)
        body, e1 = self.sub(env, ctx)
        lines = [f"if {c}:"] + body
        branches = [e1]
        self.feat("if")
        while self.flag(0.3):
            c2 = self.cond(env, self.max_depth - 1)
            b2, e2 = self.sub(env, ctx)
            lines += [f"elif {c2}:"] + b2
            branches.append(e2)
            self.feat("elif")
        if self.flag(0.5):
            b3, e3 = self.sub(env, ctx)
            lines += ["else:"] + b3
            branches.append(e3)
            self.feat("else")
        else:
            branches.append(env)
        return lines, _meet(env, branches)

    def s_for_range(self, env, ctx):
        i = self.fresh("i")
        form = self.pick(["k", "n", "ab", "rev"])
        if form == "n" and "n" in env:
            lo, hi, rng = 0, 3 - 1, "range(n)"
            self.feat("range_of_argument")
        elif form == "ab":
            a, b = self.int(0, 1), self.int(2, 3)
            lo, hi, rng = a, b - 1, f"range({a}, {b})"
        elif form == "rev":
            k = self.int(1, 3)
            lo, hi, rng = 0, k - 1, f"range({k - 1}, -1, -1)"
            self.feat("range_step")
        else:
            k = self.int(1, 4)
            lo, hi, rng = 0, k - 1, f"range({k})"
        inner = dict(env)
        inner[i] = Var("i", lo=lo, hi=hi)
        body, _ = self.sub(inner, ctx, loop=True)
        self.feat("for_range")
        return [f"for {i} in {rng}:"] + body, _keep(env, _)

    def s_for_array(self, env, ctx):
        arrs = [n for n in self.floats(env, nobuf=True) if env[n].shape != ()]
        if not arrs:
            return None
        a = self.pick(arrs)
        s = env[a].shape
        r = self.fresh("r")
        inner = dict(env)
        inner[r] = Var("f", s[1:])
        form = self.pick(["plain", "enumerate", "zip", "reversed"])
        if form == "enumerate":
            i = self.fresh("i")
            inner[i] = Var("i", lo=0, hi=s[0] - 1)
            head = f"for {i}, {r} in enumerate({a}):"
        elif form == "zip":
            others = [n for n in self.floats(env, nobuf=True) if env[n].shape[:1] == s[:1]]
            b = self.pick(others)
            r2 = self.fresh("r")
            inner[r2] = Var("f", env[b].shape[1:])
            head = f"for {r}, {r2} in zip({a}, {b}):"
        elif form == "reversed":
            head = f"for {r} in reversed({a}):"
        else:
            head = f"for {r} in {a}:"
        self.feat("for_" + form)
        body, _ = self.sub(inner, ctx, loop=True)
        return [head] + body, _keep(env, _)

    def s_while(self, env, ctx):
        k = self.fresh("k")
        K = self.int(1, 4)
        c = self.cond(env, self.max_depth - 1)
        inner = dict(env)
        inner[k] = Var("i", lo=1, hi=K)
        self.feat("while")
        body, _ = self.sub(inner, ctx, loop=True)
        if self.flag(0.5):
            head = [f"{k} = 0", f"while {k} < {K} and ({c}):", f"    {k} = {k} + 1"]  # c may be an `or`
        else:
            head = [f"{k} = 0", f"while {c}:", f"    {k} += 1", f"    if {k} > {K}:", "        break"]
        return head + body, _keep(env, _)

    def s_break(self, env, ctx):
        c = self.cond(env, self.max_depth - 1)
        self.feat("break")
        return [f"if {c}:", "    break"], env

    def s_continue(self, env, ctx):
        c = self.cond(env, self.max_depth - 1)
        self.feat("continue")
        pre = []
        if self.flag(0.5):
            pre, _ = self.sub(env, ctx, n=1)
        return [f"if {c}:"] + pre + ["    continue"], env

    def s_early_return(self, env, ctx):
        c = self.cond(env, self.max_depth - 1)
        self.feat("early_return")
        return [f"if {c}:", "    return " + self.ret_text(env, ctx["ret"])], env

    def ret_text(self, env, spec):
        if spec == "scalar":
            return self.ret_value(env, ())
        kind, what = spec
        if kind == "array":
            return self.ret_value(env, what)
        if kind == "tuple":
            return "(" + ", ".join(self.ret_value(env, s) for s in what) + ")"
        return "{" + ", ".join(f"{k!r}: {self.ret_value(env, s)}" for k, s in what) + "}"

    def ret_value(self, env, shape):
        """A returned value; it reads some float variable (outputs that are constants
        make for dull programs)."""
        e = self.rhs(env, shape) if shape != () else self.expr(env, (), self.max_depth)
        names = set(self.floats(env))
        if names and not names & set(re.findall(r"[A-Za-z_]\w*", e.text)):
            e = E(f"{self.par(e)} + {self.par(self.from_var(env, shape))}", shape, fresh=True)
        return self.arg(e)

    def s_tuple(self, env, ctx):
        shapes = tuple(self.pick(SHAPES) for _ in range(self.int(2, 3)))
        elems = [self.arg(self.rhs(env, s, self.max_depth - 1)) for s in shapes]
        env = dict(env)
        name = self.fresh("t")
        self.feat("tuple")
        lines = [f"{name} = ({', '.join(elems)})"]
        if self.flag(0.5):
            names = [self.fresh() for _ in shapes]
            lines.append(f"{', '.join(names)} = {name}")
            for n, s in zip(names, shapes):
                env[n] = Var("f", s)
            self.feat("unpack")
        env[name] = Var("tup", items=shapes)
        return lines, env

    def s_dict(self, env, ctx):
        keys = ["a", "b", "c"][: self.int(1, 3)]
        shapes = tuple((k, self.pick(SHAPES)) for k in keys)
        name = self.fresh("d")
        elems = [f"{k!r}: {self.arg(self.rhs(env, s, self.max_depth - 1))}" for k, s in shapes]
        env = dict(env)
        env[name] = Var("dict", items=shapes)
        self.feat("dict")
        return [f"{name} = {{{', '.join(elems)}}}"], env

    def s_list(self, env, ctx):
        shape = self.pick(SHAPES)
        K = self.int(1, 3)
        name = self.fresh("lst")
        i = self.fresh("i")
        inner = dict(env)
        inner[i] = Var("i", lo=0, hi=K - 1)
        e = self.expr(inner, shape, self.max_depth - 1)
        self.feat("list_append")
        lines = [f"{name} = []", f"for {i} in range({K}):", f"    {name}.append({self.arg(e)})"]
        env = dict(env)
        if self.flag(0.4):
            acc = self.fresh("acc")
            it = self.fresh("r")
            lines += [f"{acc} = 0.0", f"for {it} in {name}:",
                      f"    {acc} = {acc} + {self.pick(['np.sum', 'np.sin', 'np.tanh'])}({it})" if shape == ()
                      else f"    {acc} = {acc} + np.sum({it})"]
            env[acc] = Var("f", ())
            self.feat("for_list")
        env[name] = Var("list", items=(shape, K))
        return lines, env

    def s_closure(self, env, ctx):
        shape = self.pick(SHAPES)
        name = self.fresh("g")
        env = dict(env)
        captured = {n: Var(v.kind, v.shape, v.lo, v.hi, v.items, v.params, ro=True)
                    for n, v in env.items() if not v.buf and v.kind in ("f", "fn")}
        if self.flag(0.5):
            text = self.lambda_text(captured, shape, self.max_depth - 1)
            self.feat("closure_lambda")
            lines = [f"{name} = {text}"]
        else:
            p = self.fresh("u")
            inner = dict(captured)
            inner[p] = Var("f", shape)
            c = {"loop": False, "depth": ctx["depth"] + 1, "ret": None, "fn": name}
            saved, self.budget = self.budget, min(self.budget, 2)
            body, inner2 = self.block(inner, self.int(0, 2), c)
            self.budget = saved
            ret = self.arg(self.expr(inner2, shape, self.max_depth - 1))
            lines = [f"def {name}({p}):"] + ["    " + l for l in body] + [f"    return {ret}"]
            self.feat("closure_def")
        env[name] = Var("fn", shape, params=(shape,))
        if self.flag(0.2):      # rebinding a captured variable after the def (late binding)
            fl = [n for n in self.floats(env, nobuf=True) if not env[n].param]
            if fl:
                n = fl[-1]
                lines.append(f"{n} = {self.arg(self.rhs(env, env[n].shape, 1))}")
                self.feat("late_binding")
        return lines, env

    # -- functions and modules ----------------------------------------------------
    def helper(self):
        name = f"h{len(self.helpers)}"
        kind = self.pick(["plain", "plain", "default", "recursive", "apply"])
        out = self.pick(SHAPES)
        if kind == "recursive":
            self.helpers.append(Helper(name, (out, None), out, kind="recursive"))
            return [f"def {name}(a, k):", "    if k <= 0:",
                    f"        return {self.pick(['np.sin(a)', 'a * 0.5', 'np.tanh(a) + 1.0'])}",
                    f"    return {self.pick(['a * 0.5', 'np.cos(a)'])} + {name}(np.tanh(a), k - 1)"]
        if kind == "apply":
            self.helpers.append(Helper(name, (None, out), out, kind="apply"))
            return [f"def {name}(fn, a):",
                    f"    return {self.pick(['fn(fn(a))', 'fn(a) + a', 'fn(np.sin(a)) * 0.5'])}"]
        if kind == "default":
            ps = self.pick(SHAPES)
            env = {"a": Var("f", ps, param=True), "b": Var("f", (), param=True)}
            e = self.rhs(env, out, 2)
            self.helpers.append(Helper(name, (ps, ()), out, default=True))
            self.feat("default_argument")
            return [f"def {name}(a, b=0.5):", f"    return {self.arg(e)}"]
        pshapes = tuple(self.pick(SHAPES) for _ in range(self.int(1, 2)))
        pnames = ["a", "b"][: len(pshapes)]
        env = {p: Var("f", s, param=True) for p, s in zip(pnames, pshapes)}
        ret = "scalar" if out == () else ("array", out)
        ctx = {"loop": False, "depth": 1, "ret": ret, "fn": name}
        saved, self.budget = self.budget, 3
        body, env2 = self.block(env, self.int(0, 3), ctx)
        self.budget = saved
        r = self.ret_text(env2, ret)
        self.helpers.append(Helper(name, pshapes, out))
        self.feat("helper")
        return [f"def {name}({', '.join(pnames)}):"] + ["    " + l for l in body] + [f"    return {r}"]

    def program(self, out_kind=None):
        n_args = self.int(1, 3)
        shapes = tuple(self.pick(SHAPES) for _ in range(n_args))
        argnames = ("x", "y", "z")[:n_args]
        int_arg = self.int(1, 3) if self.flag(0.2) else None
        helpers = []
        for _ in range(self.int(0, 2)):
            helpers.append(self.helper())
        env = {a: Var("f", s, param=True) for a, s in zip(argnames, shapes)}
        if int_arg is not None:
            env["n"] = Var("i", lo=1, hi=3)
            self.feat("int_argument")
        kind = out_kind or self.pick(["scalar", "scalar", "array", "tuple", "dict"])
        if kind == "scalar":
            spec = "scalar"
        elif kind == "array":
            spec = ("array", self.pick([s for s in SHAPES if s != ()]))
        elif kind == "tuple":
            spec = ("tuple", (self.pick(SHAPES), self.pick(SHAPES)))
        else:
            spec = ("dict", (("p", self.pick(SHAPES)), ("q", self.pick(SHAPES))))
        self.feat("output_" + kind)
        ctx = {"loop": False, "depth": 0, "ret": spec, "fn": "core"}
        self.budget = self.max_stmts
        self.top_envs = []
        body = []
        self.top_starts = []
        for _ in range(self.int(1, self.max_stmts)):
            self.top_envs.append(env)
            self.top_starts.append(len(body))
            lines, env = self.block(env, 1, ctx)
            body += lines
        self.top_envs.append(env)
        self.top_starts.append(len(body))
        body.append("return " + self.ret_text(env, spec))
        params = list(argnames) + (["n"] if int_arg is not None else [])
        return dict(shapes=shapes, argnames=argnames, int_arg=int_arg, spec=spec, params=params,
                    helpers=helpers, body=body)


EXPR_KINDS = {"unary", "binary", "leaf", "reduce", "index", "dot", "shape_op", "where", "maxmin",
              "div", "call", "container", "ifexp", "intmix"}
STMT_KINDS = {"assign", "reassign", "augassign", "buffer", "setitem", "if", "for_range", "tuple",
              "dict", "for_array", "while", "closure", "list", "break", "continue", "early_return"}
ALL_FEATURES = EXPR_KINDS | STMT_KINDS | {f for f, _ in UNARY} | {"reduce_max", "self_op"}


def _is_call(text):
    """`text` is one call `name(...)` (needs no parentheses around it)."""
    m = re.match(r"[\w.]+\(", text)
    if not m:
        return False
    depth = 0
    for i in range(m.end() - 1, len(text)):
        depth += {"(": 1, ")": -1}.get(text[i], 0)
        if depth == 0:
            return i == len(text) - 1
    return False


def _broadcasts(s, t):
    return len(s) <= len(t) and all(a == b or a == 1 for a, b in zip(s[::-1], t[::-1]))


def _meet(before, branches):
    """Variables usable after an if: defined with the same kind and shape on every path."""
    out = {}
    for n, v in branches[0].items():
        vs = [b.get(n) for b in branches]
        if all(w is not None and w.kind == v.kind and w.shape == v.shape and w.items == v.items
               and w.params == v.params for w in vs):
            out[n] = Var(v.kind, v.shape, v.lo, v.hi, v.items, v.params,
                         buf=all(w.buf for w in vs), param=v.param, ro=v.ro)
    return out


def _keep(before, after):
    """After a loop: the variables that existed before it (the body may run zero times or
    break early), with buffer status kept only if the body kept it."""
    out = {}
    for n, v in before.items():
        w = after.get(n, v)
        if w.kind == v.kind and w.shape == v.shape:
            out[n] = Var(v.kind, v.shape, v.lo, v.hi, v.items, v.params, buf=v.buf and w.buf,
                         param=v.param, ro=v.ro)
    return out


def render(parts, gen: Gen, inject=None):
    """Module text. `inject`: (function name, statement index, lines, line offset of the
    offending line within `lines`) -> also returns that line's number."""
    head = ["import numpy as np", "import s2sad as ad", ""]
    for shape in sorted(gen.consts_used, key=str):
        name, text = CONST[shape]
        head.append(f"{name} = {text}")
    lines = head + [""]
    expect = None
    helpers = list(parts["helpers"])
    if inject is not None and inject[0] != "core":
        helpers.append(inject[2])
    for h in helpers:
        lines += h + ["", ""] if h is not None else []
    if inject is not None and inject[0] != "core":
        # the injected helper: find the offending line
        base = len(lines) - 2 - len(inject[2])
        expect = base + inject[3] + 1
    params = ", ".join(parts["params"])
    lines.append(f"def core({params}):")
    body = list(parts["body"])
    if inject is not None and inject[0] == "core":
        at = gen.top_starts[inject[1]]
        expect = len(lines) + at + inject[3] + 1
        body = body[:at] + inject[2] + body[at:]
    if inject is not None and inject[0] != "core":
        body = [inject[4]] + body
    lines += ["    " + l for l in body]
    lines += ["", ""]
    spec = parts["spec"]
    lines.append(f"def f({params}):")
    if spec == "scalar":
        lines.append(f"    return core({params})")
    else:
        kind, what = spec
        lines.append(f"    r = core({params})")
        if kind == "array":
            terms = ["np.sum(np.sin(r) * r)"]
        elif kind == "tuple":
            terms = [f"np.sum(np.cos(r[{k}]))" if k % 2 else f"np.sum(r[{k}] * r[{k}])" for k in range(len(what))]
        else:
            terms = [f"np.sum(np.sin(r[{k!r}]))" for k, _ in what]
        lines.append("    return " + " + ".join(terms))
    lines += ["", ""]
    a0 = parts["argnames"][0]
    rest = ", ".join(parts["params"][1:])
    call = f"f({'u' + (', ' + rest if rest else '')})"
    lines.append(f"def fuzz_pair({params}, v):")
    lines.append(f"    return ad.jvp(lambda u: {call}, ({a0},), (v,))[1]")
    return "\n".join(lines) + "\n", expect


@st.composite
def programs(draw, max_stmts=7, max_depth=3, out_kind=None, allow=None):
    """A random, well-defined NumPy program (a `Program`)."""
    g = Gen(draw, max_stmts=max_stmts, max_depth=max_depth, allow=allow)
    parts = g.program(out_kind)
    src, _ = render(parts, g)
    return Program(src, parts["shapes"], parts["int_arg"], parts["spec"], frozenset(g.features),
                   parts["argnames"])


# ------------------------------------------------------------ unsupported constructs

def _unsupported_lines(g: Gen, env, kind):
    """Lines of an unsupported construct, the index of the line the error must name, and a
    regex its message must match."""
    fl = [n for n in g.floats(env) if not env[n].buf]
    v = g.pick(fl) if fl else "x"
    arr = [n for n in fl if env[n].shape != ()]
    nv = g.fresh("w")
    if kind == "class":
        return ["class Box:", "    scale = 2.0"], 0, "class"
    if kind == "with":
        return ["with np.errstate(all='ignore'):", f"    {nv} = {v} * 2.0"], 0, "with"
    if kind == "global":
        return ["global G", f"G = {v}"], 0, "global"
    if kind == "nonlocal":
        return ["def inner():", f"    nonlocal {v}", f"    {v} = {v} * 2.0", "inner()"], 1, "nonlocal"
    if kind == "varargs":
        return ["def va(*args):", "    return args[0] * 2.0", f"{nv} = va({v})"], 0, r"\*args|variable"
    if kind == "kwargs":
        return ["def vk(a, **kw):", "    return a * 2.0", f"{nv} = vk({v})"], 0, r"\*\*|keyword|kwargs"
    if kind == "lambda_varargs":
        return ["va = lambda *args: args[0] * 2.0", f"{nv} = va({v})"], 0, r"\*args|variable"
    if kind == "del":
        return [f"{nv} = {v} * 1.0", f"del {nv}"], 1, "del"
    if kind == "attribute":
        target = arr[0] if arr else "x"
        return [f"{nv} = {target} * 1.0", f"{nv}.tag = 1"], 1, "attribute"
    if kind == "exec":
        return ["exec('pass')"], 0, "exec"
    if kind == "unknown_c":
        return [f"{nv} = np.fft.fft(np.atleast_1d({v})).real"], 0, r"numpy\.fft|fft"
    if kind == "yield":
        return [f"yield {v}"], 0, "generator"
    raise ValueError(kind)


UNSUPPORTED = ["class", "with", "global", "nonlocal", "varargs", "kwargs", "lambda_varargs", "del",
               "attribute", "exec", "unknown_c", "yield"]


@st.composite
def unsupported_programs(draw, max_stmts=4, construct=None):
    """A valid program with one construct that SPEC section 3 refuses (`construct`, or one
    drawn from UNSUPPORTED), injected into `core` or into a helper that `core` calls first
    thing."""
    g = Gen(draw, max_stmts=max_stmts, max_depth=2)
    kind = construct or g.pick(UNSUPPORTED)
    parts = g.program()
    where = g.pick(["core", "helper"])
    if where == "core":
        pos = g.int(0, len(g.top_starts) - 1)
        env = g.top_envs[pos]
        lines, off, text = _unsupported_lines(g, env, kind)
        inject = ("core", pos, lines, off)
    else:
        a0 = parts["argnames"][0]
        env = {"x": Var("f", parts["shapes"][0], param=True)}
        lines, off, text = _unsupported_lines(g, env, kind)
        hl = ["def bad_helper(x):"] + ["    " + l for l in lines] + ["    return x * 2.0"]
        inject = ("bad_helper", None, hl, off + 1, f"{g.fresh('w')} = bad_helper({a0})")
    src, line = render(parts, g, inject)
    name = "core" if where == "core" else "bad_helper"
    def_line = next(i for i, l in enumerate(src.splitlines(), 1) if l.startswith(f"def {name}("))
    return Program(src, parts["shapes"], parts["int_arg"], parts["spec"], frozenset(g.features),
                   parts["argnames"], expect_line=line, expect_text=text, construct=kind,
                   inject_in=where, def_line=def_line)


# ================================================================== loading

_TMP = None
_LOADED: dict[str, object] = {}


def tmpdir():
    global _TMP
    if _TMP is None:
        _TMP = tempfile.mkdtemp(prefix="s2sad_fuzz_")
    return _TMP


def load(prog: Program, directory=None):
    """Write the program to a .py file and import it (s2sad reads the source from there)."""
    digest = hashlib.sha1(prog.source.encode()).hexdigest()[:12]
    name = f"fuzz_{digest}"
    if name in _LOADED:
        mod = _LOADED[name]
        prog.path = mod.__file__
        return mod
    path = os.path.join(directory or tmpdir(), name + ".py")
    with open(path, "w") as fh:
        fh.write(prog.source)
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SyntaxWarning)
        spec.loader.exec_module(mod)
    if len(_LOADED) > 64:
        _LOADED.pop(next(iter(_LOADED)))
    _LOADED[name] = mod
    prog.path = path
    return mod


def load_source(source: str):
    """A program from source text (regression tests)."""
    return load(Program(source, (), None, None, frozenset(), ()))


# ================================================================== instrumentation

class Recorder:
    """Run-time side of the instrumented program copy.

    Every branch decision (comparison, maximum/minimum, abs, max/min reduction) appends
    (outcome, margin) to a trace: the margin is the signed quantity whose sign decides
    (a - b for a comparison).  In 'replay' mode stop_gradient returns the value recorded at
    the same occurrence in the base run, so finite differences see stop_gradient's
    derivative (zero) as s2sad must.
    """

    def __init__(self):
        self.mode = "record"
        self.trace = []
        self.stops = []
        self.k = 0

    def start(self, mode):
        self.mode = mode
        self.trace = []
        self.k = 0
        if mode == "record":
            self.stops = []

    def _margin(self, kind, d):
        self.trace.append((kind, np.array(d, dtype=float, copy=True)))

    def cmp(self, a, b, op):
        r = {"<": np.less, "<=": np.less_equal, ">": np.greater, ">=": np.greater_equal}[op](a, b)
        if not (_is_int(a) and _is_int(b)):
            self._margin("cmp" + op, np.subtract(a, b, dtype=float))
        return _py(r, a, b)

    def maxmin(self, fn, a, b):
        self._margin("maxmin", np.subtract(a, b, dtype=float))
        return fn(a, b)

    def abs(self, fn, a):
        self._margin("abs", a)
        return fn(a)

    def reduce(self, fn, a, axis=None, **kw):
        a = np.asarray(a, dtype=float)
        arg = (np.argmax if fn is np.max else np.argmin)(a, axis=axis)
        top = fn(a, axis=axis, keepdims=True)
        gaps = np.abs(a - top)
        if axis is None:
            gaps = gaps.ravel()
            gaps = np.delete(gaps, int(arg))
        else:
            gaps = np.sort(gaps, axis=axis)
            gaps = np.take(gaps, np.arange(1, a.shape[axis]), axis=axis)
        self.trace.append(("argmax", np.array(arg, dtype=float)))
        self._margin("gap", gaps + 1e-300 if gaps.size else gaps)
        return fn(a, axis=axis, **kw)

    def stop(self, v):
        if self.mode == "record":
            self.stops.append(copy.deepcopy(v))
            return v
        i = self.k
        self.k += 1
        if i >= len(self.stops):
            raise _PathChanged()
        return copy.deepcopy(self.stops[i])


class _PathChanged(Exception):
    pass


def _is_int(v):
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool) or (
        isinstance(v, np.ndarray) and v.dtype.kind in "iu")


def _py(r, a, b):
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return bool(r)
    return r


class _Instrument(ast.NodeTransformer):
    def visit_Compare(self, node):
        self.generic_visit(node)
        if len(node.ops) == 1 and type(node.ops[0]) in (ast.Lt, ast.LtE, ast.Gt, ast.GtE):
            op = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">="}[type(node.ops[0])]
            return ast.Call(ast.Attribute(ast.Name("_K", ast.Load()), "cmp", ast.Load()),
                            [node.left, node.comparators[0], ast.Constant(op)], [])
        return node

    def visit_Call(self, node):
        self.generic_visit(node)
        f = ast.unparse(node.func)
        K = ast.Name("_K", ast.Load())
        if f in ("np.maximum", "np.minimum"):
            return ast.Call(ast.Attribute(K, "maxmin", ast.Load()), [node.func] + node.args, [])
        if f in ("np.abs", "abs"):
            return ast.Call(ast.Attribute(K, "abs", ast.Load()), [node.func] + node.args, [])
        if f in ("np.max", "np.min"):
            return ast.Call(ast.Attribute(K, "reduce", ast.Load()), [node.func] + node.args, node.keywords)
        if f == "ad.stop_gradient":
            return ast.Call(ast.Attribute(K, "stop", ast.Load()), node.args, [])
        return node


def instrumented(prog: Program):
    """(namespace, Recorder) of the instrumented copy of the program."""
    tree = ast.parse(prog.source)
    tree = ast.fix_missing_locations(_Instrument().visit(tree))
    rec = Recorder()
    ns = {"_K": rec, "__name__": "fuzz_instrumented"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SyntaxWarning)
        exec(compile(tree, f"<instrumented {prog.path}>", "exec"), ns)
    return ns, rec


# ================================================================== oracles

class Mismatch(AssertionError):
    def __init__(self, oracle, message):
        self.oracle = oracle
        super().__init__(f"[{oracle}] {message}")


class Rejected(Exception):
    """The input is ill-conditioned for finite differences (near a branch decision, or
    values too large): the generator redraws it."""


@dataclass
class Outcome:
    status: str                 # ok | rejected | transform_error | mismatch | internal_error
    oracle: str = ""
    message: str = ""
    detail: str = ""
    features: frozenset = frozenset()
    stage: str = ""             # the entry of ORACLES that was running
    failures: list = field(default_factory=list)   # every failing oracle (check keeps going)
    input_seed: int | None = None                  # the seed of the input used (Case)

    def signature(self):
        """What tells one bug from another (roughly): status, oracle, and for errors the
        exception and its message with numbers and names' numeric suffixes blurred."""
        if self.status == "internal_error":
            first = self.message.splitlines()[0] if self.message else ""
            return (self.status, self.oracle, _blur(first)[:100])
        if self.status == "transform_error":
            return (self.status, _blur(re.sub(r"^.*?:\d+: ", "", self.message))[:100])
        return (self.status, self.oracle)


def _blur(text):
    text = re.sub(r"<s2sad:(\w+?):[0-9a-f]+>", r"<s2sad:\1>", text)
    text = re.sub(r"\b([A-Za-z_]+?)_?\d+\b", r"\1N", text)
    return re.sub(r"\d+(\.\d+)?", "N", text)


def leaves(tree):
    return [np.asarray(l, dtype=complex if np.iscomplexobj(l) else float)
            for l in ad.tree_util.tree_leaves(tree)]


def _scale(*trees):
    m = 1.0
    for t in trees:
        for l in leaves(t):
            if l.size:
                m = max(m, float(np.max(np.abs(l))))
    return m


def assert_close(oracle, a, b, rtol, scale=None, what=""):
    la, lb = leaves(a), leaves(b)
    if len(la) != len(lb):
        raise Mismatch(oracle, f"{what}: {len(la)} leaves vs {len(lb)}")
    s = _scale(a, b) if scale is None else scale
    for i, (x, y) in enumerate(zip(la, lb)):
        if np.shape(x) != np.shape(y):
            raise Mismatch(oracle, f"{what}: leaf {i} shape {np.shape(x)} vs {np.shape(y)}")
        if not np.all(np.isfinite(x)) or not np.all(np.isfinite(y)):
            if not np.array_equal(x, y, equal_nan=True):
                raise Mismatch(oracle, f"{what}: leaf {i} non-finite:\n{x}\nvs\n{y}")
            continue
        err = float(np.max(np.abs(x - y))) if x.size else 0.0
        if err > rtol * s:
            raise Mismatch(oracle, f"{what}: leaf {i} differs by {err:.3g} (scale {s:.3g}):\n{x}\nvs\n{y}")


def _pair(a, b):
    return sum(float(np.real(np.sum(x * y))) for x, y in zip(leaves(a), leaves(b)))


class Case:
    """A loaded program with concrete inputs, directions and finite-difference helpers."""

    H1 = 1e-3      # first-order stencil: h, h/2, h/4
    H2 = 1e-2      # second-order stencil
    TOL1 = 1e-6    # jvp vs finite differences: |error| <= TOL1 * (1 + max|derivative|)
    TOL2 = 1e-5    # v^T H v vs second differences

    def __init__(self, prog: Program, seed: int):
        self.prog = prog
        self.mod = load(prog)
        self.ns, self.rec = instrumented(prog)
        rng = np.random.default_rng(seed)
        self.args = []
        for s in prog.shapes:
            self.args.append(float(rng.uniform(-1.5, 1.5)) if s == () else rng.uniform(-1.5, 1.5, size=s))
        if prog.int_arg is not None:
            self.args.append(prog.int_arg)
        self.nf = len(prog.shapes)
        self.dirs = [float(rng.normal()) if s == () else rng.normal(size=s) for s in prog.shapes]
        self.rng = rng

    def with_args(self, args):
        return [a.copy() if isinstance(a, np.ndarray) else a for a in args]

    def moved(self, t, dirs):
        out = [a + t * v for a, v in zip(self.args[: self.nf], dirs)]
        out = [float(a) if np.ndim(a) == 0 and not isinstance(a, np.ndarray) else a for a in out]
        return out + self.args[self.nf:]

    def run_instr(self, fname, args, mode):
        self.rec.start(mode)
        try:
            out = self.ns[fname](*self.with_args(args))
        except _PathChanged:
            raise Rejected("stop_gradient occurrences changed")
        return out, self.rec.trace

    def stable(self, base, other):
        if len(base) != len(other):
            return False
        for (k0, d0), (k1, d1) in zip(base, other):
            if k0 != k1 or d0.shape != d1.shape:
                return False
            if k0 == "argmax":
                if not np.array_equal(d0, d1):
                    return False
                continue
            move = np.abs(d1 - d0)
            # the deciding quantity stays on its side with a wide margin: it would have to
            # move three times as far as it did over the stencil to change the decision
            if np.any((np.abs(d0) <= 3 * move) & ~((d0 == 0) & (d1 == 0))):
                return False
            if np.any(np.sign(d0) != np.sign(d1)):
                return False
        return True

    def fd(self, fname, dirs, h, order=1, rtol=1e-6):
        """Central differences of `fname` along `dirs` (first or second order), Richardson-
        extrapolated on the steps h, h/2, h/4, after checking every branch decision is
        stable over the stencil.  Two extrapolations (h, h/2 and h/2, h/4) estimate the
        error; the input is rejected unless that is below a tenth of the tolerance
        `rtol * (1 + |derivative|)` the oracle will use, so a mismatch is never the finite
        differences' fault."""
        base, trace0 = self.run_instr(fname, self.args, "record")
        steps = [h, h / 2, h / 4]
        vals = {}
        for t in [s * sign for s in steps for sign in (1, -1)]:
            try:
                out, tr = self.run_instr(fname, self.moved(t, dirs), "replay")
            except Rejected:
                raise
            except Exception as e:  # a changed path can make the replay inconsistent
                raise Rejected(f"evaluation at t={t} failed: {e}")
            if not self.stable(trace0, tr):
                raise Rejected(f"branch decision near the input ({fname}, t={t})")
            vals[t] = leaves(out)
        b = leaves(base)
        res = []
        for i in range(len(b)):
            if order == 1:
                D = [(vals[s][i] - vals[-s][i]) / (2 * s) for s in steps]
            else:
                D = [(vals[s][i] - 2 * b[i] + vals[-s][i]) / s ** 2 for s in steps]
            R1 = (4 * D[1] - D[0]) / 3
            R2 = (4 * D[2] - D[1]) / 3
            err = float(np.max(np.abs(R1 - R2))) if np.size(R2) else 0.0
            scale = 1.0 + (float(np.max(np.abs(R2))) if np.size(R2) else 0.0)
            if not np.isfinite(err) or err > 0.1 * rtol * scale:
                raise Rejected(f"finite differences not accurate enough ({fname}: error ~{err:.2g})")
            res.append(R2)
        return base, res


def _with_alarm(seconds, fn):
    if seconds is None or not hasattr(signal, "SIGALRM"):
        return fn()

    def on_alarm(signum, frame):
        raise TimeoutError(f"program took longer than {seconds}s")
    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(seconds)
    try:
        return fn()
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


ORACLES = ("jvp", "linearize", "vjp", "jacobian", "grad", "second_order", "source")
# Third derivatives by three routes: not in the default set, because generated third-order
# code of a large random program can take minutes to build (the CI sample timed out);
# use check(prog, oracles=ORACLES + EXTRA_ORACLES) on small programs.
EXTRA_ORACLES = ("third_order",)
# vmap vs a loop over the batch (benchmarks/fuzz.py --vmap)
VMAP_ORACLES = ("vmap",)


def check(prog: Program, seed: int = 0, oracles=ORACLES, attempts=8, timeout=120,
          exact_seed=False) -> Outcome:
    """Run every oracle on `prog`; inputs are redrawn (seed*1000, seed*1000+1, ...) until
    finite differences are well conditioned (`exact_seed`: the input of seed `seed` only,
    as recorded in `Outcome.input_seed`)."""
    def go():
        case = None
        for k in range(1 if exact_seed else attempts):
            if exact_seed:
                c = Case(prog, seed)
                c.seed = seed
            else:
                c = Case(prog, seed * 1000 + k)
                c.seed = seed * 1000 + k
            try:
                c.primal = _primal(c)
                c.fd1 = c.fd("core", c.dirs, Case.H1, rtol=Case.TOL1)
                z = [d * 0.0 for d in c.dirs]
                z[0] = c.dirs[0]
                c.dirs0 = z
                c.fd2 = c.fd("f", z, Case.H2, order=2, rtol=Case.TOL2)
                case = c
                break
            except Rejected:
                continue
        if case is None:
            return Outcome("rejected", message="no well-conditioned input found", features=prog.features)
        out = _run_oracles(case, oracles)
        out.input_seed = case.seed
        for f in out.failures:
            f.input_seed = case.seed
        return out
    try:
        return _with_alarm(timeout, go)
    except TimeoutError as e:
        return Outcome("internal_error", "timeout", f"TimeoutError: {e}", features=prog.features)


class GeneratorBug(Exception):
    pass


def _primal(c: Case):
    try:
        with np.errstate(all="ignore"):
            out = c.mod.core(*c.with_args(c.args))
            fo = c.mod.f(*c.with_args(c.args))
    except Exception as e:  # the generator promised a valid program
        raise GeneratorBug(f"the generated program fails in plain Python: {type(e).__name__}: {e}\n"
                           f"{c.prog.source}") from e
    spec = c.prog.out_spec
    if spec is not None:     # the output has the declared structure and shapes
        want = ([()] if spec == "scalar" else [spec[1]] if spec[0] == "array" else list(spec[1])
                if spec[0] == "tuple" else [s for _, s in sorted(spec[1])])
        got = [np.shape(l) for l in ad.tree_util.tree_leaves(out)]
        kind_ok = (spec == "scalar" or spec[0] == "array" or
                   (spec[0] == "tuple" and isinstance(out, tuple)) or (spec[0] == "dict" and isinstance(out, dict)))
        kind_ok = kind_ok and all(np.asarray(l).dtype.kind == "f" for l in ad.tree_util.tree_leaves(out))
        scalar = isinstance(fo, (float, np.floating)) or (isinstance(fo, np.ndarray) and fo.shape == ()
                                                          and fo.dtype.kind == "f")
        if got != want or not kind_ok or not scalar:
            raise GeneratorBug(f"the program's output has shapes {got}, expected {want} "
                               f"(f returns {type(fo).__name__})\n{c.prog.source}")
    for l in leaves(out) + leaves(fo):
        if not np.all(np.isfinite(l)) or (l.size and np.max(np.abs(l)) > 1e4):
            raise Rejected("values too large")
    return out


def _where(exc):
    """The innermost frame inside s2sad or generated code, for an internal error."""
    tb = traceback.extract_tb(exc.__traceback__)
    inner = [fr for fr in tb if "/transforms/" in fr.filename or "/runtime/" in fr.filename
             or "/s2sad/" in fr.filename or fr.filename.startswith("<s2sad")]
    fr = (inner or tb)[-1] if (inner or tb) else None
    if fr is None:
        return ""
    name = fr.filename.rsplit("/", 2)
    return f"{'/'.join(name[-2:])}:{fr.lineno} in {fr.name}: {fr.line}"


NEEDS_JVP = ("linearize", "vjp", "jacobian")


def _run_oracles(c: Case, oracles):
    """Run the oracles in order; one that fails does not stop the others (those that need
    the JVP are skipped when it failed).  The first failure is returned, all of them in
    `.failures`."""
    prog = c.prog
    fails = []
    for name in oracles:
        if name in NEEDS_JVP and getattr(c, "jvp_out", None) is None:
            if "jvp" in oracles:
                continue
            try:
                c.jvp_out = ad.jvp(c.mod.core, tuple(c.with_args(c.args)), _tangents(c, c.dirs))[1]
            except Exception:
                continue
        try:
            with np.errstate(all="ignore"):
                globals()["_o_" + name](c)
        except TransformError as e:
            fails.append(Outcome("transform_error", name, str(e), features=prog.features, stage=name))
        except Mismatch as e:
            fails.append(Outcome("mismatch", e.oracle, str(e), features=prog.features, stage=name))
        except GeneratorBug:
            raise
        except Exception as e:
            fails.append(Outcome("internal_error", name, f"{type(e).__name__}: {e}"[:500], _where(e),
                                 features=prog.features, stage=name))
    if not fails:
        out = Outcome("ok", features=prog.features)
    else:
        rank = {"internal_error": 0, "mismatch": 1, "transform_error": 2}
        out = copy.copy(min(fails, key=lambda o: rank[o.status]))
    out.failures = fails
    return out


def _float_argnums(c):
    return tuple(range(c.nf))


def _tangents(c, dirs):
    return tuple(list(dirs) + [0] * (len(c.args) - c.nf))


def _o_jvp(c: Case):
    out, tan = ad.jvp(c.mod.core, tuple(c.with_args(c.args)), _tangents(c, c.dirs))
    assert_close("jvp primal", out, c.primal, 1e-10, what="primal output of jvp")
    base, fd = c.fd1
    lt = leaves(tan)
    if len(lt) != len(fd):
        raise Mismatch("jvp vs finite differences", f"{len(lt)} tangent leaves for {len(fd)} outputs")
    for i, (a, b) in enumerate(zip(lt, fd)):
        s = 1.0 + float(np.max(np.abs(b))) if np.size(b) else 1.0
        assert_close("jvp vs finite differences", a, b, Case.TOL1, scale=s, what=f"output leaf {i}")
    c.jvp_out = tan


def _o_linearize(c: Case):
    out, lin = ad.linearize(c.mod.core, *c.with_args(c.args))
    assert_close("linearize primal", out, c.primal, 1e-10, what="primal output of linearize")
    assert_close("linearize vs jvp", lin(*_tangents(c, c.dirs)), c.jvp_out, 1e-9, what="tangent")


def _o_vjp(c: Case):
    out, pb = ad.vjp(c.mod.core, *c.with_args(c.args))
    assert_close("vjp primal", out, c.primal, 1e-10, what="primal output of vjp")
    w = ad.tree_util.tree_map(lambda l: c.rng.normal(size=np.shape(l)) if np.ndim(l) else float(c.rng.normal()),
                              c.primal)
    cts = pb(w)
    if len(cts) != len(c.args):
        raise Mismatch("vjp structure", f"{len(cts)} cotangents for {len(c.args)} arguments")
    lhs = _pair(w, c.jvp_out)
    rhs = _pair(list(cts[: c.nf]), list(c.dirs))
    s = 1.0 + _scale(w) * _scale(c.jvp_out) * sum(np.size(l) for l in leaves(c.jvp_out)) + abs(lhs)
    if abs(lhs - rhs) > 1e-9 * s:
        raise Mismatch("vjp vs jvp (dot product)", f"<w, J v> = {lhs!r} but <J^T w, v> = {rhs!r}")
    c.w = w


def _o_jacobian(c: Case):
    nums = _float_argnums(c)
    Jf = ad.jacfwd(c.mod.core, argnums=nums)(*c.with_args(c.args))
    Jr = ad.jacrev(c.mod.core, argnums=nums)(*c.with_args(c.args))
    assert_close("jacfwd vs jacrev", Jf, Jr, 1e-9, what="Jacobian")
    # J v (contract each output leaf's Jacobian with the direction) equals the JVP
    outs = leaves(c.primal)
    flat = leaves(Jf)
    k = 0
    jv = []
    for o in outs:
        acc = np.zeros(np.shape(o))
        for d in c.dirs:
            J = flat[k]
            k += 1
            acc = acc + np.tensordot(J, np.asarray(d), axes=np.ndim(d)) if np.ndim(d) else acc + J * d
        jv.append(acc)
    assert_close("jacfwd vs jvp", jv, leaves(c.jvp_out), 1e-9, what="J v")


def _o_grad(c: Case):
    nums = _float_argnums(c)
    args = c.with_args(c.args)
    g = ad.grad(c.mod.f, argnums=nums)(*args)
    v, g2 = ad.value_and_grad(c.mod.f, argnums=nums)(*c.with_args(c.args))
    fo = c.mod.f(*c.with_args(c.args))
    assert_close("value_and_grad value", v, fo, 1e-10, what="value")
    assert_close("value_and_grad vs grad", g2, g, 1e-12, what="gradient")
    Jr = ad.jacrev(c.mod.f, argnums=nums)(*c.with_args(c.args))
    Jf = ad.jacfwd(c.mod.f, argnums=nums)(*c.with_args(c.args))
    assert_close("grad vs jacrev", g, Jr, 1e-9, what="gradient")
    assert_close("grad vs jacfwd", g, Jf, 1e-9, what="gradient")
    _, pb = ad.vjp(c.mod.f, *c.with_args(c.args))
    assert_close("grad vs vjp", g, pb(1.0)[: c.nf], 1e-9, what="gradient")
    _, t = ad.jvp(c.mod.f, tuple(c.with_args(c.args)), _tangents(c, c.dirs))
    gv = _pair(list(g), list(c.dirs))
    s = 1.0 + _scale(g) * _scale(c.dirs) * sum(np.size(d) for d in c.dirs)
    if abs(gv - float(t)) > 1e-9 * s:
        raise Mismatch("grad vs jvp", f"<grad, v> = {gv!r} but jvp gives {float(t)!r}")
    c.grad = g


def _o_second_order(c: Case):
    if not hasattr(c.mod, "fuzz_pair"):    # a reduced program that did not need it
        return
    f = c.mod.f
    args = c.with_args(c.args)
    x0 = np.asarray(c.args[0])
    v0 = c.dirs[0]
    n = x0.size
    H = ad.hessian(f)(*args)
    if np.shape(H) != np.shape(x0) * 2:
        raise Mismatch("hessian shape", f"{np.shape(H)} for an input of shape {np.shape(x0)}")
    Hm = np.reshape(H, (n, n))
    s = _scale(Hm)
    assert_close("hessian symmetric", Hm, Hm.T, 1e-9, scale=s, what="H vs H^T")
    hv4 = np.reshape(Hm @ np.ravel(v0), np.shape(x0))
    g0 = ad.grad(f)
    hv1 = ad.jvp(g0, tuple(c.with_args(c.args)), _tangents(c, c.dirs0))[1]
    hv2 = ad.grad(c.mod.fuzz_pair)(*c.with_args(c.args), v0)
    HR = ad.jacrev(g0)(*c.with_args(c.args))
    hv3 = np.reshape(np.reshape(HR, (n, n)) @ np.ravel(v0), np.shape(x0))
    sc = 1.0 + _scale(hv4, hv1) * (1 + _scale(v0))
    assert_close("hvp: jvp(grad) vs hessian @ v", hv1, hv4, 1e-9, scale=sc, what="Hv")
    assert_close("hvp: grad(jvp pairing) vs hessian @ v", hv2, hv4, 1e-9, scale=sc, what="Hv")
    assert_close("hvp: jacrev(grad) @ v vs hessian @ v", hv3, hv4, 1e-9, scale=sc, what="Hv")
    base, (fd,) = c.fd2
    vhv = float(np.sum(np.ravel(v0) * np.ravel(hv4)))
    fd = float(fd)
    if abs(vhv - fd) > Case.TOL2 * (1.0 + abs(fd)):
        raise Mismatch("v^T H v vs second differences", f"v^T H v = {vhv!r}, finite differences {fd!r}")


def _o_third_order(c: Case):
    """Third derivatives of f with respect to its first argument (small inputs only): the
    tensor is symmetric under every permutation of its indices, and reverse^3, forward over
    reverse^2 and forward^2 over reverse agree."""
    if not hasattr(c.mod, "fuzz_pair"):
        return
    x0 = np.asarray(c.args[0])
    n = x0.size
    if n > 3:
        return
    f = c.mod.f
    args = c.with_args(c.args)
    shape = (n, n, n)
    t_rrr = np.reshape(ad.jacrev(ad.jacrev(ad.grad(f)))(*args), shape)
    t_frr = np.reshape(ad.jacfwd(ad.jacrev(ad.grad(f)))(*args), shape)
    t_ffr = np.reshape(ad.jacfwd(ad.hessian(f))(*args), shape)
    s = 1.0 + _scale(t_ffr)
    assert_close("third order: jacrev^2(grad) vs jacfwd(hessian)", t_rrr, t_ffr, 1e-8, scale=s, what="T")
    assert_close("third order: jacfwd(jacrev(grad)) vs jacfwd(hessian)", t_frr, t_ffr, 1e-8, scale=s,
                 what="T")
    for perm in ((1, 0, 2), (0, 2, 1), (2, 1, 0)):
        assert_close("third order symmetric", t_ffr, np.transpose(t_ffr, perm), 1e-8, scale=s,
                     what=f"T vs T.transpose{perm}")


VMAP_FACTORS = (1.0, 0.9, 1.1)


def _o_vmap(c: Case):
    """vmap vs a loop over a batch of three examples, of core and of grad(f) (per-example
    gradients): with the first argument batched (scaled per example, the others unbatched),
    and with every float argument batched (each scaled by another factor per example)."""
    base = c.args
    configs = [("in_axes=(0, None, ...)", (0,))]
    if c.nf > 1:
        configs.append(("every float argument batched", tuple(range(c.nf))))
    stack = lambda *xs: np.stack([np.asarray(x) for x in xs])  # noqa: E731
    for label, which in configs:
        examples = []
        for e in range(len(VMAP_FACTORS)):
            a = c.with_args(base)
            for j in which:
                a[j] = a[j] * VMAP_FACTORS[(e + j) % len(VMAP_FACTORS)]
            examples.append(a)
        in_axes = tuple(0 if j in which else None for j in range(len(base)))
        batched = [stack(*[e[j] for e in examples]) if j in which else x
                   for j, x in enumerate(c.with_args(base))]
        for name, fn in (("core", c.mod.core), ("grad(f)", ad.grad(c.mod.f))):
            try:
                wants = [fn(*c.with_args(e)) for e in examples]
            except Exception:
                return   # an example outside the program's domain: nothing to compare
            want = ad.tree_util.tree_map(stack, *wants)
            got = ad.vmap(fn, in_axes=in_axes)(*[x.copy() if isinstance(x, np.ndarray) else x
                                                 for x in batched])
            assert_close(f"vmap({name}) vs a loop", got, want, 1e-9,
                         what=f"vmap({name}), {label}")


def _o_source(c: Case):
    from s2sad.api import pipeline
    from s2sad.transforms.emit import emit, namespace_of
    nums = _float_argnums(c)
    makers = [
        ("grad", lambda: ad.grad(c.mod.f, argnums=nums)),
        ("jacfwd", lambda: ad.jacfwd(c.mod.core, argnums=nums)),
        ("jacrev", lambda: ad.jacrev(c.mod.core, argnums=nums)),
    ]
    skels = tuple(pipeline.skeleton_of(a) for a in c.args)
    for name, make in makers:
        T = make()
        want = T(*c.with_args(c.args))
        a = ad.source(T, *c.args)
        b = ad.source(make(), *c.args)
        if a != b:
            raise Mismatch("source deterministic", f"ad.source({name}) differs between two calls")
        ns = namespace_of(emit(T.specialize(skels)))
        root = re.search(r"^def (\w+)\(", a, flags=re.M).group(1)
        try:
            exec(compile(a, f"<source of {name}>", "exec"), ns)
            got = pipeline.build_value(T.specialize(skels).out_skel,
                                       pipeline.result_leaves(T.specialize(skels),
                                                              ns[root](*_flat(c.with_args(c.args)))))
        except Exception as e:
            raise Mismatch("source re-executable", f"exec of ad.source({name}) failed: "
                           f"{type(e).__name__}: {e}") from e
        assert_close("source re-executable", got, want, 1e-12, what=f"{name} from exec'd source")


def _flat(args):
    return [l for a in args for l in ad.tree_util.tree_leaves(a)]


# ------------------------------------------------------------ unsupported programs

def check_unsupported(prog: Program) -> Outcome:
    """Every transform must raise TransformError naming the file and the line."""
    mod = load(prog)
    args = []
    for s in prog.shapes:
        args.append(0.3 if s == () else np.linspace(0.2, 0.9, math.prod(s)).reshape(s))
    if prog.int_arg is not None:
        args.append(prog.int_arg)
    nf = len(prog.shapes)
    tans = tuple([np.ones_like(a) if isinstance(a, np.ndarray) else 1.0 for a in args[:nf]] + [0] * (len(args) - nf))
    transforms = [
        ("jvp", lambda: ad.jvp(mod.core, tuple(args), tans)),
        ("vjp", lambda: ad.vjp(mod.core, *args)),
        ("grad", lambda: ad.grad(mod.f)(*args)),
        ("jacfwd", lambda: ad.jacfwd(mod.core)(*args)),
        ("jacrev", lambda: ad.jacrev(mod.core)(*args)),
        ("source", lambda: ad.source(ad.grad(mod.f), *args)),
    ]
    for name, run in transforms:
        try:
            with np.errstate(all="ignore"):
                run()
        except TransformError as e:
            if e.filename != prog.path:
                return Outcome("mismatch", f"unsupported {prog.construct}: file",
                               f"{name}: TransformError names {e.filename!r}, not {prog.path!r}: {e}")
            if prog.construct == "yield":   # the generator function's def or the yield
                ok_line = e.lineno in (prog.expect_line, prog.def_line)
            else:
                ok_line = e.lineno == prog.expect_line
            if not ok_line:
                return Outcome("mismatch", f"unsupported {prog.construct}: line",
                               f"{name}: TransformError names line {e.lineno}, expected "
                               f"{prog.expect_line}: {e}")
            if not re.search(prog.expect_text, str(e), flags=re.I):
                return Outcome("mismatch", f"unsupported {prog.construct}: message",
                               f"{name}: message does not mention {prog.expect_text!r}: {e}")
            if "\n" in str(e):
                return Outcome("mismatch", f"unsupported {prog.construct}: one line",
                               f"{name}: message is not one line: {e!r}")
            continue
        except Exception as e:
            return Outcome("internal_error", f"unsupported {prog.construct}",
                           f"{name}: {type(e).__name__}: {e}"[:500], _where(e))
        return Outcome("mismatch", f"unsupported {prog.construct}: accepted",
                       f"{name} accepted a program with {prog.construct} (line {prog.expect_line})")
    return Outcome("ok")


def describe(prog: Program, out: Outcome, seed=None) -> str:
    """A failing program as text that reproduces it: `program_from_text` reads it back and
    `check(prog, seed)` fails again."""
    import json
    meta = {"shapes": [list(s) for s in prog.shapes], "int_arg": prog.int_arg,
            "out": _jsonable(prog.out_spec), "argnames": list(prog.argnames), "seed": seed}
    head = [f"# {out.status}: {out.oracle}"]
    head += ["# " + l for l in (out.message or "").splitlines()[:6]]
    if out.detail:
        head.append(f"# at {out.detail}")
    head.append("# program: " + json.dumps(meta))
    return "\n".join(head) + "\n" + prog.source


def _jsonable(spec):
    if isinstance(spec, (tuple, list)):
        return [_jsonable(x) for x in spec]
    return spec


def _tuplify(x):
    if isinstance(x, list):
        return tuple(_tuplify(y) for y in x)
    return x


def program_from_text(text):
    """(Program, seed) from the text `describe` wrote."""
    import json
    meta = None
    lines = []
    for line in text.splitlines():
        if line.startswith("# program: "):
            meta = json.loads(line[len("# program: "):])
        elif not (line.startswith("# ") and meta is None):
            lines.append(line)
    src = "\n".join(lines).lstrip("\n") + "\n"
    out = meta["out"]
    out = "scalar" if out == "scalar" else _tuplify(out)
    prog = Program(src, tuple(tuple(s) for s in meta["shapes"]), meta["int_arg"], out, frozenset(),
                   tuple(meta.get("argnames", ())))
    return prog, meta.get("seed")


# ================================================================== reduction

def _paths(node, path=()):
    yield path, node
    for fld, value in ast.iter_fields(node):
        if isinstance(value, list):
            for i, v in enumerate(value):
                if isinstance(v, ast.AST):
                    yield from _paths(v, path + ((fld, i),))
        elif isinstance(value, ast.AST):
            yield from _paths(value, path + ((fld, None),))


def _at(tree, path):
    node = tree
    for fld, i in path:
        node = getattr(node, fld) if i is None else getattr(node, fld)[i]
    return node


def _replaced(tree, path, new):
    """A copy of `tree` with the node at `path` replaced by `new` (a list is spliced into a
    statement list; an empty statement list gets `pass`)."""
    t = copy.deepcopy(tree)
    parent = _at(t, path[:-1])
    fld, i = path[-1]
    if i is None:
        setattr(parent, fld, new)
    else:
        lst = getattr(parent, fld)
        lst[i:i + 1] = new if isinstance(new, list) else [new]
        if not lst and fld in ("body", "orelse") and not isinstance(parent, ast.Module):
            if fld == "body":
                lst.append(ast.Pass())
            else:
                pass
    return t


_KEEP_CALLS = ("copy", "zeros", "ones", "zeros_like")


def _candidates(tree):
    """Smaller variants of a module: statements deleted, ifs replaced by a branch,
    expressions replaced by a subexpression, integer constants made smaller."""
    items = list(_paths(tree))
    # 1. statements (module-level definitions first)
    for path, node in items:
        if isinstance(node, ast.stmt) and path and path[-1][1] is not None:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            yield _replaced(tree, path, [])
    for path, node in items:
        if isinstance(node, ast.If):
            yield _replaced(tree, path, copy.deepcopy(node.body))
            if node.orelse:
                yield _replaced(tree, path, copy.deepcopy(node.orelse))
                t = _replaced(tree, path + (("orelse", None),), [])
                yield t
    # 2. expressions, larger first
    exprs = [(p, n) for p, n in items if isinstance(n, ast.expr) and not isinstance(n, (ast.Name, ast.Constant))
             and p and p[-1][0] not in ("targets", "target", "func", "ctx")]
    exprs.sort(key=lambda pn: -len(list(ast.walk(pn[1]))))
    for path, node in exprs:
        if isinstance(node, ast.Call):
            fn = node.func
            name = fn.attr if isinstance(fn, ast.Attribute) else getattr(fn, "id", "")
            if name in _KEEP_CALLS or name == "stop_gradient" and False:
                continue
        kids = []
        if isinstance(node, ast.BinOp):
            if isinstance(node.op, ast.Mult) and isinstance(node.right, ast.Constant) and node.right.value == 1.0:
                continue
            kids = [node.left, node.right]
        elif isinstance(node, ast.UnaryOp):
            kids = [node.operand]
        elif isinstance(node, ast.Call):
            kids = list(node.args) + ([node.func.value] if isinstance(node.func, ast.Attribute)
                                      and not isinstance(node.func.value, ast.Name) or
                                      isinstance(node.func, ast.Attribute) and node.func.value.id not in ("np", "ad")
                                      else [])
        elif isinstance(node, ast.IfExp):
            kids = [node.body, node.orelse]
        elif isinstance(node, ast.BoolOp):
            kids = list(node.values)
        elif isinstance(node, ast.Subscript):
            kids = [node.value]
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load):
            kids = [node.value] if not isinstance(node.value, ast.Name) or node.value.id not in ("np", "ad") else []
        elif isinstance(node, ast.Tuple) and isinstance(node.ctx, ast.Load) and len(node.elts) > 1:
            for k in range(len(node.elts)):
                t = copy.deepcopy(node)
                del t.elts[k]
                yield _replaced(tree, path, t)
        for k in kids:
            yield _replaced(tree, path, copy.deepcopy(k))
    for path, node in items:
        if isinstance(node, ast.Constant) and type(node.value) is int and node.value > 1:
            yield _replaced(tree, path, ast.Constant(node.value - 1))
        if isinstance(node, ast.Constant) and type(node.value) is float and node.value not in (0.5, 1.0, 0.0):
            yield _replaced(tree, path, ast.Constant(0.5))


def reduce_source(source, still_fails, budget=400, seconds=300.0):
    """Delta debugging on the module's AST: the smallest variant for which
    `still_fails(source)` holds (greedy, first improvement, within a budget)."""
    import time
    t0 = time.time()
    tree = ast.parse(source)
    calls = 0
    improved = True
    seen = {source}
    while improved and calls < budget and time.time() - t0 < seconds:
        improved = False
        for cand in _candidates(tree):
            try:
                text = ast.unparse(ast.fix_missing_locations(cand)) + "\n"
            except Exception:
                continue
            if text in seen:
                continue
            seen.add(text)
            calls += 1
            if still_fails(text):
                tree = ast.parse(text)
                improved = True
                break
            if calls >= budget or time.time() - t0 >= seconds:
                break
    return _pretty(ast.unparse(tree) + "\n")


def _pretty(text):
    """Blank lines between top-level definitions, as a person would write them."""
    out = []
    for line in text.splitlines():
        if (line.startswith("def ") or line.startswith("class ")) and out and out[-1] != "":
            out += ["", ""]
        out.append(line)
    return "\n".join(out) + "\n"


def reduce_failure(prog: Program, out: Outcome, seed: int, budget=400, seconds=300.0):
    """The smallest variant of a failing program that fails the same way (same signature),
    as a Program."""
    target = out.signature()
    stage = out.stage
    oracles = (("jvp", stage) if stage in NEEDS_JVP else (stage,)) if stage in ORACLES else ORACLES

    def still_fails(text):
        p = Program(text, prog.shapes, prog.int_arg, prog.out_spec, prog.features, prog.argnames)
        try:
            o = check(p, seed, oracles=oracles, timeout=10, exact_seed=True)
            if not any(f.signature() == target for f in getattr(o, "failures", [])):
                return False
            # the variant must stay a well-typed program on other inputs too (other paths)
            for k in range(6):
                _with_alarm(5, lambda: _primal(Case(p, 7919 + k)))
        except Rejected:
            return True
        except Exception:
            return False
        return True

    if not still_fails(prog.source):
        return prog
    text = reduce_source(prog.source, still_fails, budget=budget, seconds=seconds)
    return Program(text, prog.shapes, prog.int_arg, prog.out_spec, prog.features, prog.argnames)

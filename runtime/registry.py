"""The primitive registry.

A primitive is one operation that generated code may perform: a NumPy function
(``np.sin``), an operator (``+``, ``@``), an array method or attribute, indexing, an
in-place write, a list operation, or one of s2sad's runtime helpers. Each carries:

- ``params``: the names (and defaults) its call arguments bind to; rules use these names;
- rules, written as small Python functions whose bodies are inlined into generated code
  (see `transforms.templates`): ``jvp`` (tangent of the output from the input tangents,
  named ``<param>_dot``; ``out`` names the primal output) and, for linear primitives,
  one ``transpose`` rule per linear parameter (cotangent ``ct`` -> that input's share);
- ``linear``: the parameters in which it is linear (``bilinear`` when at most one of them
  may carry a tangent at a time, as for ``*`` and ``@``);
- ``nondiff``: the output never carries a derivative (comparisons, ``floor``, shapes);
- ``examples``: calls with input domains, checked by the registry-wide tests.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field

_MISSING = object()


@dataclass
class Example:
    """A call to test a primitive with: ``expr`` over inputs named in ``inputs``.

    Each input is a sampler ``(rng, dtype) -> value``; ``wrt`` lists the inputs that are
    differentiated (default: all float inputs).
    """

    expr: str
    inputs: dict
    wrt: tuple | None = None
    complex: bool = True  # also run with complex inputs when the primitive allows it
    tol: float = 1e-6


class Primitive:
    def __init__(self, name, obj=None, *, spelling=None, params=("x",), defaults=None,
                 kind="call", elementwise=False, linear=(), bilinear=False, nondiff=False,
                 complex=True, numba=True, static=(), keyword_only=(), outputs=None,
                 returns_list=False, doc=""):
        self.name = name
        self.obj = obj
        self.spelling = spelling
        self.params = tuple(params)
        self.defaults = dict(defaults or {})
        self.kind = kind
        self.elementwise = elementwise
        self.linear = tuple(linear)
        self.bilinear = bilinear
        self.nondiff = nondiff
        self.complex = complex
        self.numba = numba
        self.static = tuple(static)  # parameters that must be known at transform time
        self.keyword_only = tuple(keyword_only)  # never passed positionally
        # for primitives that return a tuple: outputs(bound_args) -> number of results
        self.outputs = outputs
        # the result is a runtime list (its cotangent is a list, accumulated item by item)
        self.returns_list = returns_list
        self.doc = doc
        self.jvp = None
        self.transpose: dict = {}
        self.batch = None
        self.examples: list[Example] = []

    def __repr__(self):
        return f"<primitive {self.name}>"

    # -- rule decorators -------------------------------------------------------
    def defjvp(self, fn):
        from s2sad.transforms.templates import Template
        self.jvp = Template(fn, self)
        return fn

    def deftranspose(self, param):
        def deco(fn):
            from s2sad.transforms.templates import Template
            if param not in self.linear:
                raise ValueError(f"{self.name}: {param} is not a linear parameter")
            self.transpose[param] = Template(fn, self)
            return fn
        return deco

    def defbatch(self, arrays=None, full=(), unless=()):
        """The batch rule (`transforms.batch`): a template written for arguments that carry
        a trailing batch axis. `arrays`: the parameters that may be batched (default: all);
        an unbatched one gets a trailing axis of length one, or (`full`) is broadcast along
        the whole batch. The rule does not apply when a parameter in `unless` is passed or
        a parameter outside `arrays` is batched: the statement then runs as a loop over the
        batch. A parameter named ``B`` receives the batch size."""
        def deco(fn):
            from s2sad.transforms.templates import Template
            self.batch = Template(fn, self, unpack_results=True)
            self.batch_arrays = tuple(self.params if arrays is None else arrays)
            self.batch_full = tuple(full)
            self.batch_unless = tuple(unless)
            return fn
        return deco

    def example(self, expr, wrt=None, complex=True, tol=1e-6, **inputs):
        self.examples.append(Example(expr, inputs, wrt, complex, tol))
        return self

    # -- binding ----------------------------------------------------------------
    def bind(self, args, kwargs):
        """Map positional/keyword arguments to parameter names.

        Raises TypeError (turned into a TransformError by the caller) on a mismatch.
        """
        positional = [p for p in self.params if p not in self.keyword_only]
        if len(args) > len(positional):
            raise TypeError(f"{self.label()} takes at most {len(positional)} positional arguments")
        bound = dict(zip(positional, args))
        for k, v in kwargs.items():
            if k not in self.params:
                raise TypeError(f"{self.label()} does not support the argument {k!r}")
            if k in bound:
                raise TypeError(f"{self.label()} got {k!r} twice")
            bound[k] = v
        for p in self.params:
            if p not in bound and p not in self.defaults:
                raise TypeError(f"{self.label()} is missing the argument {p!r}")
        return bound

    def label(self):
        return self.spelling or self.name

    @property
    def batchable(self):
        """Whether vmap batches calls of it without a loop: a batch rule, or elementwise
        (transforms/batch.py broadcasts the operands)."""
        if self.batch is not None or self.elementwise:
            return True
        return self.kind in ("binop", "compare", "unaryop") and self.name not in (
            "matmul", "not", "is", "isnot", "in", "notin")

    @property
    def rules(self):
        out = []
        if self.jvp is not None or self.nondiff:
            out.append("jvp")
        if self.transpose:
            out.append("transpose")
        if self.batchable:
            out.append("batch")
        if self.numba:
            out.append("numba")
        return out


# name -> Primitive; object id -> Primitive (NumPy functions, helpers)
BY_NAME: dict[str, Primitive] = {}
BY_OBJECT: dict[int, Primitive] = {}
_KEEPALIVE: list = []


def register(name, obj=None, **kw) -> Primitive:
    if name in BY_NAME:
        raise ValueError(f"primitive {name} registered twice")
    prim = Primitive(name, obj, **kw)
    BY_NAME[name] = prim
    if obj is not None:
        BY_OBJECT[id(obj)] = prim
        _KEEPALIVE.append(obj)
    return prim


def alias(obj, prim: Primitive) -> None:
    """Another object that means the same primitive (np.absolute for np.abs)."""
    BY_OBJECT[id(obj)] = prim
    _KEEPALIVE.append(obj)


def lookup_object(obj):
    _load_rules()
    prim = BY_OBJECT.get(id(obj))
    if prim is not None and (prim.obj is obj or any(o is obj for o in _KEEPALIVE)):
        return prim
    return None


def get(name) -> Primitive:
    _load_rules()
    return BY_NAME[name]


def all_primitives():
    _load_rules()
    return sorted(BY_NAME.values(), key=lambda p: p.name)


_LOADED = False
READY = False     # every rule module has been imported


def _load_rules():
    global _LOADED, READY
    if not _LOADED:
        _LOADED = True
        from s2sad.runtime import rules  # noqa: F401  (registers everything)
        READY = True


# Operator keys used by the passes for BinOp / UnaryOp / Compare nodes.
BINOP_FUNCS = {
    "add": operator.add, "sub": operator.sub, "mul": operator.mul, "div": operator.truediv,
    "floordiv": operator.floordiv, "mod": operator.mod, "pow": operator.pow,
    "matmul": operator.matmul, "and": operator.and_, "or": operator.or_,
    "xor": operator.xor, "lshift": operator.lshift, "rshift": operator.rshift,
}

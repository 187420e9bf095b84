"""Normalize: a FunctionDef -> the same function in A-normal form (see `ir`).

Purely syntactic: one operation per assignment; nested expressions get temporaries
named after what they hold; augmented assignment, chained comparisons, `and`/`or`,
conditional expressions, tuple and starred unpacking, `assert`, list comprehensions and
lambdas are desugared; `while test:` re-evaluates its test at the end of the body (and
before each `continue`). Names are not resolved here (that is `specialize`).
Constructs outside the supported subset raise TransformError with the user's line.
"""

from __future__ import annotations

import itertools

import gast

from s2sad.errors import TransformError
from s2sad.transforms import ir
from s2sad.transforms.naming import Namer, names_in

_BINOPS = {
    gast.Add: "add", gast.Sub: "sub", gast.Mult: "mul", gast.Div: "div",
    gast.FloorDiv: "floordiv", gast.Mod: "mod", gast.Pow: "pow", gast.MatMult: "matmul",
    gast.BitAnd: "and", gast.BitOr: "or", gast.BitXor: "xor",
    gast.LShift: "lshift", gast.RShift: "rshift",
}
_MODULE_ALIASES = {"np", "numpy", "jnp", "math", "scipy", "sp", "ad", "s2sad", "jax", "lax",
                   "linalg", "special", "cmath"}
_DEF_KEYS = itertools.count()
_UNARY = {gast.USub: "neg", gast.UAdd: "pos", gast.Not: "not", gast.Invert: "invert"}


def hint_of(node, temps=frozenset()) -> str:
    """A short name that says what the operation `node` computes (`sin_x`, `mul_a`)."""
    def user(n):
        return isinstance(n, gast.Name) and n.id not in temps and len(n.id) <= 10

    if isinstance(node, gast.Call):
        f = node.func
        base = f.attr if isinstance(f, gast.Attribute) else (f.id if isinstance(f, gast.Name) else "call")
        if node.args and user(node.args[0]):
            return f"{base}_{node.args[0].id}"
        if (isinstance(f, gast.Attribute) and user(f.value)
                and f.value.id not in _MODULE_ALIASES):
            return f"{f.value.id}_{base}"
        return base
    if isinstance(node, gast.BinOp):
        op = _BINOPS.get(type(node.op), "op")
        if user(node.left):
            return f"{op}_{node.left.id}"
        if user(node.right):
            return f"{op}_{node.right.id}"
        return op
    if isinstance(node, gast.UnaryOp):
        op = _UNARY.get(type(node.op), "op")
        return f"{op}_{node.operand.id}" if user(node.operand) else op
    if isinstance(node, gast.Subscript):
        return f"{node.value.id}_item" if user(node.value) else "item"
    if isinstance(node, gast.Attribute):
        return f"{node.value.id}_{node.attr}" if user(node.value) else node.attr
    if isinstance(node, gast.Compare):
        return "cond"
    if isinstance(node, gast.Tuple):
        return "tup"
    if isinstance(node, gast.List):
        return "lst"
    if isinstance(node, gast.Dict):
        return "dct"
    return "t"


class _Normalizer:
    def __init__(self, filename: str, namer: Namer):
        self.filename = filename
        self.namer = namer
        self.temps: set[str] = set()
        self.loop_tests: list = []  # stack: test statements of enclosing `while` loops

    # ------------------------------------------------------------------ helpers
    def error(self, node, message, hint=None):
        return TransformError(message, filename=self.filename,
                              lineno=getattr(node, "lineno", None), hint=hint)

    def temp(self, hint: str) -> str:
        n = self.namer.fresh(hint)
        self.temps.add(n)
        return n

    def hint_of(self, node) -> str:
        return hint_of(node, self.temps)

    def bind(self, value, out, target, loc):
        """Emit `target = value` (a fresh temporary if no target) and return the atom."""
        if target is None:
            target = self.temp(self.hint_of(value))
        out.append(ir.assign(target, value, loc))
        return ir.name(target)

    # -------------------------------------------------------------- expressions
    def atom(self, node, out, loc, target=None):
        """Normalize expression `node`, emitting statements into `out`; return an atom."""
        if isinstance(node, (gast.Name, gast.Constant)):
            if target is not None:
                out.append(ir.assign(target, node, loc))
                return ir.name(target)
            return node
        value = self.operation(node, out, loc, target)
        if value is None:  # the operation already assigned `target`
            return ir.name(target)
        if ir.is_atom(value) and target is None:
            return value
        return self.bind(value, out, target, loc)

    def operation(self, node, out, loc, target):
        """Normalize the outermost operation of `node`; its operands become atoms.

        Returns the operation (to be bound by the caller) or None when control flow was
        needed and `target` (created here if None) already holds the value.
        """
        if isinstance(node, gast.BinOp):
            left = self.atom(node.left, out, loc)
            right = self.atom(node.right, out, loc)
            return gast.BinOp(left=left, op=node.op, right=right)
        if isinstance(node, gast.UnaryOp):
            return gast.UnaryOp(op=node.op, operand=self.atom(node.operand, out, loc))
        if isinstance(node, gast.Compare):
            return self.compare(node, out, loc, target)
        if isinstance(node, gast.BoolOp):
            return self.boolop(node, out, loc, target)
        if isinstance(node, gast.IfExp):
            return self.ifexp(node, out, loc, target)
        if isinstance(node, gast.Call):
            return self.call(node, out, loc)
        if isinstance(node, gast.Attribute):
            return gast.Attribute(value=self.atom(node.value, out, loc), attr=node.attr,
                                  ctx=gast.Load())
        if isinstance(node, gast.Subscript):
            value = self.atom(node.value, out, loc)
            return gast.Subscript(value=value, slice=self.index(node.slice, out, loc),
                                  ctx=gast.Load())
        if isinstance(node, (gast.Tuple, gast.List)):
            elts = [self.starred_or_atom(e, out, loc) for e in node.elts]
            return type(node)(elts=elts, ctx=gast.Load())
        if isinstance(node, gast.Dict):
            if any(k is None for k in node.keys):
                raise self.error(node, "dict unpacking (`**d`) in a dict literal is not supported")
            keys = [self.atom(k, out, loc) for k in node.keys]
            values = [self.atom(v, out, loc) for v in node.values]
            return gast.Dict(keys=keys, values=values)
        if isinstance(node, gast.ListComp):
            return self.listcomp(node, out, loc, target)
        if isinstance(node, gast.GeneratorExp):
            return self.listcomp(node, out, loc, target)
        if isinstance(node, gast.Lambda):
            name = target or self.temp("lambda")
            fdef = self.function(_lambda_def(node, name))
            out.append(fdef)
            return None if target else ir.name(name)
        if isinstance(node, gast.NamedExpr):
            value = self.atom(node.value, out, loc)
            out.append(ir.assign(node.target.id, value, loc))
            return ir.name(node.target.id)
        if isinstance(node, gast.JoinedStr):
            values = []
            for v in node.values:
                if isinstance(v, gast.FormattedValue):
                    v = gast.FormattedValue(value=self.atom(v.value, out, loc),
                                            conversion=v.conversion, format_spec=v.format_spec)
                values.append(v)
            return gast.JoinedStr(values=values)
        if isinstance(node, gast.Slice):
            raise self.error(node, "a slice outside an index is not supported")
        if isinstance(node, (gast.DictComp, gast.SetComp, gast.Set)):
            raise self.error(node, "sets and dict/set comprehensions are not supported",
                             hint="build a dict with a literal or a loop")
        if isinstance(node, (gast.Yield, gast.YieldFrom)):
            raise self.error(node, "generators (`yield`) cannot be differentiated",
                             hint="return arrays instead of yielding them")
        if isinstance(node, gast.Await):
            raise self.error(node, "`await` cannot be differentiated")
        if isinstance(node, gast.Starred):
            raise self.error(node, "starred expression outside a call or tuple is not supported")
        raise self.error(node, f"unsupported expression {type(node).__name__}")

    def starred_or_atom(self, node, out, loc):
        if isinstance(node, gast.Starred):
            return gast.Starred(value=self.atom(node.value, out, loc), ctx=gast.Load())
        return self.atom(node, out, loc)

    def index(self, node, out, loc):
        if isinstance(node, gast.Slice):
            return gast.Slice(
                lower=self.atom(node.lower, out, loc) if node.lower is not None else None,
                upper=self.atom(node.upper, out, loc) if node.upper is not None else None,
                step=self.atom(node.step, out, loc) if node.step is not None else None)
        if isinstance(node, gast.Tuple):
            return gast.Tuple(elts=[self.index(e, out, loc) for e in node.elts], ctx=gast.Load())
        if isinstance(node, gast.Starred):
            raise self.error(node, "starred index is not supported")
        return self.atom(node, out, loc)

    def call(self, node, out, loc):
        func = node.func
        if ir.dotted_name(func) is None:
            if isinstance(func, gast.Attribute):
                # a method of a computed value: (x * 2).sum() -> t = x * 2; t.sum()
                func = gast.Attribute(value=self.atom(func.value, out, loc), attr=func.attr,
                                      ctx=gast.Load())
            else:
                func = self.atom(func, out, loc)
        args = [self.starred_or_atom(a, out, loc) for a in node.args]
        kws = [gast.keyword(arg=k.arg, value=self.atom(k.value, out, loc)) for k in node.keywords]
        return gast.Call(func=func, args=args, keywords=kws)

    def compare(self, node, out, loc, target):
        left = self.atom(node.left, out, loc)
        if len(node.ops) == 1:
            right = self.atom(node.comparators[0], out, loc)
            return gast.Compare(left=left, ops=node.ops, comparators=[right])
        # a < b < c  ->  t = a < b; if t: t = b < c
        name = target or self.temp("cond")
        block = out
        for op, comp in zip(node.ops, node.comparators):
            right = self.atom(comp, block, loc)
            block.append(ir.assign(name, gast.Compare(left=left, ops=[op], comparators=[right]), loc))
            inner = []
            block.append(ir.if_(ir.name(name), inner, [], loc))
            block, left = inner, right
        _drop_empty_tail_if(out)
        return None if target else ir.name(name)

    def boolop(self, node, out, loc, target):
        name = target or self.temp("cond")
        self.atom(node.values[0], out, loc, target=name)
        block = out
        for v in node.values[1:]:
            inner = []
            if isinstance(node.op, gast.And):
                block.append(ir.if_(ir.name(name), inner, [], loc))
            else:
                block.append(ir.if_(ir.name(name), [gast.Pass()], inner, loc))
            self.atom(v, inner, loc, target=name)
            block = inner
        return None if target else ir.name(name)

    def ifexp(self, node, out, loc, target):
        name = target or self.temp("select")
        test = self.atom(node.test, out, loc)
        body, orelse = [], []
        self.atom(node.body, body, loc, target=name)
        self.atom(node.orelse, orelse, loc, target=name)
        out.append(ir.if_(test, body, orelse, loc))
        return None if target else ir.name(name)

    def listcomp(self, node, out, loc, target):
        name = target or self.temp("lst")
        out.append(ir.assign(name, gast.List(elts=[], ctx=gast.Load()), loc))
        # Comprehension variables live in their own scope: rename them.
        renames = {}
        for gen in node.generators:
            for n in gast.walk(gen.target):
                if isinstance(n, gast.Name):
                    renames[n.id] = self.namer.fresh(n.id)
        first_iter = node.generators[0].iter  # evaluated in the enclosing scope
        node = _Renamer(renames).visit(_clone(node))
        node.generators[0].iter = first_iter
        block = out
        for gen in node.generators:
            if gen.is_async:
                raise self.error(node, "async comprehensions are not supported")
            it = self.atom(gen.iter, block, loc)
            body = []
            block.append(self.for_loop(gen.target, it, body, loc))
            block = body
            for cond in gen.ifs:
                c = self.atom(cond, block, loc)
                inner = []
                block.append(ir.if_(c, inner, [], loc))
                block = inner
        elt = self.atom(node.elt, block, loc)
        block.append(ir.expr_stmt(ir.call(ir.attr(ir.name(name), "append"), [elt]), loc))
        return None if target else ir.name(name)

    def for_loop(self, target, it, body, loc):
        """`for <target> in it` with an unpacking target -> a name plus unpacking."""
        if isinstance(target, gast.Name):
            tgt = ir.store(target.id)
        else:
            tmp = self.temp("item")
            tgt = ir.store(tmp)
            self.assign_target(target, ir.name(tmp), body, loc)
        node = gast.For(target=tgt, iter=it, body=body, orelse=[], type_comment=None)
        return ir.copy_loc(node, loc)

    # ---------------------------------------------------------------- targets
    def assign_target(self, target, value, out, loc):
        """Assign atom `value` to an arbitrary target."""
        if isinstance(target, gast.Name):
            out.append(ir.assign(target.id, value, loc))
        elif isinstance(target, (gast.Tuple, gast.List)):
            n = len(target.elts)
            star = [i for i, e in enumerate(target.elts) if isinstance(e, gast.Starred)]
            for i, elt in enumerate(target.elts):
                if isinstance(elt, gast.Starred):
                    after = n - i - 1
                    sl = gast.Slice(lower=ir.const(i), upper=ir.const(-after) if after else None,
                                    step=None)
                    sub = gast.Subscript(value=value, slice=sl, ctx=gast.Load())
                    if isinstance(elt.value, gast.Name):
                        out.append(ir.assign(elt.value.id, sub, loc))
                    else:
                        self.assign_target(elt.value, self.bind(sub, out, None, loc), out, loc)
                    continue
                idx = i if not star or i < star[0] else i - n
                sub = gast.Subscript(value=value, slice=ir.const(idx), ctx=gast.Load())
                if isinstance(elt, gast.Name):
                    out.append(ir.assign(elt.id, sub, loc))
                else:
                    item = self.bind(sub, out, None, loc)
                    self.assign_target(elt, item, out, loc)
        elif isinstance(target, gast.Subscript):
            if not isinstance(target.value, gast.Name):
                raise self.error(target, "in-place write through a nested subscript or attribute "
                                 "is not supported", hint="write x[i, j] = v instead of x[i][j] = v")
            idx = self.index(target.slice, out, loc)
            sub = gast.Subscript(value=ir.name(target.value.id), slice=idx, ctx=gast.Store())
            out.append(ir.assign(sub, value, loc))
        elif isinstance(target, gast.Attribute):
            raise self.error(target, "assignment to an attribute is not supported",
                             hint="objects are not differentiable state; use local variables")
        elif isinstance(target, gast.Starred):
            raise self.error(target, "starred assignment target outside a tuple")
        else:
            raise self.error(target, f"unsupported assignment target {type(target).__name__}")

    # -------------------------------------------------------------- statements
    def block(self, stmts):
        out = []
        for s in stmts:
            self.stmt(s, out)
        return out

    def stmt(self, s, out):
        if isinstance(s, gast.Assign):
            if len(s.targets) == 1 and isinstance(s.targets[0], gast.Name):
                name = s.targets[0].id
                if isinstance(s.value, gast.Lambda):
                    out.append(self.function(_lambda_def(s.value, name, s)))
                    return
                self.atom(s.value, out, s, target=name)
                return
            value = self.atom(s.value, out, s)
            for t in s.targets:
                self.assign_target(t, value, out, s)
        elif isinstance(s, gast.AnnAssign):
            if s.value is not None:
                self.stmt(ir.copy_loc(gast.Assign(targets=[s.target], value=s.value,
                                                  type_comment=None), s), out)
        elif isinstance(s, gast.AugAssign):
            self.augassign(s, out)
        elif isinstance(s, gast.Expr):
            if isinstance(s.value, gast.Constant):
                return  # docstring or a bare constant
            if isinstance(s.value, gast.Call):
                call = self.call(s.value, out, s)
                out.append(ir.expr_stmt(call, s))
            else:
                self.atom(s.value, out, s)
        elif isinstance(s, gast.If):
            test = self.atom(s.test, out, s)
            out.append(ir.if_(test, self.block(s.body), self.block(s.orelse), s))
        elif isinstance(s, gast.For):
            if s.orelse:
                raise self.error(s, "`for ... else` is not supported",
                                 hint="use a flag set before `break`")
            it = self.atom(s.iter, out, s)
            self.loop_tests.append(None)
            body = []
            loop = self.for_loop(s.target, it, body, s)
            body.extend(self.block(s.body))
            self.loop_tests.pop()
            out.append(loop)
        elif isinstance(s, gast.While):
            if s.orelse:
                raise self.error(s, "`while ... else` is not supported",
                                 hint="use a flag set before `break`")
            self.while_loop(s, out)
        elif isinstance(s, gast.Return):
            value = self.atom(s.value, out, s) if s.value is not None else ir.const(None)
            out.append(ir.copy_loc(gast.Return(value=value), s))
        elif isinstance(s, (gast.Break, gast.Pass)):
            out.append(ir.copy_loc(type(s)(), s))
        elif isinstance(s, gast.Continue):
            test = self.loop_tests[-1] if self.loop_tests else None
            if test is not None:
                out.extend(_clone_stmts(test))
            out.append(ir.copy_loc(gast.Continue(), s))
        elif isinstance(s, gast.Raise):
            exc = None
            if s.exc is not None:
                exc = s.exc
                if isinstance(exc, gast.Call):
                    exc = self.call(exc, out, s)
                elif not isinstance(exc, gast.Name) and ir.dotted_name(exc) is None:
                    exc = self.atom(exc, out, s)
            out.append(ir.copy_loc(gast.Raise(exc=exc, cause=None), s))
        elif isinstance(s, gast.Assert):
            test = self.atom(s.test, out, s)
            msg = [self.atom(s.msg, out, s)] if s.msg is not None else []
            raise_ = ir.copy_loc(gast.Raise(exc=ir.call(ir.name("AssertionError"), msg), cause=None), s)
            out.append(ir.if_(test, [gast.Pass()], [raise_], s))
        elif isinstance(s, gast.Try):
            if s.finalbody:
                raise self.error(s, "`try ... finally` is not supported",
                                 hint="use try/except for control flow")
            if s.orelse:
                raise self.error(s, "`try ... else` is not supported",
                                 hint="move the else block into the try body")
            handlers = []
            for h in s.handlers:
                handlers.append(ir.copy_loc(gast.ExceptHandler(type=h.type, name=h.name,
                                                               body=self.block(h.body)), h))
            out.append(ir.copy_loc(gast.Try(body=self.block(s.body), handlers=handlers,
                                            orelse=[], finalbody=[]), s))
        elif isinstance(s, gast.FunctionDef):
            defaults = [self.atom(d, out, s) for d in s.args.defaults]
            kw_defaults = [self.atom(d, out, s) if d is not None else None for d in s.args.kw_defaults]
            decorators = list(s.decorator_list)
            fdef = self.function(s)
            fdef.args.defaults = defaults
            fdef.args.kw_defaults = kw_defaults
            fdef.decorator_list = decorators
            out.append(fdef)
        elif isinstance(s, (gast.Import, gast.ImportFrom)):
            out.append(s)
        elif isinstance(s, gast.With):
            raise self.error(s, "`with` blocks are not supported",
                             hint="move the `with` outside the differentiated function")
        elif isinstance(s, gast.ClassDef):
            raise self.error(s, "defining a class inside a differentiated function is not supported")
        elif isinstance(s, gast.Global):
            raise self.error(s, "`global` writes are not supported",
                             hint="return the new value instead of assigning a global")
        elif isinstance(s, gast.Nonlocal):
            raise self.error(s, "`nonlocal` writes are not supported",
                             hint="return the new value instead of assigning an outer variable")
        elif isinstance(s, gast.Delete):
            raise self.error(s, "`del` is not supported in a differentiated function")
        elif isinstance(s, (gast.AsyncFunctionDef, gast.AsyncFor, gast.AsyncWith)):
            raise self.error(s, "async code cannot be differentiated")
        else:
            raise self.error(s, f"unsupported statement {type(s).__name__}")

    def augassign(self, s, out):
        t = s.target
        if isinstance(t, gast.Name):
            value = self.atom(s.value, out, s)
            out.append(ir.assign(t.id, gast.BinOp(left=ir.name(t.id), op=s.op, right=value), s))
        elif isinstance(t, gast.Subscript):
            if not isinstance(t.value, gast.Name):
                raise self.error(t, "in-place update through a nested subscript is not supported",
                                 hint="write x[i, j] += v instead of x[i][j] += v")
            idx = self.index(t.slice, out, s)
            value = self.atom(s.value, out, s)
            old = self.bind(gast.Subscript(value=ir.name(t.value.id), slice=idx, ctx=gast.Load()),
                            out, None, s)
            new = self.bind(gast.BinOp(left=old, op=s.op, right=value), out, None, s)
            out.append(ir.assign(gast.Subscript(value=ir.name(t.value.id), slice=_clone(idx),
                                                ctx=gast.Store()), new, s))
        else:
            raise self.error(t, "augmented assignment to an attribute is not supported")

    def while_loop(self, s, out):
        test_stmts = []
        test = self.atom(s.test, test_stmts, s)
        if not isinstance(test, gast.Name) or not test_stmts:
            # The test is a plain name or a constant: nothing to re-evaluate.
            out.extend(test_stmts)
            self.loop_tests.append(None)
            body = self.block(s.body)
            self.loop_tests.pop()
        else:
            out.extend(test_stmts)
            self.loop_tests.append(test_stmts)
            body = self.block(s.body)
            self.loop_tests.pop()
            if not _ends_with_jump(body):
                body.extend(_clone_stmts(test_stmts))
        out.append(ir.copy_loc(gast.While(test=test, body=body, orelse=[]), s))

    def function(self, fdef):
        """Normalize a (possibly nested) FunctionDef; its own locals share the namer."""
        a = fdef.args
        if a.vararg is not None or a.kwarg is not None:
            raise self.error(fdef, "functions with *args or **kwargs parameters are not supported",
                             hint="name the parameters")
        saved = self.loop_tests
        self.loop_tests = []
        body = self.block(fdef.body)
        self.loop_tests = saved
        new = gast.FunctionDef(name=fdef.name, args=fdef.args, body=body or [gast.Pass()],
                               decorator_list=[], returns=None, type_comment=None,
                               type_params=[])
        new.s2sad_key = next(_DEF_KEYS)   # kept by the copies of a re-evaluated loop test
        return gast.copy_location(new, fdef) if hasattr(fdef, "lineno") else new


class _Renamer(gast.NodeTransformer):
    def __init__(self, mapping):
        self.mapping = mapping

    def visit_Name(self, node):
        if node.id in self.mapping:
            node.id = self.mapping[node.id]
        return node


def _clone(node):
    return ir.clone(node)


def _clone_stmts(stmts):
    return [_clone(s) for s in stmts]


def _ends_with_jump(body):
    return bool(body) and isinstance(body[-1], (gast.Return, gast.Raise, gast.Break, gast.Continue))


def _drop_empty_tail_if(stmts):
    """Remove the `if t:` with an empty body that the last link of a chain leaves."""
    block = stmts
    while block and isinstance(block[-1], gast.If):
        last = block[-1]
        if not last.body:
            block.pop()
            return
        block = last.body


def _lambda_def(lam, name, loc=None):
    from s2sad.transforms.capture import lambda_to_def
    fdef = lambda_to_def(lam, name)
    if loc is not None:
        ir.copy_loc(fdef, loc)
    return fdef


def normalize(fdef: gast.FunctionDef, filename: str, namer: Namer | None = None):
    """Return (normalized FunctionDef, namer). `fdef` is not modified."""
    namer = namer or Namer(names_in(fdef))
    norm = _Normalizer(filename, namer)
    out = norm.function(_clone(fdef))
    ir.fill_empty_blocks(out)
    return out, namer

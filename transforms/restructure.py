"""Restructure: give a function one exit and put every jump at the end of a block.

Reverse mode replays the forward sweep's paths backwards, so it needs code in which a
path is decided by branch conditions and loop trip counts alone:

- ``if c: <jump>`` followed by more statements moves those statements into the branch
  that falls through (``if c: return a`` + rest -> ``if c: ... else: rest``); statements
  after a jump are dead and dropped;
- an ``if`` or ``try`` that jumps on some paths and falls through on several others (a
  return in an ``elif`` or a nested ``if``) sets a flag where it jumps (``returned``,
  ``broke``, ``continued``) and is followed by ``if flag: <jump>``, which the rule above
  then nests; the statements that follow are never duplicated;
- a ``return`` inside a loop sets the results and a flag and breaks out; after the loop,
  ``if returned:`` leaves the enclosing loop or skips the rest of the function;
- every ``return v`` then becomes an assignment to the result variables, and the
  function ends with a single ``return``.

A function whose only return is its last statement is left as it is.
"""

from __future__ import annotations


import gast

from s2sad.transforms import ir
from s2sad.transforms.naming import Namer, names_in

_JUMPS = (gast.Return, gast.Raise, gast.Break, gast.Continue)


def falls_through(stmt) -> bool:
    if isinstance(stmt, _JUMPS):
        return False
    if isinstance(stmt, gast.If):
        return block_falls(stmt.body) or block_falls(stmt.orelse)
    if isinstance(stmt, gast.Try):
        return block_falls(stmt.body) or any(block_falls(h.body) for h in stmt.handlers)
    return True


def block_falls(block) -> bool:
    return all(falls_through(s) for s in block) if block else True


class _Exits:
    """What the flags of `nest` need: fresh names, and the result variables that a
    return converted to a flag assigns (the same ones `restructure` returns at the end)."""

    def __init__(self, namer, width, tup=False):
        self.namer = namer
        self.width = width
        self.tup = tup     # the function returns tuple literals (a 1-tuple keeps its tuple)
        self._results = None

    def results(self):
        if self._results is None:
            self._results = _Results(self.namer.fresh("result" if self.width == 1 else f"result_{i}")
                                     for i in range(self.width))
            self._results.tup = self.tup
        return self._results


class _Results(list):
    """The result variables; `tup`: the returned value is a tuple of them."""
    tup = False


def nest(block, exits):
    """Move statements that follow a non-falling branch into the falling one."""
    out = []
    i = 0
    while i < len(block):
        s = block[i]
        rest = block[i + 1:]
        _nest_children(s, exits)
        if isinstance(s, _JUMPS):
            out.append(s)
            return out  # anything after a jump is dead
        if isinstance(s, gast.If) and rest:
            fb, fo = block_falls(s.body), block_falls(s.orelse)
            if fb != fo or (not fb and not fo):
                if fb and not fo:
                    s.body = nest(s.body + rest, exits)
                elif fo and not fb:
                    s.orelse = nest(s.orelse + rest, exits)
                ir.fill_empty_blocks(s)
                out.append(s)
                return out
        if isinstance(s, gast.Try) and rest and not falls_through(s):
            out.append(s)
            return out
        if isinstance(s, (gast.If, gast.Try)) and rest and _escaping_jumps(s):
            # jumps on some paths, falls through on several: flags, then `if flag: jump`
            out.extend(_flag_jumps(s, exits))
            out.extend(nest(_jump_tests(s, exits) + rest, exits))
            return out
        out.append(s)
        i += 1
    return out


def _nest_children(s, exits):
    if isinstance(s, (gast.If, gast.While, gast.For)):
        s.body = nest(s.body, exits)
        if isinstance(s, gast.If):
            s.orelse = nest(s.orelse, exits)
    elif isinstance(s, gast.Try):
        s.body = nest(s.body, exits)
        for h in s.handlers:
            h.body = nest(h.body, exits)


_FLAG_HINTS = {gast.Return: "returned", gast.Break: "broke", gast.Continue: "continued"}


def _escaping_jumps(s):
    """(block, index) of the returns, breaks and continues that leave `s` (those inside a
    loop of `s` are the loop's business: `restructure` converts the loop first)."""
    found = []

    def visit(block):
        for k, st in enumerate(block):
            if type(st) in _FLAG_HINTS:
                found.append((block, k))
            for sub in _sub_blocks(st):
                if not isinstance(st, (gast.For, gast.While)):
                    visit(sub)
    for sub in _sub_blocks(s):
        visit(sub)
    return found


def _flag_jumps(s, exits):
    """Replace the jumps leaving `s` by flag assignments; [flag inits..., s]."""
    flags = {}
    for block, k in reversed(_escaping_jumps(s)):
        jump = block[k]
        kind = type(jump)
        if kind not in flags:
            flags[kind] = exits.namer.fresh(_FLAG_HINTS[kind])
        setters = _result_assignments(jump, exits.results()) if kind is gast.Return else []
        setters.append(ir.copy_loc(ir.assign(flags[kind], ir.const(True)), jump))
        block[k:k + 1] = setters
    s._s2sad_flags = flags
    return [ir.copy_loc(ir.assign(f, ir.const(False)), s) for f in sorted(
        flags.values())] + [s]


def _jump_tests(s, exits):
    """`if flag: <jump>` after `s`, one per kind of jump that left it (the return is a
    placeholder: its results are already set)."""
    tests = []
    for kind in (gast.Return, gast.Break, gast.Continue):
        flag = s._s2sad_flags.get(kind)
        if flag is not None:
            jump = gast.Return(value=None) if kind is gast.Return else kind()
            tests.append(ir.copy_loc(ir.if_(ir.name(flag), [ir.copy_loc(jump, s)]), s))
    del s._s2sad_flags
    return tests


def _returns_in(node):
    return [n for n in gast.walk(node) if isinstance(n, gast.Return)]


def needs_restructure(fdef) -> bool:
    rets = _returns_in(fdef)
    if not rets:
        return False
    return not (len(rets) == 1 and fdef.body and fdef.body[-1] is rets[0])


def restructure(fdef, namer: Namer | None = None):
    """Rewrite `fdef` in place to the single-exit form; returns it."""
    namer = namer or Namer(names_in(fdef))
    rets = _returns_in(fdef)
    exits = _Exits(namer, _width(rets[0].value) if rets else 1,
                   tup=bool(rets) and isinstance(rets[0].value, gast.Tuple))
    fdef.body = nest(fdef.body, exits)
    _drop_passes(fdef.body)
    if not needs_restructure(fdef):
        return fdef
    rets = _returns_in(fdef)
    width = exits.width
    results = exits.results()
    flag = None
    # Returns inside loops: set the results and a flag, break, and test the flag after.
    while True:
        loop = _innermost_loop_with_return(fdef.body)
        if loop is None:
            break
        block, idx, node = loop
        if flag is None:
            flag = namer.fresh("returned")
        _convert_loop_returns(node, results, flag)
        after = gast.If(test=ir.name(flag), body=[gast.Return(value=None)], orelse=[])
        ir.copy_loc(after, node)
        block.insert(idx + 1, after)
        fdef.body = nest(fdef.body, exits)
        _drop_passes(fdef.body)
    # Remaining returns are at the end of their paths: assign the results.
    _assign_results(fdef.body, results)
    prologue = []
    if flag is not None:
        prologue.append(ir.assign(flag, ir.const(False)))
    value = ir.name(results[0]) if width == 1 and not exits.tup else \
        ir.tuple_([ir.name(r) for r in results])
    fdef.body = prologue + fdef.body + [gast.Return(value=value)]
    ir.fill_empty_blocks(fdef)
    return fdef


def _drop_passes(block):
    """`pass` next to other statements says nothing (moving statements leaves some)."""
    block[:] = [s for s in block if not isinstance(s, gast.Pass)] or block[:1]
    for s in block:
        for sub in _sub_blocks(s):
            _drop_passes(sub)


def _width(value):
    if isinstance(value, gast.Tuple):
        return len(value.elts)
    return 1


def _innermost_loop_with_return(block):
    """(containing block, index, loop) of a loop with a return not inside a deeper loop."""
    for i, s in enumerate(block):
        for sub in _sub_blocks(s):
            hit = _innermost_loop_with_return(sub)
            if hit is not None:
                return hit
        if isinstance(s, (gast.For, gast.While)) and _direct_returns(s.body):
            return block, i, s
    return None


def _sub_blocks(s):
    if isinstance(s, gast.If):
        return [s.body, s.orelse]
    if isinstance(s, (gast.For, gast.While)):
        return [s.body]
    if isinstance(s, gast.Try):
        return [s.body] + [h.body for h in s.handlers]
    return []


def _direct_returns(block):
    """Returns in `block` that are not inside a nested loop."""
    out = []
    for s in block:
        if isinstance(s, gast.Return):
            out.append(s)
        elif isinstance(s, (gast.If, gast.Try)):
            for sub in _sub_blocks(s):
                out.extend(_direct_returns(sub))
    return out


def _convert_loop_returns(loop, results, flag):
    def conv(block):
        out = []
        for s in block:
            if isinstance(s, gast.Return):
                out.extend(_result_assignments(s, results))
                out.append(ir.copy_loc(ir.assign(flag, ir.const(True)), s))
                out.append(ir.copy_loc(gast.Break(), s))
                continue
            if isinstance(s, gast.If):
                s.body = conv(s.body)
                s.orelse = conv(s.orelse)
            elif isinstance(s, gast.Try):
                s.body = conv(s.body)
                for h in s.handlers:
                    h.body = conv(h.body)
            out.append(s)
        return out
    loop.body = conv(loop.body)


def _result_assignments(ret, results):
    if ret.value is None:
        return []  # a placeholder return: the results are already set
    if len(results) == 1 and not getattr(results, "tup", False):
        return [ir.copy_loc(ir.assign(results[0], ir.clone(ret.value)), ret)]
    elts = ret.value.elts if isinstance(ret.value, gast.Tuple) else None
    if elts is None or len(elts) != len(results):
        return [ir.copy_loc(ir.assign(ir.tuple_([ir.store(r) for r in results], gast.Store()),
                                      ir.clone(ret.value)), ret)]
    return [ir.copy_loc(ir.assign(r, ir.clone(e)), ret) for r, e in zip(results, elts)]


def _assign_results(block, results):
    i = 0
    while i < len(block):
        s = block[i]
        if isinstance(s, gast.Return):
            block[i:i + 1] = _result_assignments(s, results) or [gast.Pass()]
            i += 1
            continue
        for sub in _sub_blocks(s):
            _assign_results(sub, results)
        i += 1

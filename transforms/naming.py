"""Deterministic names for generated variables.

A `Namer` knows every name already used in a function (user names, globals it reads,
earlier temporaries) and hands out fresh ones that say what they hold: ``sin_x``,
``x_dot``, ``x_bar``; a clash adds ``_1``, ``_2``, ... Same input, same names.
"""

from __future__ import annotations

import keyword
import re

import gast

_IDENT = re.compile(r"[^0-9a-zA-Z_]")


def names_in(node) -> set[str]:
    """Every identifier that appears in `node` (names, parameters, defs)."""
    out = set()
    for n in gast.walk(node):
        if isinstance(n, gast.Name):
            out.add(n.id)
        elif isinstance(n, (gast.FunctionDef, gast.ClassDef)):
            out.add(n.name)
        elif isinstance(n, gast.alias):
            out.add((n.asname or n.name).split(".")[0])
    return out


def clean(hint: str, limit: int = 20) -> str:
    hint = _IDENT.sub("_", hint).strip("_") or "t"
    if hint[0].isdigit():
        hint = "t" + hint
    if len(hint) > limit:
        hint = hint[:limit].rstrip("_")
    if keyword.iskeyword(hint):
        hint += "_"
    return hint


_RESERVED = None


def reserved() -> frozenset:
    """Names generated code may refer to as globals: the run-time helpers, the names rules
    spell primitives with (``np``, ``unbroadcast``, ``len`` ...) and builtins. A fresh
    variable never takes one of them."""
    global _RESERVED
    if _RESERVED is None:
        from s2sad.runtime import registry
        if not registry.READY:
            # asked while the rule modules load (a rule's template is being parsed): the
            # answer is partial, and is not kept
            registry._load_rules()
            if not registry.READY:
                return _reserved_now()
        _RESERVED = _reserved_now()
    return _RESERVED


def _reserved_now() -> frozenset:
    import builtins
    from s2sad.runtime import helpers, registry
    names = {n for n in vars(helpers) if not n.startswith("_")}
    names |= {n for n in dir(builtins) if not n.startswith("_")}
    names |= {"np", "numpy", "scipy", "math"}
    for prim in registry.all_primitives():
        spelled = (prim.spelling or prim.name).split(".")[0]
        names.add(spelled)
        for tpl in [prim.jvp, *prim.transpose.values()]:
            names.update(getattr(tpl, "free", ()))
    return frozenset(n for n in names if n.isidentifier())


class Namer:
    def __init__(self, taken=()):
        self.taken = set(taken) | reserved()

    def reserve(self, name: str) -> None:
        self.taken.add(name)

    def fresh(self, hint: str) -> str:
        base = clean(hint)
        if base not in self.taken:
            self.taken.add(base)
            return base
        i = 1
        while f"{base}_{i}" in self.taken:
            i += 1
        name = f"{base}_{i}"
        self.taken.add(name)
        return name

    def child(self) -> "Namer":
        return Namer(self.taken)


def bind_callee(namespace, namer, callee) -> str:
    """The name under which generated code calls `callee` (bound in `namespace` once)."""
    for k, v in namespace.items():
        if v is callee:
            return k
    name = callee.name
    if name in namespace or name in namer.taken:
        name = namer.fresh(name)
    namer.reserve(name)
    namespace[name] = callee
    return name

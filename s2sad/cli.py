"""Command line: ``s2sad dump FILE.py:FUNC -t jvp`` and ``s2sad primitives``.

Bad input (a missing file, an unknown function, code that cannot be transformed) prints
one line on stderr and exits with status 2.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys

TRANSFORMS = ("jvp", "jacfwd", "grad", "vjp", "jacrev", "hessian", "vmap", "jit")


class CliError(Exception):
    pass


def _load(spec):
    if ":" not in spec:
        raise CliError(f"expected FILE.py:FUNC, got {spec!r}")
    path, func = spec.rsplit(":", 1)
    if not os.path.isfile(path):
        raise CliError(f"no such file: {path}")
    name = "s2sad_cli_" + os.path.splitext(os.path.basename(path))[0]
    mod_spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(mod_spec)
    sys.modules[name] = module
    sys.path.insert(0, os.path.dirname(os.path.abspath(path)))
    try:
        mod_spec.loader.exec_module(module)
    except Exception as e:  # the user's module failed to import
        raise CliError(f"{path}: importing failed: {type(e).__name__}: {e}") from e
    obj = module
    for part in func.split("."):
        if not hasattr(obj, part):
            raise CliError(f"{path} has no function {func!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise CliError(f"{path}:{func} is not a function")
    return obj


def _parse_ints(text):
    if text is None:
        return None
    parts = [p.strip() for p in text.split(",") if p.strip()]
    try:
        nums = tuple(int(p) for p in parts)
    except ValueError:
        raise CliError(f"--argnums expects integers like 0,1; got {text!r}")
    return nums[0] if len(nums) == 1 else nums


def _apply(fun, kinds, argnums, in_axes):
    import s2sad as ad
    from s2sad import api
    for kind in kinds:
        if kind == "jvp":
            fun = api.jvp_function(fun)
        elif kind == "jacfwd":
            fun = ad.jacfwd(fun, argnums=argnums if argnums is not None else 0)
        elif kind in ("grad", "jacrev", "hessian"):
            fun = getattr(ad, kind)(fun, argnums=argnums if argnums is not None else 0)
        elif kind == "vjp":
            fun = api.vjp_function(fun)
        elif kind == "vmap":
            fun = ad.vmap(fun, in_axes=in_axes if in_axes is not None else 0)
        elif kind == "jit":
            fun = ad.jit(fun)
    return fun


def _in_axes(text):
    if text is None:
        return None
    out = []
    for p in text.split(","):
        p = p.strip()
        out.append(None if p in ("None", "none", "") else int(p))
    return tuple(out) if len(out) > 1 else out[0]


def cmd_dump(args):
    import s2sad as ad
    fun = _load(args.target)
    kinds = args.transform or ["jvp"]
    fun = _apply(fun, kinds, _parse_ints(args.argnums), _in_axes(args.in_axes))
    sys.stdout.write(ad.source(fun))


def cmd_primitives(args):
    from s2sad.runtime import registry
    prims = registry.all_primitives()
    rows = [("primitive", "spelling", "rules")]
    for p in prims:
        if p.kind in ("copy",):
            continue
        spelling = p.spelling or {"binop": "operator", "unaryop": "operator", "compare": "operator",
                                  "subscript": "x[idx]", "setitem": "x[idx] = v",
                                  "attribute": "x." + p.name.split(".")[-1],
                                  "method": "x." + p.name.split(".")[-1] + "(...)"}.get(p.kind, p.kind)
        rules = ", ".join(p.rules) if not p.nondiff else "zero derivative" + \
            (", batch" if p.batchable else "") + (", numba" if p.numba else "")
        rows.append((p.name, spelling, rules))
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    for r in rows:
        print(f"{r[0]:<{w0}}  {r[1]:<{w1}}  {r[2]}")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="s2sad", description="source-to-source AD for NumPy")
    sub = parser.add_subparsers(dest="command")
    d = sub.add_parser("dump", help="print the generated source of a transformed function")
    d.add_argument("target", help="FILE.py:FUNC")
    d.add_argument("-t", "--transform", action="append", choices=TRANSFORMS,
                   help="transform to apply (repeat; innermost first)")
    d.add_argument("--argnums", help="argument numbers to differentiate, e.g. 0,1")
    d.add_argument("--in-axes", dest="in_axes", help="vmap in_axes, e.g. 0,None")
    sub.add_parser("primitives", help="list the supported NumPy primitives and their rules")
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_usage(sys.stderr)
        return 2
    from s2sad.errors import TransformError
    try:
        if args.command == "dump":
            cmd_dump(args)
        else:
            cmd_primitives(args)
    except (CliError, TransformError, TypeError, ValueError, NotImplementedError) as e:
        msg = " ".join(str(e).split())
        print(f"s2sad: error: {msg}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

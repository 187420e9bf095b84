"""Long randomized differential-testing campaign of every s2sad transform (issue 6).

    python benchmarks/fuzz.py --programs 10000 [--seed N] [--jobs 2] [--out fuzz-failures]

Programs come from tests/fuzz_programs.py (hypothesis strategies) and are checked by its
oracles.  Work is split into chunks, each run by a fresh subprocess (so a hang, a crash or
s2sad's caches cannot spoil the rest); each chunk is a hypothesis run with its own seed.
When a program fails with a (status, oracle, error) signature not seen before, hypothesis
shrinks it to a minimal program, saved as ``OUT/bugs/<n>_<oracle>.py``; later failures that
have a known signature and every feature of that bug's minimal program are counted but not
shrunk again.  Every failing program (unshrunk) is saved under ``OUT/raw/``.  About one
program in ten is an unsupported-construct program (TransformError must name the line).

Prints: programs tried / ok / rejected (no well-conditioned input) / mismatches / internal
errors / TransformErrors, the distinct bugs, and where their sources are.

Each finished chunk's result is kept in ``OUT/chunks/``; running the same command again
with the same ``--out`` resumes the campaign (finished chunks are read back, not rerun),
provided the code is the same: ``OUT/campaign.json`` records the seed, the size and a
fingerprint of the s2sad package and the generator, and a resume with different code is
refused.  A campaign that outlives one sitting is still one campaign of one code version.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from collections import Counter

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.join(os.path.dirname(HERE), "tests")


# ---------------------------------------------------------------------------- chunk

def run_chunk(seed, count, out_dir, known_path, shrink_seconds, unsupported_every, disable,
              reduce_seconds=180.0, third_order=False, vmap=False):
    sys.path.insert(0, TESTS)
    import numpy as np  # noqa: F401
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as hseed
    from hypothesis import strategies as st

    import fuzz_programs as FP

    known = []
    if os.path.exists(known_path):
        with open(known_path) as fh:
            known = [(tuple(k["signature"]), frozenset(k["features"])) for k in map(json.loads, fh)]
    allow = None
    if disable:
        allow = FP.ALL_FEATURES - set(disable)
    stats = Counter()
    te_saved = Counter()
    failures = []      # (signature, status, oracle, message, path)
    new_bugs = []
    state = {"shrinking": False, "target": None, "best": None, "t0": 0.0, "n": 0}
    raw_dir = os.path.join(out_dir, "raw")
    bug_dir = os.path.join(out_dir, "bugs")
    os.makedirs(raw_dir, exist_ok=True)
    os.makedirs(bug_dir, exist_ok=True)

    class Found(Exception):
        pass

    def is_known(sig, feats):
        """Errors are told apart by their signature; a mismatch (whose signature is just the
        oracle) is new unless the program has every feature of a known one's minimal
        program, up to three shrinks per oracle."""
        same = [f for s, f in known if s == sig]
        if not same:
            return False
        return sig[0] != "mismatch" or len(same) >= 3 or any(f <= feats for f in same)

    def body(prog, input_seed, unsupported):
        shrinking = state["shrinking"]
        if not shrinking:
            state["n"] += 1
        if shrinking and time.time() - state["t0"] > shrink_seconds:
            return
        state["unsupported"] = unsupported
        if unsupported:
            out = FP.check_unsupported(prog)
            fails = [out] if out.status != "ok" else []
        else:
            oracles = FP.ORACLES + (FP.EXTRA_ORACLES if third_order else ()) + \
                (FP.VMAP_ORACLES if vmap else ())
            if shrinking and state["target_stage"] in oracles:   # only the one that failed
                t = state["target_stage"]
                oracles = ("jvp", t) if t in FP.NEEDS_JVP else (t,)
            try:
                out = FP.check(prog, input_seed, oracles=oracles)
            except FP.GeneratorBug as e:
                # the generator broke its promise (not s2sad's fault): keep the program,
                # count it, and go on -- hypothesis must not shrink it (it would run every
                # oracle on each candidate, uncounted, for minutes)
                if shrinking:
                    return
                stats["generator_bugs"] += 1
                if stats["generator_bugs"] <= 5:
                    path = os.path.join(raw_dir, f"{seed}_{state['n']:05d}_generator_bug.py")
                    with open(path, "w") as fh:
                        fh.write("".join("# " + l + "\n" for l in str(e).splitlines()[:1]))
                        fh.write(prog.source)
                return
            fails = getattr(out, "failures", [])
        if not shrinking:
            stats["tried"] += 1
            stats["unsupported" if unsupported else "supported"] += 1
            stats["ok" if not fails and out.status == "ok" else
                  "rejected" if out.status == "rejected" else "failed"] += 1
            kinds = {f.status for f in fails}
            for k in kinds:                       # programs with at least one failure of a kind
                stats[k] += 1
            for f in fails:
                if f.status == "transform_error":
                    stats["te:" + f.signature()[1]] += 1
        tes = [f for f in fails if f.status == "transform_error"]
        if tes and not shrinking and not unsupported:     # a valid program refused: keep it
            k = tes[0].signature()
            if te_saved[k] < 5:
                te_saved[k] += 1
                path = os.path.join(raw_dir, f"{seed}_{state['n']:05d}_transform_error.py")
                with open(path, "w") as fh:
                    fh.write(FP.describe(prog, tes[0], out.input_seed))
        bad = [f for f in fails if f.status in ("mismatch", "internal_error")]
        if not bad:
            return
        if not shrinking:
            name = f"{seed}_{state['n']:05d}_{bad[0].status}.py"
            path = os.path.join(raw_dir, name)
            with open(path, "w") as fh:
                others = "".join(f"# also {f.status}: {f.oracle}: {f.message.splitlines()[0][:150]}\n"
                                 for f in bad[1:])
                fh.write(others + FP.describe(prog, bad[0], out.input_seed))
            for f in bad:
                failures.append((list(f.signature()), f.status, f.oracle, f.message[:300], path))
            new = [f for f in bad if not is_known(f.signature(), prog.features)]
            if not new:
                return
            state.update(shrinking=True, target=new[0].signature(), t0=time.time(),
                         target_stage=new[0].stage)
            state["best"] = (prog, new[0])
            raise Found()
        match = [f for f in bad if f.signature() == state["target"]]
        if not match:
            return
        state["best"] = (prog, match[0])
        raise Found()

    remaining = count
    sub = 0
    while remaining > 0:
        n = min(remaining, 50)
        start = stats["tried"]

        @settings(max_examples=n, database=None, deadline=None, derandomize=False,
                  phases=[Phase.generate, Phase.shrink], report_multiple_bugs=False,
                  suppress_health_check=list(HealthCheck), print_blob=False)
        @hseed(seed * 1000 + sub)
        @given(st.data())
        def test(data):
            unsupported = unsupported_every and data.draw(st.integers(0, unsupported_every - 1)) == 0
            if unsupported:
                prog = data.draw(FP.unsupported_programs())
            else:
                prog = data.draw(FP.programs(allow=allow))
            try:
                body(prog, data.draw(st.integers(0, 2 ** 16)), unsupported)
            except Found:
                raise
            except Exception as e:  # noqa: BLE001 -- a harness bug: count it, never shrink it
                stats["harness_errors"] += 1
                print(f"harness error: {type(e).__name__}: {e}", file=sys.stderr)

        try:
            test()
        except Found:
            pass
        except Exception as e:  # hypothesis wraps Found in its own errors at times
            if "Found" not in repr(e):
                stats["harness_errors"] += 1
                print(f"harness error: {type(e).__name__}: {e}", file=sys.stderr)
        if state["shrinking"] and state["best"] is not None:
            prog, out = state["best"]
            k = len(os.listdir(bug_dir))
            slug = "".join(ch if ch.isalnum() else "_" for ch in out.oracle)[:40]
            path = os.path.join(bug_dir, f"{seed}_{k:03d}_{out.status}_{slug}.py")
            reduced = prog
            if out.input_seed is not None and not state.get("unsupported"):
                try:   # hypothesis' shrink, then delta debugging on the AST
                    reduced = FP.reduce_failure(prog, out, out.input_seed, seconds=reduce_seconds)
                except Exception as e:  # noqa: BLE001
                    print(f"reduction failed: {type(e).__name__}: {e}", file=sys.stderr)
            with open(path, "w") as fh:
                fh.write(FP.describe(reduced, out, out.input_seed))
                if reduced is not prog:
                    fh.write("\n\n# ---- as hypothesis shrank it:\n" +
                             "".join("# " + l + "\n" for l in prog.source.splitlines()))
            entry = {"signature": list(out.signature()), "features": sorted(prog.features),
                     "status": out.status, "oracle": out.oracle, "message": out.message[:500],
                     "detail": out.detail, "path": path, "source": reduced.source}
            new_bugs.append(entry)
            known.append((tuple(entry["signature"]), frozenset(prog.features)))
            with open(known_path, "a") as fh:
                fh.write(json.dumps(entry) + "\n")
        state.update(shrinking=False, target=None, best=None)
        done = stats["tried"] - start
        remaining -= max(done, 1)
        sub += 1
    return {"stats": dict(stats), "failures": failures, "new_bugs": new_bugs}


# ---------------------------------------------------------------------------- driver

def code_fingerprint():
    """A hash of the s2sad package that will be imported and of the program generator."""
    import s2sad
    import s2sad.runtime
    import s2sad.transforms
    roots = {os.path.dirname(m.__file__) for m in (s2sad, s2sad.transforms, s2sad.runtime)}
    files = [os.path.join(TESTS, "fuzz_programs.py")]
    for root in sorted(roots):
        for d, _, names in sorted(os.walk(root)):
            files.extend(os.path.join(d, n) for n in sorted(names) if n.endswith(".py"))
    h = hashlib.sha256()
    files = sorted(set(files))
    base = os.path.commonpath(files)
    for path in files:
        h.update(os.path.relpath(path, base).encode())
        with open(path, "rb") as fh:
            h.update(fh.read())
    return h.hexdigest()[:16], sorted(roots)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--programs", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--chunk", type=int, default=100, help="programs per subprocess")
    ap.add_argument("--out", default="fuzz-failures")
    ap.add_argument("--shrink-seconds", type=float, default=240.0)
    ap.add_argument("--unsupported-every", type=int, default=10,
                    help="one program in this many is an unsupported-construct program (0: none)")
    ap.add_argument("--disable", default="",
                    help="comma-separated generator features to leave out (e.g. known bugs)")
    ap.add_argument("--third-order", action="store_true",
                    help="also run the third-order oracle (symmetry of the third-derivative "
                         "tensor, three routes); slow on large programs")
    ap.add_argument("--vmap", action="store_true",
                    help="also run the vmap oracle (vmap of core and of grad(f) vs a loop "
                         "over a batch of three examples)")
    ap.add_argument("--chunk-timeout", type=float, default=3600.0)
    ap.add_argument("--worker", nargs=2, metavar=("SEED", "COUNT"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    known_path = os.path.join(args.out, "known_bugs.jsonl")
    disable = [d for d in args.disable.split(",") if d]

    if args.worker:
        res = run_chunk(int(args.worker[0]), int(args.worker[1]), args.out, known_path,
                        args.shrink_seconds, args.unsupported_every, disable,
                        third_order=args.third_order, vmap=args.vmap)
        print("RESULT " + json.dumps(res))
        return 0

    fingerprint, roots = code_fingerprint()
    meta = {"seed": args.seed, "programs": args.programs, "chunk": args.chunk,
            "unsupported_every": args.unsupported_every, "disable": args.disable,
            "third_order": args.third_order,
            "code": fingerprint}
    if args.vmap:
        meta["vmap"] = True
    meta_path = os.path.join(args.out, "campaign.json")
    chunk_dir = os.path.join(args.out, "chunks")
    os.makedirs(chunk_dir, exist_ok=True)
    if os.path.exists(meta_path):
        with open(meta_path) as fh:
            old = json.load(fh)
        if old != meta:
            print(f"{args.out} holds another campaign ({old}); this one is {meta}. "
                  f"Use another --out.", file=sys.stderr)
            return 2
    else:
        with open(meta_path, "w") as fh:
            json.dump(meta, fh)
    print(f"s2sad from {', '.join(roots)}; code fingerprint {fingerprint}", flush=True)

    t0 = time.time()
    chunks = []
    left, k = args.programs, 0
    while left > 0:
        n = min(args.chunk, left)
        chunks.append((args.seed * 100000 + k, n))
        left -= n
        k += 1
    total = Counter()
    failures, bugs = [], []
    running = []
    log = open(os.path.join(args.out, "campaign.log"), "a")

    def launch(cseed, n):
        cmd = [sys.executable, os.path.abspath(__file__), "--worker", str(cseed), str(n),
               "--out", args.out, "--shrink-seconds", str(args.shrink_seconds),
               "--unsupported-every", str(args.unsupported_every), "--disable", args.disable] + (["--third-order"] if args.third_order else []) + (["--vmap"] if args.vmap else [])
        env = dict(os.environ, PYTHONHASHSEED=str(cseed % 4294967295))
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        return (p, cseed, n, time.time())

    def reap(entry):
        p, cseed, n, started = entry
        try:
            out, err = p.communicate(timeout=max(1.0, args.chunk_timeout - (time.time() - started)))
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate()
            total["chunk_timeouts"] += 1
        res = None
        for line in out.splitlines():
            if line.startswith("RESULT "):
                res = json.loads(line[7:])
        if res is None:
            total["chunk_crashes"] += 1
            log.write(f"chunk {cseed} crashed:\n{err[-3000:]}\n")
            log.flush()
            return
        res["seconds"] = time.time() - started
        with open(os.path.join(chunk_dir, f"{cseed}.json"), "w") as fh:
            json.dump(res, fh)
        record(res)
        s = res["stats"]
        msg = (f"[{time.time() - t0:7.0f}s] chunk {cseed}: tried {s.get('tried', 0)}, "
               f"mismatch {s.get('mismatch', 0)}, internal {s.get('internal_error', 0)}, "
               f"TransformError {s.get('transform_error', 0)}, rejected {s.get('rejected', 0)}; "
               f"total tried {total['tried']}")
        print(msg, flush=True)
        log.write(msg + "\n")
        log.flush()

    def record(res):
        total["chunk_seconds"] += res.get("seconds", 0.0)
        total.update(res["stats"])
        failures.extend(res["failures"])
        bugs.extend(res["new_bugs"])

    pending = []
    for cseed, n in chunks:
        done_path = os.path.join(chunk_dir, f"{cseed}.json")
        if os.path.exists(done_path):
            with open(done_path) as fh:
                record(json.load(fh))
        else:
            pending.append((cseed, n))
    resumed = len(pending) < len(chunks)
    if resumed:
        msg = (f"resuming: {len(chunks) - len(pending)} chunks already done "
               f"({total['tried']} programs)")
        print(msg, flush=True)
        log.write(msg + "\n")
    while pending or running:
        while pending and len(running) < args.jobs:
            running.append(launch(*pending.pop(0)))
        time.sleep(0.5)
        for entry in list(running):
            if entry[0].poll() is not None:
                running.remove(entry)
                reap(entry)

    elapsed = time.time() - t0
    print()
    print(f"programs tried      {total['tried']}  ({total['supported']} valid, "
          f"{total['unsupported']} with an unsupported construct) in {elapsed:.0f}s"
          + (f" (this sitting; {total['chunk_seconds']:.0f} chunk-seconds in all, "
             f"{args.jobs} jobs)" if resumed else ""))
    print(f"ok                  {total['ok']}")
    print(f"failed              {total['failed']}  (programs with at least one failing oracle)")
    print(f"rejected inputs     {total['rejected']}  (no well-conditioned input found)")
    print(f"mismatches          {total['mismatch']}  (programs with a wrong result)")
    print(f"internal errors     {total['internal_error']}  (programs where s2sad raised another exception)")
    print(f"generator bugs      {total['generator_bugs']}  (programs that fail in plain NumPy: the "
          f"generator's fault, saved under raw/)")
    print(f"TransformErrors     {total['transform_error']}  (programs s2sad refused; valid ones, and "
          f"unsupported ones refused wrongly)")
    if total["chunk_crashes"] or total["chunk_timeouts"] or total["harness_errors"]:
        print(f"chunk crashes {total['chunk_crashes']}, chunk timeouts {total['chunk_timeouts']}, "
              f"harness errors {total['harness_errors']}")
    tes = sorted(((v, k[3:]) for k, v in total.items() if k.startswith("te:")), reverse=True)
    if tes:
        print("\nTransformError messages on valid programs:")
        for v, k in tes:
            print(f"  {v:5d}  {k}")
    by_sig = Counter(tuple(map(str, f[0])) for f in failures)
    print(f"\ndistinct failure signatures: {len(by_sig)} (failing oracle runs per signature)")
    for sig, cnt in by_sig.most_common():
        print(f"  {cnt:5d}  {' | '.join(sig)}")
    print(f"\nminimal reproducers ({len(bugs)}) in {os.path.join(args.out, 'bugs')}:")
    for b in bugs:
        print(f"  {b['path']}: {b['oracle']}: {b['message'].splitlines()[0][:150]}")
    with open(os.path.join(args.out, "summary.json"), "w") as fh:
        json.dump({"stats": dict(total), "elapsed": elapsed, "bugs": bugs,
                   "signatures": {" | ".join(k): v for k, v in by_sig.items()}}, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())

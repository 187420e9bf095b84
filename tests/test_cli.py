"""The command line: dump and primitives; bad input exits 2 with one line on stderr."""

import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(__file__)
PROGRAMS = os.path.join(HERE, "programs.py")
UNSUPPORTED = os.path.join(HERE, "unsupported.py")


def run(*args):
    return subprocess.run([sys.executable, "-m", "s2sad", *args], capture_output=True, text=True,
                          timeout=300)


def test_dump_jvp():
    out = run("dump", f"{PROGRAMS}:branches", "-t", "jvp")
    assert out.returncode == 0, out.stderr
    assert "def branches_jvp(x, a, x_dot, a_dot):" in out.stdout
    assert "import numpy as np" in out.stdout


def test_dump_jacfwd_with_argnums():
    out = run("dump", f"{PROGRAMS}:straight", "-t", "jacfwd", "--argnums", "1")
    assert out.returncode == 0, out.stderr
    assert "def straight_jacfwd(x, y):" in out.stdout
    assert "straight_jvp_y" in out.stdout


def test_dump_composed_transforms():
    out = run("dump", f"{PROGRAMS}:straight", "-t", "jvp", "-t", "jacfwd")
    assert out.returncode == 0, out.stderr
    assert "straight_jvp_jacfwd" in out.stdout


def test_console_script_is_installed():
    exe = os.path.join(os.path.dirname(sys.executable), "s2sad")
    if not os.path.exists(exe):
        pytest.skip("console script not on this interpreter's bin dir")
    out = subprocess.run([exe, "primitives"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0


def test_primitives_lists_rules():
    out = run("primitives")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert any(line.split()[:2] == ["sin", "np.sin"] and "jvp" in line for line in lines)
    assert any(line.startswith("floor ") and "zero derivative" in line for line in lines)


@pytest.mark.parametrize("args,text", [
    (["dump", "missing.py:f"], "no such file"),
    (["dump", f"{PROGRAMS}:nope"], "no function"),
    (["dump", f"{PROGRAMS}"], "FILE.py:FUNC"),
    (["dump", f"{UNSUPPORTED}:uses_with", "-t", "jvp"], "unsupported.py:"),
])
def test_bad_input_exits_2_with_one_line(args, text):
    out = run(*args)
    assert out.returncode == 2
    err = out.stderr.strip().splitlines()
    assert len(err) == 1, out.stderr
    assert text in err[0]


def test_dump_vmap_of_grad_with_in_axes():
    # per-example gradients: the batched code is vectorised (no loop over the batch)
    out = run("dump", f"{PROGRAMS}:straight", "-t", "grad", "-t", "vmap", "--in-axes", "0,None")
    assert out.returncode == 0, out.stderr
    assert "def straight_grad_vmap(x, y):" in out.stdout
    assert "np.moveaxis(x, 0, -1)" in out.stdout
    assert "a loop over the batch" not in out.stdout


def test_vmap_in_axes_of_the_wrong_length_exits_2():
    out = run("dump", f"{PROGRAMS}:straight", "-t", "vmap", "--in-axes", "0,None,0")
    assert out.returncode == 2
    assert len(out.stderr.strip().splitlines()) == 1
    assert "in_axes" in out.stderr

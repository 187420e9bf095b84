"""Regression tests for bugs the randomized differential tester found (issue 6).

Each test is a minimal program (shrunk by hypothesis, reduced by delta debugging on the AST
and tidied by hand), written out as source, with the oracle that failed and the right
answer.  Open bugs are marked ``xfail(strict=True)``: fixing one makes its test XPASS,
which fails the run so the mark gets removed.

`KNOWN_SIGNATURES` collects the failure signatures (`fuzz_programs.Outcome.signature()`)
each open bug produces in the random programs of tests/test_fuzz.py, which tolerates them;
removing a bug's test (or its `bug` mark) removes the tolerance.
"""

import textwrap

import numpy as np
import pytest

import s2sad as ad

import fuzz_programs as FP

KNOWN_SIGNATURES: set = set()


def bug(reason, *signatures):
    """Mark an open bug: strict xfail, and the signatures it produces in random programs."""
    KNOWN_SIGNATURES.update(signatures)
    return pytest.mark.xfail(strict=True, reason=reason)


def ie(stage, message):
    return ("internal_error", stage, message)


def mm(oracle):
    return ("mismatch", oracle)


def program(source):
    """Import a program from its source text (s2sad reads it from the file written)."""
    return FP.load_source(textwrap.dedent(source))


def fd(f, x, h=1e-6):
    return (f(x + h) - f(x - h)) / (2 * h)


# ------------------------------------------------------------------ silently wrong results

# fixed: a return inside a nested if / an elif is ignored by reverse mode and linearize:
# the primal value and the derivative are those of the code after the if
@pytest.mark.parametrize("which", ["elif", "nested"])
def test_return_inside_elif_or_nested_if(which):
    m = program('''
        import numpy as np

        def elif_(x):
            if x > 10.0:
                pass
            elif x < 10.0:
                return x * 2.0
            return x * 3.0

        def nested(x):
            if x > 0.0:
                if x < 10.0:
                    return x * 2.0
            return x * 3.0
    ''')
    f = getattr(m, which + "_" if which == "elif" else which)
    assert ad.linearize(f, 0.3)[0] == pytest.approx(0.6)
    assert ad.vjp(f, 0.3)[0] == pytest.approx(0.6)
    assert ad.grad(f)(0.3) == pytest.approx(2.0)


# fixed: a parameter rebound to a value that does not depend on it still gets a
# cotangent: grad of `x = np.sin(0.5); return np.sin(x)` is cos(sin(0.5)), not 0
def test_parameter_rebound_to_a_constant_has_zero_gradient():
    m = program('''
        import numpy as np

        def f(x):
            x = np.sin(0.5)
            return np.sin(x)
    ''')
    assert ad.jvp(m.f, (0.3,), (1.0,))[1] == 0.0
    assert ad.grad(m.f)(0.3) == 0.0
    assert ad.vjp(m.f, 0.3)[1](1.0)[0] == 0.0


# fixed: an index that is a list literal, x[[1, 0]], is read as the tuple index x[1, 0]:
# a wrong value when that is a valid index (2-d x), an IndexError otherwise
def test_list_literal_index_is_fancy_indexing():
    m = program('''
        import numpy as np

        def rows(x):
            return x[[1, 0]] * 2.0

        def picks(x):
            return x[[0, 2]]
    ''')
    X = np.arange(6.0).reshape(2, 3)
    out, tan = ad.jvp(m.rows, (X,), (np.ones_like(X),))
    np.testing.assert_allclose(out, 2.0 * X[[1, 0]])      # s2sad: 2.0 * X[1, 0], a scalar
    x = np.array([1.0, 2.0, 3.0])
    np.testing.assert_allclose(ad.jvp(m.picks, (x,), (x,))[0], [1.0, 3.0])


# fixed: the tangent of a broadcasting operation is not broadcast when the other
# operand's tangent is zero: jacfwd per argument fails (reshape), jvp with an integer
# argument returns a tangent of the wrong shape
def test_tangent_of_broadcast_with_one_zero_tangent_has_the_output_shape():
    m = program('''
        import numpy as np

        def f(x, z):
            return x * np.ones((3, 2)) + z[:, None]
    ''')
    z = np.array([1.0, 2.0, 3.0])
    Jx, Jz = ad.jacfwd(m.f, argnums=(0, 1))(0.3, z)
    np.testing.assert_allclose(Jx, np.ones((3, 2)))
    np.testing.assert_allclose(Jz, np.broadcast_to(np.eye(3)[:, None, :], (3, 2, 3)))
    _, t = ad.jvp(m.f, (3, z), (0, z))                    # x an int: inactive
    assert np.shape(t) == (3, 2)


# fixed: grad / jacfwd with respect to one operand of a broadcasting add or subtract
# whose other operand is inactive: the derivative is divided by the broadcast factor
# (grad of sum(a[:, None] - Y) w.r.t. a is 1, not 2, for Y of shape (3, 2))
@pytest.mark.parametrize("form", ["a[:, None] - Y", "a.reshape(3, 1) + Y"])
def test_gradient_through_a_broadcast_against_an_inactive_operand(form):
    m = program(f'''
        import numpy as np

        def f(a, Y):
            return np.sum({form})
    ''')
    a, Y = np.array([0.3, 0.2, 0.1]), np.ones((3, 2))
    np.testing.assert_allclose(ad.grad(m.f)(a, Y), [2.0, 2.0, 2.0])          # s2sad: 1, 1, 1
    np.testing.assert_allclose(ad.jacfwd(m.f, argnums=0)(a, Y), [2.0, 2.0, 2.0])


# fixed: jvp of a function that returns a module-level constant array returns the
# constant itself as the tangent (C3 instead of zeros); jacfwd likewise
def test_tangent_of_a_returned_global_constant_is_zero():
    m = program('''
        import numpy as np

        C3 = np.array([0.5, -0.25, 1.5])

        def f(x):
            return C3
    ''')
    _, t = ad.jvp(m.f, (0.3,), (1.0,))
    np.testing.assert_array_equal(t, np.zeros(3))           # s2sad: [0.5, -0.25, 1.5]
    np.testing.assert_array_equal(ad.jacfwd(m.f)(0.3), np.zeros(3))


# fixed: an augmented write into a buffer whose right-hand side reads the buffer itself
# (through a reshape) gets a wrong derivative from linearize, vjp and jacrev (jvp is
# right)
def test_augmented_write_reading_the_same_buffer():
    m = program('''
        import numpy as np

        C2 = np.array([0.5, 0.5])
        C32 = np.array([[0.5, 0.5], [0.5, 0.9], [0.4, 0.8]])

        def f(x):
            buf = np.zeros((2, 3))
            for i in range(2):
                buf[i] += np.matmul(buf.reshape(3, 2) if i == 0 else np.sum(x) * C32, np.sum(x) * C2)
            return np.sum(buf)
    ''')
    x = np.array([0.3, -0.2, 0.5])
    h = 1e-6
    fd = np.array([(m.f(x + h * e) - m.f(x - h * e)) / (2 * h) for e in np.eye(3)])
    np.testing.assert_allclose(ad.jvp(m.f, (x,), (np.ones(3),))[1], fd.sum(), rtol=1e-6)
    np.testing.assert_allclose(ad.grad(m.f)(x), fd, rtol=1e-6)
    np.testing.assert_allclose(ad.linearize(m.f, x)[1](np.ones(3)), fd.sum(), rtol=1e-6)


# ------------------------------------------------------------------ internal errors

# fixed in b100c28 (generated names shadowed the helper zero_tangent)
def test_grad_of_jvp_of_a_constant_function():
    m = program('''
        import s2sad as ad

        def pair(x, y, v):
            return ad.jvp(lambda u: y * 2.0, (x,), (v,))[1]
    ''')
    assert ad.grad(m.pair)(0.3, 0.5, 1.0) == 0.0


# fixed in b100c28 (generated names shadowed the helper stop_gradient)
def test_stop_gradient_in_a_while_condition():
    m = program('''
        import s2sad as ad

        def f(x):
            k = 0
            while x > ad.stop_gradient(x * 0.5):
                k += 1
                if k > 2:
                    break
            return x * 2.0
    ''')
    assert ad.jvp(m.f, (0.3,), (1.0,)) == (pytest.approx(0.6), pytest.approx(2.0))
    assert ad.grad(m.f)(0.3) == pytest.approx(2.0)


# fixed: a loop that may not run (inside an if not taken) has its loop variable saved as
# a residual by the forward sweep: UnboundLocalError in vjp, jacrev, hessian, linearize
def test_loop_in_a_branch_not_taken():
    m = program('''
        import numpy as np

        def f(x):
            if x > 10.0:
                buf = np.zeros(3)
                for i in range(3):
                    buf[i] += x
            return x * 2.0
    ''')
    assert ad.vjp(m.f, 0.3)[1](1.0)[0] == pytest.approx(2.0)
    assert ad.linearize(m.f, 0.3)[1](1.0) == pytest.approx(2.0)
    assert ad.jacrev(m.f)(0.3) == pytest.approx(2.0)
    assert ad.hessian(m.f)(0.3) == pytest.approx(0.0)


# fixed: linearize: the tangent of a buffer or list that does not reach the output is
# written (x_dot[i] = ..., lst_dot.append) but never created
@pytest.mark.parametrize("which", ["dead_buffer", "buffer_aug", "list_read_in_loop"])
def test_linearize_tangent_of_unused_buffer_or_list(which):
    m = program('''
        import numpy as np

        def dead_buffer(x):
            buf = np.zeros(3)
            for i in range(3):
                buf[i] = np.sin(x)
            return x

        def buffer_aug(x):
            buf = np.ones(1)
            for i in range(1):
                buf[i] *= x
            return x

        def list_read_in_loop(x):
            lst = []
            for i in range(1):
                lst.append(x)
            for r in lst:
                acc = r
            return acc
    ''')
    out, lin = ad.linearize(getattr(m, which), 0.3)
    assert lin(1.0) == pytest.approx(1.0)


# fixed: a loop over an array (for r in x / zip(x, ...)) whose array is reassigned or
# not otherwise needed: the linear or backward code loops over `len(x)` but x is not
# passed to it
def test_loop_over_an_array_in_linear_and_backward_code():
    m = program('''
        import numpy as np

        def rows(x):
            for r in x:
                x = x * r
            return np.sum(x)

        def other(x, y):
            for r in y:
                x = np.tanh(x)
            return np.sum(x * y)
    ''')
    x = np.array([0.3, -0.2, 0.5])
    _, lin = ad.linearize(m.rows, x)
    np.testing.assert_allclose(lin(np.ones(3)), ad.jvp(m.rows, (x,), (np.ones(3),))[1])
    y = np.array([0.1, 0.2, 0.7])
    H = ad.hessian(m.other)(x, y)
    np.testing.assert_allclose(H, ad.jacfwd(ad.grad(m.other))(x, y))


# fixed: jacfwd/grad by argument: a parameter that is reassigned has no tangent in the
# specialization where it is not differentiated (y_dot unbound / undefined)
def test_reassigned_parameter_in_per_argument_jacobian():
    m = program('''
        import numpy as np

        def f(x, y):
            y = np.sin(x) * y
            return y
    ''')
    J = ad.jacfwd(m.f, argnums=0)(0.3, 0.7)
    assert J == pytest.approx(np.cos(0.3) * 0.7)


# fixed: exec is accepted: SPEC section 3 says exec raises TransformError naming the
# line
def test_exec_is_refused():
    m = program('''
        def f(x):
            exec('pass')
            return x * 3.0
    ''')
    with pytest.raises(ad.TransformError, match="exec"):
        ad.jvp(m.f, (1.0,), (1.0,))


# fixed: an early return before a parameter is reassigned: the backward code reads the
# reassigned name on the path that returned (UnboundLocalError y_1)
def test_early_return_then_parameter_reassigned():
    m = program('''
        import numpy as np

        def f(x, y):
            if y[2] < y[0]:
                return np.sum(x) * 2.0
            y = np.flip(y, axis=0)
            return np.sum(x * y)
    ''')
    x, y = np.array([0.1, 0.2, 0.3]), np.array([1.0, 0.5, 0.2])
    np.testing.assert_allclose(ad.grad(m.f, argnums=(0, 1))(x, y)[0], [2.0, 2.0, 2.0])


# fixed: an early return inside a loop over zip(...) in linearize: the record of the
# loop's branch decisions is read past its end (IndexError: list index out of range)
def test_return_inside_a_zip_loop():
    m = program('''
        import numpy as np

        def f(x, y):
            for a, b in zip(y, y):
                if b > 0.5 or a > 0.5:
                    return b * x
            return x
    ''')
    y = np.array([0.1, 0.9, 0.3])
    out, lin = ad.linearize(m.f, 0.3, y)
    assert out == pytest.approx(0.27)
    assert lin(1.0, np.zeros(3)) == pytest.approx(0.9)
    assert ad.grad(m.f)(0.3, y) == pytest.approx(0.9)


# fixed: reverse over reverse through a list built by append: the transposed list read
# failed (IndexError / "Field elements" in getitem_t) because the cotangent list made by
# `zeros_list` was not known to be a list, or the generated code lacked `np`
@pytest.mark.parametrize("which", ["for_over_list", "indexed_reads"])
def test_reverse_over_reverse_through_a_list(which):
    m = program('''
        import numpy as np

        def for_over_list(x):
            lst = []
            for i in range(1):
                lst.append(x.dot(x))
            for r in lst:
                acc = np.sin(r)
            return acc

        def indexed_reads(x):
            lst = [x[0], x[1]]
            for i in range(2):
                lst.append(np.tanh(lst[-1] * x[i]))
            return lst[-1] + lst[0] * lst[2]
    ''')
    f = getattr(m, which)
    x = np.array([0.3, 0.2])
    gr = ad.grad(f)
    h = 1e-6
    fd_hessian = np.array([(gr(x + h * e) - gr(x - h * e)) / (2 * h) for e in np.eye(2)])
    np.testing.assert_allclose(ad.jacrev(gr)(x), fd_hessian, atol=1e-7)
    np.testing.assert_allclose(ad.jacfwd(gr)(x), fd_hessian, atol=1e-7)


# fixed: a snapshot of a variable taken before an `if` was reused after a branch rebound it
# (the first-order backward sweep's `v1_bar = v1_bar + ...` in one branch): reverse over
# reverse read the cotangent as it was before the branch (hvp off by 15%)
def test_snapshot_before_an_if_is_stale_after_it():
    m = program('''
        import numpy as np

        C2 = np.array([0.5, 0.5])
        C3 = np.array([0.5, 0.5, 1.5])

        def core(x):
            v1 = np.outer(x * C2, x * C3)
            return (6 if x < -2.0 else v1, v1)

        def f(x):
            return np.sum(np.sin(core(x)[0]))
    ''')
    x = 1.4853160091211528
    # f(x) = sum(sin(x^2 c)), c = outer(C2, C3): f'' = sum(2c cos(x^2 c) - 4x^2 c^2 sin(x^2 c))
    c = np.outer([0.5, 0.5], [0.5, 0.5, 1.5])
    exact = np.sum(2 * c * np.cos(x * x * c) - 4 * x * x * c * c * np.sin(x * x * c))
    gr = ad.grad(m.f)
    for H in (ad.jacrev(gr)(x), ad.jacfwd(gr)(x), ad.hessian(m.f)(x), ad.grad(gr)(x)):
        np.testing.assert_allclose(H, exact, rtol=1e-10)


# fixed: a zip loop's trip count `min(len(y), len(y))` was copied into the linear program,
# which has no `y` (NameError in linearize and in second order)
def test_zip_trip_count_is_a_residual():
    m = program('''
        import numpy as np

        def f(x):
            y = np.sin(x) * 2.0
            acc = 0.0
            for a, b in zip(y, y):
                acc = acc + a * b
            return acc
    ''')
    x = np.array([0.3, 0.5, 0.7])
    t = np.array([1.0, -0.5, 0.25])
    # f = 4 sum(sin(x)^2): df.t = 8 sum(sin cos t)
    _, lin = ad.linearize(m.f, x)
    np.testing.assert_allclose(lin(t), 8 * np.sum(np.sin(x) * np.cos(x) * t), rtol=1e-12)
    np.testing.assert_allclose(ad.jacrev(ad.grad(m.f))(x), np.diag(8 * np.cos(2 * x)), rtol=1e-12)


# fixed: a list built inside an outer loop and read by index (a for loop over it) had no
# shape witness where the backward sweep first reads its cotangent: the cotangent started
# as [] and the read failed (IndexError); the read's argument witness shapes it now
def test_list_rebuilt_in_an_outer_loop():
    m = program('''
        import numpy as np

        def f(x):
            for k in range(1):
                lst = []
                for i in range(3):
                    lst.append(x * 2.0)
                acc = 0.0
                for r in lst:
                    acc = acc + np.sum(r)
            return acc * acc
    ''')
    x = np.array([0.3, 0.5])
    # f = (6 sum(x))^2: grad = 72 sum(x)
    np.testing.assert_allclose(ad.grad(m.f)(x), 72 * np.sum(x) * np.ones(2), rtol=1e-12)
    np.testing.assert_allclose(ad.jacrev(ad.grad(m.f))(x), np.full((2, 2), 72.0), rtol=1e-12)
    np.testing.assert_allclose(ad.hessian(m.f)(x), np.full((2, 2), 72.0), rtol=1e-12)


# fixed: a function returning a constant from inside a loop: restructure stored the JVP's
# 1-tuple `(0.5,)` (the tangent is inactive) as one result, so linearize's and jacrev's
# primal output was the tuple (zero tangent of shape (1,), Jacobian of shape (1, 2, 3))
def test_constant_returned_from_a_loop():
    m = program('''
        def f(x):
            v = 0.5
            for r in x:
                return v
            return v
    ''')
    x = np.ones((2, 3))
    out, lin = ad.linearize(m.f, x)
    assert out == 0.5
    assert np.shape(lin(x)) == () and lin(x) == 0.0
    np.testing.assert_array_equal(ad.jacrev(m.f)(x), np.zeros((2, 3)))
    np.testing.assert_array_equal(ad.jacfwd(m.f)(x), np.zeros((2, 3)))


# fixed: copy propagation merged a branch's tangent (`mul_C2_dot`) into the conditional
# expression's tangent (`select_dot`), and the shape witness of `select_dot` became
# `mul_C2`, which exists only when that branch ran (UnboundLocalError in the pullback)
def test_witness_of_a_conditional_expression_is_its_own_value():
    m = program('''
        import numpy as np

        C2 = np.array([0.5, 0.5])

        def f(x):
            buf = np.zeros((3, 1))
            for i in range(3):
                buf[i] += np.sum(x) * C2 - 0.5 if np.sum(buf) > 1e9 else np.sum(x) * x[i]
            return np.sum(buf, axis=1)
    ''')
    x = np.array([0.1, 0.2, 0.3])
    # f_i = sum(x) x_i: J = outer(x, 1) + sum(x) I
    J = np.outer(x, np.ones(3)) + np.sum(x) * np.eye(3)
    np.testing.assert_allclose(ad.jacrev(m.f)(x), J, rtol=1e-12)
    _, pullback = ad.vjp(m.f, x)
    np.testing.assert_allclose(pullback(np.ones(3))[0], J.sum(axis=0), rtol=1e-12)


# fixed: calling a function whose result has no tangent (it returns a constant) bound the
# JVP callee's 1-tuple `(C,)` to the variable, so the caller's value gained a leading axis
# (ValueError in a later reshape; sums were silently right)
def test_call_of_a_function_returning_a_constant():
    m = program('''
        import numpy as np

        C32 = np.full((3, 2), 0.5)

        def h(a):
            return C32

        def core(x):
            x = h(x)
            return {'p': x, 'q': x.reshape(6)}
    ''')
    x = np.ones((3, 2))
    out, tangent = ad.jvp(m.core, (x,), (x,))
    assert out['p'].shape == (3, 2) and out['q'].shape == (6,)
    np.testing.assert_array_equal(tangent['q'], np.zeros(6))
    np.testing.assert_array_equal(ad.jacrev(lambda u: m.core(u)['q'])(x), np.zeros((6, 3, 2)))


# fixed: a lambda in a `while` test was refused ("the variable 'lambda_' holds different
# kinds of values on different paths"): normalize re-evaluates the test at the end of the
# body with a copy of its statements, and the copied def counted as another function
def test_lambda_in_a_while_test():
    m = program('''
        import numpy as np

        def apply(fn, a):
            return fn(fn(a))

        def f(x):
            k = 0
            while k < 5 and apply(lambda u: u * x[0], 1.0) < 20.0:
                x = 2.0 * x
                k += 1
            return np.sum(x * x)
    ''')
    # x0 = 1: x0**2 = 1, 4, 16 pass the test, 64 does not: x ends as 8 x, f = 64 sum(x**2)
    x = np.array([1.0, 0.5])
    np.testing.assert_allclose(ad.grad(m.f)(x), 128.0 * x, rtol=1e-12)
    _, tangent = ad.jvp(m.f, (x,), (np.array([0.0, 1.0]),))
    np.testing.assert_allclose(tangent, 128.0 * 0.5, rtol=1e-12)


# fixed (campaign 5): after `a, v = (y, np.sum(x))`, copy propagation merged the tangent
# of `np.sum(x)` into `v_dot`, which is now assigned *before* the primal `v` is; the
# linearizer took `v` as the shape witness of that first `v_dot` and snapshotted it
# before it existed (UnboundLocalError in grad, vjp and linearize)
def test_tangent_assigned_before_its_primal_gets_another_witness():
    m = program('''
        import numpy as np

        def f(x, y):
            t = (y, np.sum(x))
            a, v = t
            if 2.0 >= v:
                v = 0.5 * np.sum(x)
            return np.sum(a) * v
    ''')
    y = np.array([1.0, 2.0])
    for x, slope in ((np.array([0.3, 0.2]), 0.5), (np.array([3.0, 2.0]), 1.0)):
        # f = sum(y) * slope * sum(x) on each side of the branch
        np.testing.assert_allclose(ad.grad(m.f)(x, y), 3.0 * slope * np.ones(2), rtol=1e-12)
        _, pullback = ad.vjp(m.f, x, y)
        np.testing.assert_allclose(pullback(1.0)[0], 3.0 * slope * np.ones(2), rtol=1e-12)
        _, lin = ad.linearize(lambda u: m.f(u, y), x)
        np.testing.assert_allclose(lin(np.array([1.0, -2.0])), -3.0 * slope, rtol=1e-12)


# fixed (campaign 6): `y = buf * 1.0` is a new array, but its tangent rule folds to
# `y_dot = buf_dot`, the same array; a later in-place write `buf[:2] -= z` then changed
# y's tangent too (forward mode, and reverse mode through a helper that returned it)
def test_folded_tangent_does_not_share_memory_with_an_array_written_in_place():
    m = program('''
        import numpy as np

        def copy_of(a):
            return a * 1.0

        def later_write(z):
            buf = np.ones(3)
            y = buf * 1.0
            buf[:2] -= z
            return 3.0 + np.sum(y) + np.sum(buf * buf)

        def through_helper(z):
            buf = np.ones(3) * z
            y = copy_of(buf)
            buf[0] = 7.0
            return np.sum(y) + np.sum(buf)

        def write_into_copy(z):
            buf = np.ones(3) * z
            y = buf + 0.0
            y[1] = 2.0
            return np.sum(y * buf)
    ''')
    z = 0.3
    # later_write = 3 + 3 + 2 (1 - z)^2 + 1; through_helper = 3z + 7 + 2z;
    # write_into_copy = z^2 + 2z + z^2
    for f, want in ((m.later_write, -4.0 * (1.0 - z)), (m.through_helper, 5.0),
                    (m.write_into_copy, 4.0 * z + 2.0)):
        assert fd(f, z) == pytest.approx(want, rel=1e-6)
        assert ad.jvp(f, (z,), (1.0,))[1] == pytest.approx(want, rel=1e-12)
        assert ad.linearize(f, z)[1](1.0) == pytest.approx(want, rel=1e-12)
        assert ad.grad(f)(z) == pytest.approx(want, rel=1e-12)


# fixed (campaign 6): the transpose of `item = lst.pop()` in a loop where the item's
# cotangent is zero on one branch wrote an empty list as that zero (it took the popped
# item for a list): reverse over reverse failed in `unbroadcast`
def test_zero_cotangent_of_a_popped_array_is_an_array():
    m = program('''
        import numpy as np

        C = np.array([[0.5, 1.0, 0.5], [0.5, 0.5, 0.5]])

        def f(x):
            items = []
            for i in range(3):
                items.append(np.ravel(C) if i % 2 == 0 else x)
            last = np.sum(items[-1].reshape(2, 3), axis=0)   # a constant
            return np.sum(np.cos(np.sum(items[1].reshape(2, 3), axis=0))) + np.sum(last)
    ''')
    x = np.linspace(0.1, 0.6, 6)
    # f = sum_j cos(s_j), s_j = x[j] + x[j + 3]: d2f/dx_a dx_b = -cos(s_j) when a, b in
    # column j
    s = x[:3] + x[3:]
    col = np.arange(6) % 3
    want = np.where(col[:, None] == col[None, :], -np.cos(s)[col][:, None], 0.0)
    np.testing.assert_allclose(ad.jacrev(ad.grad(m.f))(x), want, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(ad.hessian(m.f)(x), want, rtol=1e-12, atol=1e-14)

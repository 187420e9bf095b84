"""Forward mode through every construct of SPEC section 3, against finite differences."""

import numpy as np
import pytest

import s2sad as ad

import programs as P

rng = np.random.default_rng(20261125)


def vec(n, scale=1.0):
    return rng.normal(size=n) * scale


# (name, function, args, index of the differentiated argument)
CASES = [
    ("straight", P.straight, (0.7, 1.3), 0),
    ("straight-y", P.straight, (vec(4), vec(4)), 1),
    ("reassign", P.reassign, (vec(3),), 0),
    ("augmented", P.augmented, (vec(3), vec(3)), 0),
    ("augmented-y", P.augmented, (vec(3), vec(3)), 1),
    ("unpacking", P.unpacking, (vec(2),), 0),
    ("conditional_expression+", P.conditional_expression, (0.3, 1.0), 0),
    ("conditional_expression-", P.conditional_expression, (0.3, -1.0), 0),
    ("branches-if", P.branches, (0.7, 2.0), 0),
    ("branches-if-a", P.branches, (0.7, 2.0), 1),
    ("branches-elif", P.branches, (0.7, -2.0), 0),
    ("branches-else", P.branches, (0.7, 0.0), 0),
    ("branch_on_value+", P.branch_on_value, (np.abs(vec(3)),), 0),
    ("branch_on_value-", P.branch_on_value, (-np.abs(vec(3)),), 0),
    ("loop_range", P.loop_range, (0.3, 4), 0),
    ("loop_range_step", P.loop_range_step, (vec(3),), 0),
    ("loop_rows", P.loop_rows, (vec((3, 4)),), 0),
    ("loop_list", P.loop_list, (vec(3),), 0),
    ("loop_enumerate_zip", P.loop_enumerate_zip, (vec((3, 2)), vec((3, 2))), 0),
    ("loop_enumerate_zip-y", P.loop_enumerate_zip, (vec((3, 2)), vec((3, 2))), 1),
    ("loop_reversed", P.loop_reversed, (vec(5),), 0),
    ("loop_while", P.loop_while, (vec(3),), 0),
    ("loop_break_continue", P.loop_break_continue, (vec(3, 0.2),), 0),
    ("nested_loops", P.nested_loops, (vec(4),), 0),
    ("early_return+", P.early_return, (np.abs(vec(3)),), 0),
    ("early_return-", P.early_return, (-np.abs(vec(3)),), 0),
    ("return_in_loop", P.return_in_loop, (np.abs(vec(3)) * 0.3,), 0),
    ("return_in_loop-never", P.return_in_loop, (-np.abs(vec(3)),), 0),
    ("try_except-try", P.try_except, (2.0,), 0),
    ("try_except-except", P.try_except, (4.0,), 0),
    ("try_fallthrough", P.try_fallthrough, (1.7,), 0),
    ("asserting", P.asserting, (vec(3),), 0),
    ("inplace_fill", P.inplace_fill, (vec(3),), 0),
    ("inplace_slices", P.inplace_slices, (vec(4),), 0),
    ("inplace_recurrence-x0", P.inplace_recurrence, (0.4, 1.2), 0),
    ("inplace_recurrence-a", P.inplace_recurrence, (0.4, 1.2), 1),
    ("inplace_matrix", P.inplace_matrix, (vec((3, 3)),), 0),
    ("containers", P.containers, (0.5,), 0),
    ("runtime_list", P.runtime_list, (vec(3), 4), 0),
    ("list_comprehension", P.list_comprehension, (0.8,), 0),
    ("calls", P.calls, (0.4,), 0),
    ("power", P.power, (0.9, 3), 0),
    ("closures-x", P.closures, (0.5, 1.5), 0),
    ("closures-c", P.closures, (0.5, 1.5), 1),
    ("returns_function", P.returns_function, (vec(2),), 0),
    ("higher_order", P.higher_order, (0.7,), 0),
    ("partial_call", P.partial_call, (0.7,), 0),
    ("partial_helper", P.partial_helper, (0.3,), 0),
    ("lambda_one_line_0", P.lambda_one_line[0], (0.3,), 0),
    ("lambda_one_line_1", P.lambda_one_line[1], (0.3,), 0),
    ("self_operand", P.self_operand, (vec(3),), 0),
    ("rebound_iterable", P.rebound_iterable, (vec(3),), 0),
    ("rebound_zip", P.rebound_zip, (vec(3), vec(3)), 0),
    ("rebound_zip-y", P.rebound_zip, (vec(3), vec(3)), 1),
    ("nested_jumps-break", P.nested_jumps, (0.9,), 0),
    ("nested_jumps-continue", P.nested_jumps, (0.3,), 0),
    ("nested_jumps-return", P.nested_jumps, (50.0,), 0),
    ("nested_jumps-none", P.nested_jumps, (-1.0,), 0),
    ("return_in_elif", P.return_in_elif, (0.3,), 0),
    ("view_then_write", P.view_then_write, (vec(3),), 0),
    ("broadcast_inactive", P.broadcast_inactive, (vec(3), vec((3, 2))), 0),
]


def zero_like(a):
    return np.zeros_like(a) if isinstance(a, np.ndarray) else 0.0 * a


def finite_difference(f, args, i, t, h=1e-6):
    up = list(args)
    dn = list(args)
    up[i] = args[i] + h * t
    dn[i] = args[i] - h * t
    return (np.asarray(f(*up)) - np.asarray(f(*dn))) / (2 * h)


@pytest.mark.parametrize("name,f,args,i", CASES, ids=[c[0] for c in CASES])
def test_jvp_against_finite_differences(name, f, args, i):
    t = rng.normal(size=np.shape(args[i])) if np.ndim(args[i]) else 0.7
    tangents = tuple(t if j == i else zero_like(a) for j, a in enumerate(args))
    y, y_dot = ad.jvp(f, args, tangents)
    np.testing.assert_allclose(y, f(*args), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(y_dot, finite_difference(f, args, i, t), rtol=1e-6, atol=1e-7)


def test_stop_gradient_cuts_the_derivative():
    x = 0.8
    _, t = ad.jvp(P.stop, (x,), (1.0,))
    assert t == pytest.approx(x)  # d/dx [x * sg(x) + sg(sin x)] = sg(x)


def test_function_writing_its_argument_works_on_a_copy():
    x = np.array([1.0, 2.0, 3.0])
    y, t = ad.jvp(P.writes_argument, (x,), (np.ones(3),))
    np.testing.assert_allclose(y, [25.0, 4.0, 9.0])
    np.testing.assert_allclose(t, [0.0, 4.0, 6.0])


def test_pytree_arguments_and_results():
    x, y = 0.3, 0.7
    out, tan = ad.jvp(P.returns_tuple, (x, y), (1.0, 0.0))
    assert out[1]["sum"] == pytest.approx(x + y)
    assert tan[0] == pytest.approx(y)
    assert tan[1]["sum"] == pytest.approx(1.0)
    assert tan[1]["prod"] == pytest.approx(np.cos(x * y) * y)
    params = {"w": 0.5, "b": -0.2}
    out, tan = ad.jvp(P.takes_dict, (params, 1.5), ({"w": 1.0, "b": 0.0}, 0.0))
    assert tan == pytest.approx((1 - np.tanh(0.5 * 1.5 - 0.2) ** 2) * 1.5)
    pt = P.Point(1.0, 2.0)
    out, tan = ad.jvp(P.takes_namedtuple, (pt,), (P.Point(1.0, 0.0),))
    assert tan == pytest.approx(2 * 1.0 + np.sin(2.0))
    out, tan = ad.jvp(P.makes_namedtuple, (0.5,), (1.0,))
    # q = (x, 2x + 1): d/dx [x (2x + 1)] = 4x + 1
    assert tan == pytest.approx(4 * 0.5 + 1)


def test_prints_run_once_per_call(capsys):
    ad.jvp(P.prints, (2.0,), (1.0,))
    assert capsys.readouterr().out.count("value:") == 1

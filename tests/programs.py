"""Test programs: ordinary NumPy functions covering the Python that SPEC section 3 allows.

They live in a file because s2sad reads source. Each is differentiated by the tests and
compared with finite differences (and, for reverse mode, with forward mode).
"""

import functools
from collections import namedtuple

import numpy as np

import s2sad as ad

Point = namedtuple("Point", ["x", "y"])


# ----------------------------------------------------------------- straight line

def straight(x, y):
    a = np.sin(x) * y + np.exp(-x * x)
    b = a / (1.0 + y * y)
    return np.tanh(b) ** 2 - np.log1p(a * a)


def reassign(x):
    x = x * 2.0
    x = np.sin(x) + x
    x = x ** 2
    return x


def augmented(x, y):
    z = x * 1.0
    z += y
    z *= x
    z -= 0.5
    z /= 2.0
    z **= 2
    return z


def unpacking(x):
    a, b = x * 2, np.cos(x)
    (c, d), e = (a, b), a * b
    first, *rest = (a, b, c)
    return first + rest[0] * rest[1] + d * e


def conditional_expression(x, flag):
    y = np.sin(x) if flag > 0 else np.cos(x)
    z = x * 2 if 0 < flag < 3 else x * 3
    return y * z


# ------------------------------------------------------------------ control flow

def branches(x, a):
    if a > 0:
        y = np.sin(x) * a
    elif a < -1:
        y = x * x
    else:
        y = np.cos(x)
    return y


def branch_on_value(x):
    if np.sum(x) > 0:
        y = x * 2.0
    else:
        y = np.exp(x)
    return y


def loop_range(x, n):
    acc = 0.0
    for i in range(n):
        acc = acc + np.sin(x * i)
    return acc


def loop_range_step(x):
    acc = x
    for i in range(10, 2, -3):
        acc = acc * np.cos(acc + i)
    return acc


def loop_rows(X):
    s = 0.0
    for row in X:
        s = s + np.sum(row * row)
    return s


def loop_list(x):
    weights = [0.5, 1.5, -2.0]
    acc = x
    for w in weights:
        acc = np.sin(acc) * w
    return acc


def loop_enumerate_zip(X, Y):
    s = 0.0
    for i, (a, b) in enumerate(zip(X, Y)):
        s = s + i * np.sum(a * b)
    return s


def loop_reversed(x):
    acc = 0.0
    for v in reversed(x):
        acc = acc * 0.5 + v
    return acc


def loop_while(x):
    n = 0
    y = x
    while np.max(np.abs(y)) > 0.1:
        y = y / 2
        n = n + 1
    return y * n


def loop_break_continue(x):
    acc = x
    for i in range(10):
        acc = acc * 1.1
        if i == 3:
            continue
        if np.sum(acc) > 5:
            break
        acc = np.sin(acc)
    return acc


def nested_loops(x):
    acc = 0.0
    for i in range(3):
        for j in range(i, 4):
            if (i + j) % 2 == 0:
                continue
            acc = acc + x[i] * x[j] ** 2
    return acc


def early_return(x):
    if np.sum(x) > 0:
        return x * 2
    return np.exp(x)


def return_in_loop(x):
    for i in range(5):
        x = x * 1.5
        if np.sum(x) > 3:
            return x
    return -x


def try_except(x):
    try:
        if x < 3:
            return 2 * x ** 3
        else:
            raise ValueError
    except ValueError:
        return np.pi * x


def try_fallthrough(x):
    try:
        y = 1.0 / x
    except ZeroDivisionError:
        y = x
    return y * y


def asserting(x):
    assert np.all(x > -10), "x too small"
    return x * 3


# ------------------------------------------------------------- in-place writes

def inplace_fill(x):
    out = np.zeros(3)
    for i in range(3):
        out[i] = x[i] * x[i]
        out[i] += x[0]
    return out


def inplace_slices(x):
    y = x.copy()
    y[1:3] = np.sin(x[0:2])
    y[0] *= 2.0
    y[-1] = y[0] * y[1]
    return y


def inplace_recurrence(x0, a):
    xs = np.zeros(6)
    xs[0] = x0
    for i in range(1, 6):
        xs[i] = xs[i - 1] + 0.1 * (a * np.sin(xs[i - 1]) - xs[i - 1] ** 3)
    return xs


def inplace_matrix(A):
    B = np.zeros((3, 3))
    for i in range(3):
        B[i, :] = A[i] * (i + 1)
        B[:, i] += A[:, i] * 0.5
    return B


def writes_argument(x):
    x[0] = 5.0
    return x * x


# ------------------------------------------------------------------ containers

def containers(x):
    d = {'a': x, 'b': (x * 2, x * 3)}
    t = d['b']
    p, q = t
    lst = [p, q]
    m = []
    for v in lst:
        m.append(v * x)
    return m[0] + m[1] + d['a']


def returns_tuple(x, y):
    return x * y, {'sum': x + y, 'prod': np.sin(x * y)}


def takes_dict(params, x):
    return np.tanh(params['w'] * x + params['b'])


def takes_namedtuple(pt):
    return pt.x ** 2 + np.sin(pt.y) * pt.x


def makes_namedtuple(x):
    p = Point(x, x * 2)
    q = p._replace(y=p.y + 1)
    return q.x * q.y


def runtime_list(x, n):
    acc = []
    for i in range(n):
        acc.append(x * i)
    total = 0.0
    while len(acc) > 0:
        total = total + acc.pop()
    return total


def list_comprehension(x):
    ys = [np.sin(x * k) for k in range(4) if k != 2]
    return ys[0] + ys[1] * ys[2]


# ------------------------------------------------------------- calls, closures

def helper(a, b=2.0):
    return a * b + np.sin(a)


def calls(x):
    return helper(x) + helper(x, b=3.0) + helper(b=x, a=1.0)


def power(x, n):
    if n == 0:
        return x * 0.0 + 1.0
    return x * power(x, n - 1)


def closures(x, c):
    g = lambda t: t * c + x
    def h(u):
        return g(u) * x
    return h(x) + g(2.0)


def make_scaler(s):
    def scale(v):
        return v * s
    return scale


def returns_function(x):
    f = make_scaler(x)
    return f(3.0) + f(x)


def apply_twice(f, x):
    return f(f(x))


def higher_order(x):
    return apply_twice(lambda v: np.sin(v) * x, x)


def partial_call(x):
    h = functools.partial(helper, b=x)
    return h(x * 2)


def stop(x):
    return x * ad.stop_gradient(x) + ad.stop_gradient(np.sin(x))


def prints(x):
    print("value:", x)
    return x * 2


partial_helper = functools.partial(helper, b=5.0)
lambda_one_line = (lambda x: x * 2.0, lambda x: np.sin(x) + 1.0)


# ------------------------------------------------ regressions (found 2026-12-02)

def self_operand(x):
    y = 2.0 * x
    x = x + x           # the old x is both operands of the op that rebinds it
    x = x * y
    return np.sum(x + x)


def rebound_iterable(x):
    for r in x:         # Python iterates over the array x had when the loop started
        x = x * r
    return np.sum(x)


def rebound_zip(x, y):
    for i, (r, s) in enumerate(zip(x, y)):
        x = x * r + s
        y = y[::-1] * 1.5
    return np.sum(x)


def nested_jumps(x):
    s = 0.0
    for i in range(4):
        if i > 0:
            if s > 1.0:
                break
            elif s > 0.5:
                continue
        s = s + x * i
        if s > 100.0:
            if x > 0:
                return s * 5.0
        s = s * 1.1
    return s


def return_in_elif(x):
    if x > 10.0:
        pass
    elif x < 10.0:
        return x * 2.0
    return x * 3.0


def view_then_write(x):
    buf = np.zeros((2, 3))
    for i in range(2):
        if i == 0:
            m = buf.reshape(3, 2)      # a view of buf, saved, then buf is written
        else:
            m = np.ones((3, 2)) * np.sum(x)
        buf[i] += np.matmul(m, np.sum(x) * np.array([0.5, 0.5]))
    return np.sum(buf)


C23 = np.array([[0.5, -1.0, 0.25], [1.5, 0.75, -0.5]])


def broadcast_inactive(a, Y):
    return np.sum(a[:, None] - Y) + np.sum(np.sin(a)[:, None] * 0.5 + C23.T)

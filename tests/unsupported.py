"""Valid Python that s2sad does not transform: each must raise TransformError at its line."""

import numpy as np

G = 1.0


def uses_class(x):
    class Box:  # LINE: class
        pass
    return x


def uses_with(x):
    with open("/dev/null"):  # LINE: with
        return x


def uses_global(x):
    global G  # LINE: global
    G = x
    return x


def uses_nonlocal(x):
    y = x
    def inner():
        nonlocal y  # LINE: nonlocal
        y = 2.0
    inner()
    return y


def uses_varargs(x):
    def f(*args):  # LINE: varargs
        return args[0]
    return f(x)


def uses_unknown_c(x):
    return np.fft.fft(x)  # LINE: unknown


def uses_del(x):
    y = x
    del y  # LINE: del
    return x


def yields(x):
    yield x


def attribute_write(x):
    x.foo = 1  # LINE: attribute
    return x


def mixed_kinds(x, flag):
    if flag > 0:  # LINE: mixed
        y = (x, x)
    else:
        y = x
    return y

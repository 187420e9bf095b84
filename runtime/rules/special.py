"""scipy.special: expit, logit, logsumexp, erf, gammaln (with digamma, polygamma), xlogy,
xlog1py. Spellings ``scipy.special.<name>``; none of them is available inside Numba."""

import numpy as np
import scipy.special

from s2sad.runtime.domains import Domain, const, pos, real
from s2sad.runtime.registry import register


def _open_unit(*shape):
    """Inside (0.1, 0.9): logit."""
    def fn(rng, c):
        x = rng.uniform(0.1, 0.9, shape)
        return x if shape else float(x)
    return Domain(fn, f"open_unit{shape}")


def _special(name, params=("x",), **kw):
    fn = getattr(scipy.special, name)
    return register(f"scipy.special.{name}", fn, spelling=f"scipy.special.{name}", params=params,
                    numba=False, **kw)


expit = _special("expit", elementwise=True, complex=False, doc="logistic sigmoid 1 / (1 + exp(-x))")
expit.example("scipy.special.expit(x)", x=real(3, 4)).example("scipy.special.expit(x)", x=real()) \
    .example("scipy.special.expit(x)", x=real(5, lo=-30.0, hi=30.0))


@expit.defjvp
def _(out, x, x_dot):
    return out * (1 - out) * x_dot


logit = _special("logit", elementwise=True, complex=False, doc="log(p / (1 - p))")
logit.example("scipy.special.logit(x)", x=_open_unit(3, 4)).example("scipy.special.logit(x)", x=_open_unit())


@logit.defjvp
def _(x, x_dot):
    return x_dot / (x * (1 - x))


# logsumexp(a, axis=None, b=None, keepdims=False); return_sign is not supported.
# d lse = sum(exp(a - lse) * (b * da + db)) over the reduced axes.
logsumexp = _special("logsumexp", params=("a", "axis", "b", "keepdims"),
                     defaults={"axis": None, "b": None, "keepdims": False},
                     doc="log(sum(b * exp(a))) (return_sign is not supported)")
logsumexp.example("scipy.special.logsumexp(a)", a=real(3, 4)) \
    .example("scipy.special.logsumexp(a, axis=1)", a=real(3, 4)) \
    .example("scipy.special.logsumexp(a, 0, keepdims=True)", a=real(3, 4)) \
    .example("scipy.special.logsumexp(a, axis=-1, b=b)", a=real(2, 3), b=pos(3)) \
    .example("scipy.special.logsumexp(a, b=b)", a=real(4), b=const(np.array([0.5, 1.0, 2.0, 3.0]))) \
    .example("scipy.special.logsumexp(a, axis=(0, 2))", a=real(2, 3, 2)) \
    .example("scipy.special.logsumexp(a)", a=real(4, lo=-800.0, hi=-790.0), complex=False) \
    .example("scipy.special.logsumexp(a)", a=real())


@logsumexp.defjvp
def _(a, a_dot, b_dot, axis=None, b=1.0, keepdims=False):
    # `b` not passed: the keyword is dropped from the call and b is 1.0 in the products.
    w = np.exp(a - scipy.special.logsumexp(a, axis=axis, b=b, keepdims=True))
    return np.sum(w * (b * a_dot + b_dot), axis=axis, keepdims=keepdims)


erf = _special("erf", elementwise=True, doc="error function")
erf.example("scipy.special.erf(x)", x=real(3, 4)).example("scipy.special.erf(x)", x=real())


@erf.defjvp
def _(x, x_dot):
    return 1.1283791670955126 * np.exp(-(x * x)) * x_dot  # 2 / sqrt(pi)


erfc = _special("erfc", elementwise=True, doc="1 - erf(x)")
erfc.example("scipy.special.erfc(x)", x=real(3, 4))


@erfc.defjvp
def _(x, x_dot):
    return -1.1283791670955126 * np.exp(-(x * x)) * x_dot


polygamma = _special("polygamma", params=("n", "x"), elementwise=True, complex=False,
                     doc="the n-th derivative of digamma (n an integer, not differentiated)")
polygamma.example("scipy.special.polygamma(1, x)", x=pos(3, 4)).example("scipy.special.polygamma(2, x)", x=pos())


@polygamma.defjvp
def _(n, x, x_dot):
    return scipy.special.polygamma(n + 1, x) * x_dot


digamma = _special("digamma", elementwise=True, complex=False, doc="psi(x), derivative of gammaln")
digamma.example("scipy.special.digamma(x)", x=pos(3, 4)).example("scipy.special.digamma(x)", x=pos())


@digamma.defjvp
def _(x, x_dot):
    return scipy.special.polygamma(1, x) * x_dot


gammaln = _special("gammaln", elementwise=True, complex=False, doc="log|Gamma(x)|")
gammaln.example("scipy.special.gammaln(x)", x=pos(3, 4)).example("scipy.special.gammaln(x)", x=pos()) \
    .example("scipy.special.gammaln(x)", x=Domain(lambda rng, c: -0.5 - rng.uniform(0.1, 0.3, 3), "negative"))


@gammaln.defjvp
def _(x, x_dot):
    return scipy.special.digamma(x) * x_dot


# JAX's xlogy/xlog1py JVPs: x_dot log(y) + y_dot x / y (no special case at x == 0).
xlogy = _special("xlogy", params=("x", "y"), elementwise=True, doc="x * log(y), 0 where x == 0")
xlogy.example("scipy.special.xlogy(x, y)", x=real(3, 4), y=pos(4)) \
    .example("scipy.special.xlogy(x, y)", x=real(), y=pos())


@xlogy.defjvp
def _(x, y, x_dot, y_dot):
    return x_dot * np.log(y) + y_dot * x / y


xlog1py = _special("xlog1py", params=("x", "y"), elementwise=True, doc="x * log1p(y), 0 where x == 0")
xlog1py.example("scipy.special.xlog1py(x, y)", x=real(3, 4), y=pos(4))


@xlog1py.defjvp
def _(x, y, x_dot, y_dot):
    return x_dot * np.log1p(y) + y_dot * x / (1 + y)

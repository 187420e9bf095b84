"""Complex parts: np.real, np.imag, np.conj (np.conjugate), np.angle.

JAX's conventions: a JVP acts on the real pair (Re z, Im z), so real/imag/conj are linear
(over the reals) and their tangents are real/imag/conj of the input tangent. The
transposes are taken under JAX's bilinear pairing <u, v> = Re(sum(u * v)) (no
conjugation): real -> ct, imag -> -1j * ct (as complex cotangents of a complex input; real
ones, zero for imag, of a real input), conj -> conj(ct). The
attribute and method spellings ``x.real``, ``x.imag``, ``x.conj()``, ``x.conjugate()`` are
mapped onto these functions by `transforms.specialize`.
"""

import numpy as np

from s2sad.runtime.domains import Domain, real
from s2sad.runtime.helpers import unbroadcast
from s2sad.runtime.registry import register

real_ = register("real", np.real, spelling="np.real", params=("val",), elementwise=True,
                 linear=("val",), doc="real part (x.real)")
real_.example("np.real(x)", x=real(3, 4)).example("np.real(x)", x=real()) \
    .example("x.real", x=real(2, 3))


@real_.defjvp
def _(val, val_dot):
    return np.real(val_dot)


@real_.deftranspose("val")
def _(ct, val):
    # <Re v, w> = Re(sum(v * w)) for real w
    return unbroadcast(ct, val)



imag = register("imag", np.imag, spelling="np.imag", params=("val",), elementwise=True,
                linear=("val",), doc="imaginary part (x.imag); zero for real input")
imag.example("np.imag(x)", x=real(3, 4)).example("np.imag(x)", x=real()) \
    .example("x.imag", x=real(2, 3))


@imag.defjvp
def _(val, val_dot):
    return np.imag(val_dot)


@imag.deftranspose("val")
def _(ct, val):
    # <Im v, w> = Re(sum(v * (-1j * w))) for real w
    return unbroadcast(-1j * ct, val)



# np.conj is np.conjugate (one ufunc object), so one registration covers both spellings.
conj = register("conj", np.conj, spelling="np.conj", params=("x",), elementwise=True,
                linear=("x",), doc="complex conjugate (x.conj(), np.conjugate)")
conj.example("np.conj(x)", x=real(3, 4)).example("np.conj(x)", x=real()) \
    .example("np.conjugate(x)", x=real(4)).example("x.conj()", x=real(2, 3)) \
    .example("np.conj(x) * x", x=real(3))


@conj.defjvp
def _(x, x_dot):
    return np.conj(x_dot)


@conj.deftranspose("x")
def _(ct, x):
    # <conj(v), w> = Re(sum(v * conj(w)))
    return unbroadcast(np.conj(ct), x)



def _away_from_origin(*shape):
    """Complex values with |z| >= 0.5 and real values of either sign but away from 0
    (np.angle is discontinuous at the origin and, for real input, piecewise constant)."""
    def fn(rng, c):
        r = rng.uniform(0.5, 2.0, shape)
        if c:
            t = rng.uniform(-2.8, 2.8, shape)  # keep clear of the branch cut at +-pi
            x = r * np.exp(1j * t)
        else:
            x = r * rng.choice([-1.0, 1.0], shape)
        return x if shape else (complex(x) if c else float(x))
    return Domain(fn, f"away_from_origin{shape}")


angle = register("angle", np.angle, spelling="np.angle", params=("z", "deg"),
                 defaults={"deg": False}, elementwise=True,
                 doc="argument of a complex number; derivative Im(conj(z) dz) / |z|^2")
angle.example("np.angle(z)", z=_away_from_origin(3, 2)).example("np.angle(z)", z=_away_from_origin()) \
    .example("np.angle(z, deg=True)", z=_away_from_origin(4)) \
    .example("np.angle(z, True)", z=_away_from_origin(4))

# d angle = Im(conj(z) dz) / |z|^2 (zero for real z), times 180/pi with deg=True.
assert abs(56.29577951308232 - (180.0 / np.pi - 1.0)) < 1e-12


@angle.defjvp
def _(z, z_dot, deg=False):
    scale = 1.0 + deg * 56.29577951308232  # 180/pi - 1; folds to 1.0 when deg is not passed
    return np.imag(np.conj(z) * z_dot) / np.real(np.conj(z) * z) * scale

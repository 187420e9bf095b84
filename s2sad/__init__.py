"""s2sad: source-to-source automatic differentiation for NumPy code.

    import s2sad as ad
    ad.jvp(f, (x,), (t,)); ad.jacfwd(f)(x); print(ad.source(ad.jacfwd(f)))
"""

from s2sad.errors import JitError, TransformError
from s2sad.runtime import pytree as tree_util
from s2sad.runtime.custom import custom_jvp, custom_vjp
from s2sad.runtime.loops import fori_loop, while_loop
from s2sad.api import (checkpoint, grad, hessian, jacfwd, jacrev, jit, jvp, linearize, source,
                       stop_gradient, value_and_grad, vjp, vmap)

__version__ = "0.1.0"

__all__ = [
    "grad", "value_and_grad", "jvp", "vjp", "linearize", "jacfwd", "jacrev", "hessian", "vmap",
    "jit", "stop_gradient", "custom_jvp", "custom_vjp", "while_loop", "fori_loop", "checkpoint",
    "source", "tree_util", "TransformError", "JitError",
]

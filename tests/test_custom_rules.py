"""Mistakes in custom rules get clear errors naming the user's file and line."""

import pytest

import s2sad as ad

import custom_error_cases as E


def test_a_nonlinear_tangent_in_a_custom_jvp_rule_is_an_error_in_reverse_mode():
    # forward mode just runs the rule; reverse mode must transpose it
    _, t = ad.jvp(E.squared_tangent, (1.0,), (2.0,))
    assert t == pytest.approx(0.5403023058681398 * 4.0)
    with pytest.raises(ad.TransformError, match=r"custom_error_cases\.py:17: in squared_tangent_jvp: .*not linear"):
        ad.grad(E.squared_tangent)(1.0)


def test_bwd_must_return_one_cotangent_per_argument():
    with pytest.raises(TypeError, match="one cotangent per differentiable argument: 2 expected, 1"):
        ad.grad(E.two_args)(1.0, 2.0)


def test_missing_rules():
    with pytest.raises(ad.TransformError, match="no JVP rule"):
        ad.jvp(E.no_rule, (1.0,), (1.0,))
    with pytest.raises(ad.TransformError, match="no VJP rule"):
        ad.grad(E.no_vjp_rule)(1.0)
    with pytest.raises(TypeError, match="can't apply forward-mode autodiff"):
        ad.jvp(E.no_vjp_rule, (1.0,), (1.0,))


def test_a_number_passed_to_a_custom_vjp_function_gets_a_cotangent_slot():
    # regression: a literal for a differentiable argument had no leaf to pair with bwd's
    # cotangent, and grad raised a structure error
    import numpy as np
    import test_seeds_custom as S
    g = ad.grad(lambda x: S.f_tldr_vjp(x, 3.0))(0.7)
    assert g == pytest.approx(3.0 * np.cos(0.7), rel=1e-14)

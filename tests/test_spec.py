"""SDE specification: validation errors name the argument and what was expected."""
import pytest
import sympy as sp

import symscore as ss

x1, x2, t, a = sp.symbols("x1 x2 t a")


def test_valid_spec_dimensions_and_scalar_diffusion():
    sde = ss.SDE([-x1, -x2 + a], 2, [x1, x2], t, params={"a": 0.5}, name="ok")
    assert (sde.m, sde.d) == (2, 2)
    assert sde.diffusion == 2 * sp.eye(2)
    assert sde.bound_drift()[1] == -x2 + sp.Float(0.5)


def test_rectangular_diffusion_sets_d():
    sde = ss.SDE([-x1, x1 - x2], sp.Matrix([[1], [0]]), [x1, x2], t)
    assert (sde.m, sde.d) == (2, 1)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(drift=[-x1]), r"drift: expected 2 expressions"),
        (dict(diffusion=sp.Matrix([[1, 0, 0]])), r"diffusion: expected an m x d matrix with m = 2 rows"),
        (dict(drift=[-a * x1, -x2]), r"unbound symbols a"),
        (dict(params={"a": "big"}), r"params\['a'\]: expected a real number"),
        (dict(params={"a": float("nan")}), r"params\['a'\]: expected a finite number"),
        (dict(state=[x1, x1]), r"state: symbols must be distinct"),
        (dict(state=[x1, 2]), r"state: every entry must be a SymPy Symbol"),
        (dict(time=1), r"time: expected a SymPy Symbol"),
        (dict(drift=["-x1", "-x2"]), r"drift\[0\]: expected a SymPy expression, got the string"),
        (dict(name=""), r"name: expected a non-empty string"),
        (dict(T=0), r"T: expected a positive finite time horizon"),
        (dict(drift=[sp.Function("f")(x1), -x2]), r"undefined function f"),
    ],
)
def test_bad_spec_is_rejected_with_a_named_argument(kwargs, match):
    args = dict(drift=[-x1, -x2], diffusion=1, state=[x1, x2], time=t, params=None)
    args.update(kwargs)
    with pytest.raises(ss.SDESpecError, match=match):
        ss.SDE(**args)


def test_errors_are_value_errors():
    with pytest.raises(ValueError):
        ss.SDE([-x1], 1, [x1, x2], t)


def test_fingerprint_changes_with_parameters_only_when_they_change():
    f = lambda v: ss.SDE([-a * x1], 1, [x1], t, params={"a": v}).fingerprint()  # noqa: E731
    assert f(1.0) == f(1.0) and f(1.0) != f(2.0)

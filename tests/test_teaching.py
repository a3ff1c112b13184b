"""Teaching output: every step of the derivation for the user's SDE, closed forms of linear SDEs
(checked numerically against the RK4 moments), small-t orders, and LaTeX that compiles."""
import shutil
import subprocess

import numpy as np
import pytest
import sympy as sp

import symscore as ss
from symscore.symbolic.closed_form import small_t_order
from symscore.learn.linear_moments import LinearMoments

from conftest import coupled_2d, linear_coupled

x1, x2, t = sp.symbols("x1 x2 t")

STEP_TITLES = ["The SDE", "Jacobian of the drift", "Hessian of the drift (non-zero entries)", "First variation",
               "Second variation", "Malliavin derivative of $X_t$", "Malliavin matrix", "Covering field and the score",
               "Skorokhod integral by the product rule", "Malliavin derivative of the first variation",
               "Running integrals", "The weight and the target"]


@pytest.fixture(scope="module")
def closed_forms():
    lib = ss.library
    return {name: factory().derive() for name, factory in
            {"vp": lib.vp, "subvp": lib.subvp, "ve": lib.ve, "ou": lambda: lib.ou(mu=0.5),
             "linear_coupled": linear_coupled}.items()}


def test_every_step_appears_with_the_users_expressions():
    der = coupled_2d().derive()
    assert [title for title, _ in der.steps] == STEP_TITLES
    md = der.to_markdown()
    for needle in [
        "- \\frac{x_{1} x_{2}^{2}}{2}",                                   # the drift itself
        "H_{1;12} = \\frac{\\partial^2 b_{1}}{\\partial x_{1}\\,\\partial x_{2}} = - x_{2}",  # a Hessian entry
        "H_{2;11} = \\frac{\\partial^2 b_{2}}{\\partial x_{1}\\,\\partial x_{1}}",
        "\\frac{d}{dt} Y_t = J(t, X_t)\\, Y_t = \\left[\\begin{matrix}- \\frac{x_{2}^{2}}{2} - 1",  # J substituted
        "\\frac{d}{d t} Z_{2;11}{\\left(t \\right)}",                      # an explicit second-variation equation
        "D_r X_t = Y_t\\, Y_r^{-1} \\sigma(r)",
        "\\gamma_t = \\int_0^t D_r X_t\\, (D_r X_t)^\\top dr = Y_t C_t Y_t^\\top",
        "u(r) = \\gamma_t^{-1} D_r X_t",
        "M_t = \\int_0^t A_r\\, dB_r",
        "D^l_r Y_s = Y_s\\, (\\hat Z_s - \\hat Z_r)[A_r e_l,\\ \\cdot\\,]",
        "\\delta_t = Y_t^{-\\top}\\left(C_t^{-1} M_t + v - C_t^{-1} \\rho\\right)",
        "\\sqrt{r + 1}",                                                  # sigma(r) substituted in A_r
    ]:
        assert needle in md, needle
    assert "Closed form" not in md  # nonlinear: no linear sections


def test_separable_derivation_uses_the_one_dimensional_form():
    md = ss.library.cubic().derive().to_markdown()
    assert "H_{1;11} = \\frac{\\partial^2 b_{1}}{\\partial x_{1}\\,\\partial x_{1}} = - 6 x_{1}" in md
    # cubic has a parameter s: the integration time is s' (index_letters)
    assert "\\hat Z^{(1)}_t = \\int_0^t - 6 X^{1}_{s'}\\, Y^{(1)}_{s'}\\, d{s'}" in md
    assert "\\frac{2}{C_t} D_t" in md


@pytest.mark.parametrize("name, gamma", [
    ("vp", lambda t: 1 - np.exp(-(0.1 * t + 19.9 * t**2 / 2))),
    ("subvp", lambda t: (1 - np.exp(-(0.1 * t + 19.9 * t**2 / 2))) ** 2),
    ("ve", lambda t: 0.01**2 * ((50 / 0.01) ** (2 * t) - 1)),
    ("ou", lambda t: 2 * (1 - np.exp(-2 * t)) / 2),
])
def test_closed_form_gamma_of_the_library(closed_forms, name, gamma):
    closed = closed_forms[name].closed_form
    values = {s: v for s, v in zip(sorted(closed.gamma.free_symbols, key=str), [])}
    params = {sp.Symbol(k.name, positive=True): v for k, v in closed_forms[name].sde.params.items()}
    params |= {sp.Symbol(k.name, negative=True): v for k, v in closed_forms[name].sde.params.items()}
    for time in (0.05, 0.3, 1.0):
        value = closed.gamma.subs(params | values | {closed.time: time}).evalf()
        assert np.allclose(np.array(value, dtype=float), gamma(time) * np.eye(2), rtol=1e-10)


@pytest.mark.parametrize("name", ["vp", "subvp", "ve", "ou", "linear_coupled"])
def test_closed_form_matches_rk4_moments(closed_forms, name):
    """gamma_t and E[X_t | X_0] from SymPy against the RK4 moment equations (independent code)."""
    der = closed_forms[name]
    closed = der.closed_form
    params = {sp.Symbol(k.name, **({"positive": True} if v > 0 else {"negative": True})): v
              for k, v in der.sde.params.items() if v != 0}
    x0 = np.array([0.7, -1.3])
    phi, offset, cov = LinearMoments(der.sde)([0.4])
    values = params | {closed.time: 0.4} | dict(zip(closed.x0, x0))
    gamma = np.array(closed.gamma.subs(values).evalf(), dtype=float)
    mean = np.array(closed.mean.subs(values).evalf(), dtype=float).ravel()
    assert np.allclose(gamma, cov[0], rtol=1e-8, atol=1e-12)
    assert np.allclose(mean, phi[0] @ x0 + offset[0], rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("name, order, text", [
    ("vp", -1, "O(1/t)"), ("subvp", -2, "O(1/t^2)"), ("ve", -1, "O(1/t)"), ("ou", -1, "O(1/t)"),
    ("linear_coupled", -1, "O(1/t)"),
])
def test_small_t_order_is_in_the_markdown(closed_forms, name, order, text):
    der = closed_forms[name]
    assert der.closed_form.order == order
    md = der.to_markdown()
    assert f"({text} as t -> 0)" in md
    assert "the denoising score matching target" in md


def test_small_t_order_of_a_degenerate_noise():
    """Integrated Brownian motion (d = 1 < m = 2): gamma = [[t^3/3, t^2/2], [t^2/2, t]], inverse O(1/t^3)."""
    gamma = sp.Matrix([[t**3 / 3, t**2 / 2], [t**2 / 2, t]])
    order, leading = small_t_order(gamma, t)
    assert order == -3 and leading == sp.Matrix([[12, 0], [0, 0]])
    closed = ss.SDE([x2, 0], sp.Matrix([[0], [1]]), [x1, x2], t, name="ibm").derive().closed_form
    assert sp.simplify(closed.gamma - gamma.subs(t, closed.time)) == sp.zeros(2, 2)
    assert closed.order == -3


def test_no_closed_form_is_said_plainly():
    """B(t) = [[0, t], [-1, 0]] does not commute with itself at other times."""
    der = ss.SDE([t * x2, -x1], 1, [x1, x2], t, name="noncommuting").derive()
    assert der.closed_form is None
    assert "SymPy found no closed form" in der.to_markdown()


def test_large_dimension_lists_entries_instead_of_matrices():
    md = ss.library.cubic(m=14).derive().to_markdown()
    assert "\\begin{matrix}" not in md.split("## 2.")[1].split("## 3.")[0]  # the 14 x 14 Jacobian is listed
    assert "J_{1,1} = - 3 x_{1}^{2}" in md and "J_{12,12} = - 3 x_{12}^{2}" in md and "(\\text{2 more})" in md
    assert "H_{10;10,10} = " in md and "and 2 more" in md


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex is not installed")
@pytest.mark.parametrize("factory", [coupled_2d, ss.library.cubic, ss.library.vp, ss.library.subvp,
                                     lambda: ss.library.cubic(m=10), linear_coupled],
                         ids=["coupled2d", "cubic", "vp", "subvp", "cubic10", "linear_coupled"])
def test_latex_document_compiles(tmp_path, factory):
    (tmp_path / "derivation.tex").write_text(factory().derive().to_latex())
    result = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "derivation.tex"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-2000:]
    assert (tmp_path / "derivation.pdf").stat().st_size > 1000

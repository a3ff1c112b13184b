"""Derivation: Jacobian, Hessian, structure classes, sparsity, variation equations, text output."""
import numpy as np
import sympy as sp

import symscore as ss
from conftest import coupled_2d

x1, x2, t = sp.symbols("x1 x2 t")


def test_jacobian_hessian_of_a_coupled_drift():
    sde = ss.SDE([x1**2 * x2, sp.sin(x1)], 1, [x1, x2], t)
    der = sde.derive()
    assert der.jacobian == sp.Matrix([[2 * x1 * x2, x1**2], [sp.cos(x1), 0]])
    assert der.hessian.shape == (2, 2, 2)
    assert der.hessian[0, 0, 1] == 2 * x1 and der.hessian[0, 1, 0] == 2 * x1
    assert der.hessian[1, 0, 0] == -sp.sin(x1) and der.hessian[1, 1, 1] == 0
    assert der.jacobian_sparsity.tolist() == [[True, True], [True, False]]
    assert der.hessian_sparsity.sum() == 4
    assert der.structure == "coupled"


def test_structure_classes_of_the_library():
    lib = ss.library
    assert lib.vp().derive().structure == "linear"
    assert lib.ou().derive().structure == "linear"
    assert lib.ve().derive().structure == "linear"
    assert lib.cubic(m=4).derive().structure == "separable"
    assert lib.cauchy().derive().structure == "separable"
    assert lib.double_well().derive().structure == "separable"
    assert lib.benes(m=1).derive().structure == "separable"
    assert lib.benes(m=2).derive().structure == "coupled"
    # a separable drift with a non-diagonal diffusion is coupled through the noise
    sde = ss.SDE([-x1**3, -x2**3], sp.Matrix([[1, 1], [0, 1]]), [x1, x2], t)
    assert sde.derive().structure == "coupled"


def test_variation_equations_are_sympy_equations():
    der = coupled_2d().derive()
    eq = der.first_variation
    assert isinstance(eq, sp.Eq) and eq.rhs.shape == (2, 2)
    assert all(isinstance(e, sp.Eq) for e in der.second_variation)
    assert len(der.second_variation) == 2 * 3  # i, and a <= b


def test_steps_and_text_output_name_the_hessian_entries():
    der = ss.SDE([-x1**3 + x2, -x2], 1, [x1, x2], t, name="toy").derive()
    titles = [title for title, _ in der.steps]
    assert "Jacobian of the drift" in titles and "The weight and the target" in titles
    md = der.to_markdown()
    assert "H_{1;11} = \\frac{\\partial^2 b_{1}}{\\partial x_{1}\\,\\partial x_{1}} = - 6 x_{1}" in md
    tex = der.to_latex()
    assert tex.startswith("\\documentclass") and tex.rstrip().endswith("\\end{document}")
    assert der._repr_markdown_() == md
    assert der._repr_latex_().startswith("$$\\begin{gathered}")


def test_linear_derivation_states_the_dsm_reduction():
    der = ss.library.vp().derive()
    steps = dict(der.steps)
    assert "X_t - \\mathbb E[X_t \\mid X_0]" in steps["Linear drift: the denoising target"]
    assert "denoising score matching" in der.to_markdown()
    assert np.all(~der.hessian_sparsity)

"""symscore: a symbolic-to-numeric score compiler for diffusion models with nonlinear forward SDEs.

Write the drift b(t, x) and diffusion sigma(t) of dX = b dt + sigma dB in SymPy; symscore derives
the variation processes and the closed-form Malliavin-Bismut score target, and generates kernels
that return, per path and record time, a target whose conditional mean is grad log p_t.

    >>> import sympy as sp, symscore as ss
    >>> x, t = sp.symbols("x t")
    >>> sde = ss.SDE(drift=[-x**3], diffusion=1, state=[x], time=t, name="cubic1d")
    >>> kern = ss.compile(sde)                                       # doctest: +SKIP
    >>> paths = kern.simulate(x0, times=[0.5, 1.0], n_steps=200)     # doctest: +SKIP
"""
from . import data, metrics, plots
from .spec import library
from .compiler.cache import cache_dir
from .symbolic.derivation import Derivation
from ._errors import (
    NonFiniteSimulationError,
    SDESpecError,
    SimulationInputError,
    SingularMalliavinMatrixError,
    SymscoreError,
)
from .compiler.build import compile, emit
from .compiler.variant import Variant
from .compiler.kernel import Kernel, Paths
from .compiler.runtime import brownian_increments
from .compiler.printing import UnsupportedExpressionError
from .spec.sde import SDE
from .spec.parse import load_spec, parse_expression, to_toml
from ._version import __version__

__all__ = [
    "SDE", "load_spec", "parse_expression", "to_toml", "Derivation", "compile", "emit", "Variant", "Kernel", "Paths", "brownian_increments", "library", "cache_dir",
    "ScoreModel", "train", "load_checkpoint", "sample", "log_likelihood", "data", "metrics", "plots", "fields", "truth",
    "Prior", "GaussianPrior", "ProductPrior", "EmpiricalPrior", "make_prior",
    "SymscoreError", "SDESpecError", "SimulationInputError", "SingularMalliavinMatrixError",
    "NonFiniteSimulationError", "UnsupportedExpressionError", "__version__",
]

# The learning layer imports torch (about 180 MB and a second of start-up): its names load on
# first use (PEP 562), so compiling and running numba kernels never imports torch.
_LAZY = {
    "ScoreModel": ".learn.model",
    "Prior": ".learn.priors", "GaussianPrior": ".learn.priors", "ProductPrior": ".learn.priors", "EmpiricalPrior": ".learn.priors",
    "make_prior": ".learn.priors",
    "sample": ".learn.samplers", "log_likelihood": ".learn.samplers",
    "train": ".learn.train", "load_checkpoint": ".learn.train",
}


def __getattr__(name):
    if name in ("fields", "truth"):  # fields: torch-harmonics; truth: the learning layer (torch), on first use too
        import importlib

        module = importlib.import_module(f".{name}", __name__)
        globals()[name] = module
        return module
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'symscore' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY) | {"fields"})

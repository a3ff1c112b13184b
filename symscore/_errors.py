"""Exception types. Every user-facing error names the argument and what was expected.

Pure Python with no imports: emitted kernel modules carry this text verbatim, so a standalone
module raises the same types as the package.
"""


class SymscoreError(ValueError):
    """Base class of symscore's errors (a ValueError, so generic handlers still catch it)."""


class SDESpecError(SymscoreError):
    """The SDE specification is invalid (shape, symbols, parameters, diffusion)."""


class SimulationInputError(SymscoreError):
    """An argument of ``Kernel.simulate`` is invalid (x0, times, n_steps, dW, ...)."""


class SingularMalliavinMatrixError(SymscoreError, FloatingPointError):
    """The Malliavin covariance C_t is singular (or numerically so) on some paths.

    Happens when sigma(t) vanishes, or when d < m and the drift does not couple the
    unforced coordinates to the noise. Tikhonov regularisation (``ridge > 0``) trades
    this for a bias of order ridge / lambda_min(C_t).
    """


class NonFiniteSimulationError(SymscoreError, FloatingPointError):
    """The Euler scheme produced inf/NaN (blow-up: n_steps too small for the drift).

    Both simulation failures are also FloatingPointErrors (what numerical code expects to catch).
    """

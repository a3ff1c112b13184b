"""Shared fixtures: kernels are compiled once per session (numba also caches them on disk)."""
import functools
import importlib.util
import os

# Without a GPU, the triton backend's tests run in Triton's CPU interpreter, which is chosen when a
# kernel is decorated: set before any generated triton module is imported.
if not os.environ.get("SYMSCORE_TEST_CUDA"):
    os.environ.setdefault("TRITON_INTERPRET", "1")

# Under pytest-xdist every worker shares the cores with the others: torch's OpenMP threads spin while
# they wait, and two workers with two threads each made the torch tests up to 20x slower (measured).
# One torch thread per worker (and, through the environment, per process it starts); numba's own
# threads are left as they are.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))

import numpy as np
import pytest
import sympy as sp

import symscore as ss

t = sp.Symbol("t")


def coupled_2d() -> ss.SDE:
    """A coupled nonlinear 2-D drift with a non-diagonal, time-dependent diffusion."""
    x1, x2 = sp.symbols("x1 x2")
    drift = [-x1 - x1 * x2**2 / 2 + sp.sin(x2) / 2, -x2 + sp.tanh(x1)]
    sigma = sp.Matrix([[1, sp.Rational(3, 10)], [0, sp.Rational(4, 5) * sp.sqrt(1 + t)]])
    return ss.SDE(drift, sigma, [x1, x2], t, name="coupled2d")


def coupled_3d() -> ss.SDE:
    """A 3-D coupled cubic drift (docs/math.md, Discretisation), sigma = I."""
    x1, x2, x3 = sp.symbols("x1 x2 x3")
    c = sp.Symbol("c")
    drift = [-x1**3 + c * x2 * x3, -x2**3 + c * sp.sin(x1), -x3**3 - c * x1 * x2]
    return ss.SDE(drift, 1, [x1, x2, x3], t, params={"c": 0.5}, name="coupled3d")


def linear_coupled() -> ss.SDE:
    """A linear drift with a non-normal coupling matrix and a full 2 x 3 ... (m = 2, d = 3) diffusion."""
    x1, x2 = sp.symbols("x1 x2")
    drift = [-x1 + sp.Rational(1, 2) * x2 + 1, -sp.Rational(1, 2) * x1 - 2 * x2 + t]
    sigma = sp.Matrix([[1, 0, sp.Rational(1, 2)], [sp.Rational(1, 4), 1, 0]])
    return ss.SDE(drift, sigma, [x1, x2], t, name="linear_coupled")


#: A TOML spec in the schema of symscore.spec.parse (coupled, nonlinear, time-dependent diffusion).
MINE_TOML = """
name = "mine"
state = ["x", "y"]
time = "t"
params = { a = 0.5 }
drift = ["-x**3 + a*y", "-y - sin(x)"]
diffusion = [["1", "0"], ["0", "sqrt(1 + t)"]]
"""


FACTORIES = {
    "coupled2d": coupled_2d,
    "coupled3d": coupled_3d,
    "linear_coupled": linear_coupled,
    "benes1d": lambda: ss.library.benes(m=1, theta=1.5),
    "benes2d": lambda: ss.library.benes(m=2, theta=1.5),
    "vp2": lambda: ss.library.vp(m=2),
    "ou2": lambda: ss.library.ou(m=2),
    "cubic3": lambda: ss.library.cubic(m=3),
}


def pytest_collection_modifyitems(config, items):
    """Tests marked ``loop_kernel`` go first. pytest-xdist's worksteal scheduler (``make test``) hands
    each worker a contiguous share of the collection and steals from the end of a share, so these
    all run at the start of one worker: the loop-form kernel compiles (about a minute on a cold
    cache) once, while the other worker runs other tests, instead of in both at the same time.
    The load scheduler (``make test-slow``) also sends each worker a contiguous first chunk."""
    items.sort(key=lambda item: item.get_closest_marker("loop_kernel") is None)  # stable


@functools.cache
def get_kernel(name: str, **options) -> ss.Kernel:
    return ss.compile(FACTORIES[name](), **options)


@pytest.fixture(scope="session")
def kernel():
    """kernel(name, **options) -> a compiled numba kernel (options of ss.compile, e.g.
    ``variant=ss.Variant(force_coupled=True)``), shared by the whole session."""
    return get_kernel


#: The backends the per-path comparisons cover: triton where its package is installed (in its
#: CPU interpreter here; with SYMSCORE_TEST_CUDA=1 on a GPU machine, compiled for CUDA).
HAS_TRITON = importlib.util.find_spec("triton") is not None
BACKENDS = ["numba", "torch"] + ["triton"] * HAS_TRITON


@pytest.fixture
def training_clock(monkeypatch):
    """The training loop's clock made to advance 1/64 s per reading (binary fractions keep a budget
    run's planning exact): ``Trainer.run(budget=0.5)`` then takes exactly 32 steps."""
    import symscore.learn.trainer as train_module

    class Clock:
        now = 0.0

        def perf_counter(self):
            self.now += 1 / 64
            return self.now

    monkeypatch.setattr(train_module, "time", Clock())


_ULP_VIEWS = {np.dtype(np.float64): (np.int64, np.uint64), np.dtype(np.float32): (np.int32, np.uint32)}


def ulp_distance(actual, expected) -> np.ndarray:
    """How many representable floats of ``expected``'s dtype (float64 or float32; anything else is
    compared as float64) lie between ``actual`` and ``expected``, elementwise.

    The count comes from the bit patterns: for finite values of one sign it is the difference of the
    magnitudes' integer images, across zero the sum of both distances to zero (so +0 and -0 are 0
    apart). Equal infinities are 0 apart; NaN against NaN is 0, NaN against a number the largest count."""
    expected = np.asarray(expected)
    dtype = expected.dtype if expected.dtype in _ULP_VIEWS else np.dtype(np.float64)
    signed, unsigned = _ULP_VIEWS[dtype]
    a, b = np.broadcast_arrays(np.asarray(actual, dtype=dtype), expected.astype(dtype, copy=False))
    bits_a, bits_b = a.view(signed), b.view(signed)
    mask = unsigned(np.iinfo(signed).max)
    mag_a, mag_b = bits_a.view(unsigned) & mask, bits_b.view(unsigned) & mask
    same_sign = (bits_a < 0) == (bits_b < 0)
    distance = np.where(same_sign, np.maximum(mag_a, mag_b) - np.minimum(mag_a, mag_b), mag_a + mag_b)
    nan_a, nan_b = np.isnan(a), np.isnan(b)
    distance = np.where(nan_a & nan_b, unsigned(0), distance)
    return np.where(nan_a != nan_b, np.iinfo(unsigned).max, distance)


def assert_ulp_close(actual, expected, max_ulps: int, what: str = "") -> None:
    """Fail unless every element of ``actual`` is within ``max_ulps`` units in the last place of
    ``expected`` (:func:`ulp_distance`), with a message giving the worst distance, where it is and
    the two values there. For values two implementations compute from the same inputs with
    different libm-like functions (numpy, numba/LLVM, torch/SLEEF, triton), where bitwise equality
    is not promised; each call states its bound and why."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, f"{what}: shapes differ: {actual.shape} vs {expected.shape}"
    if expected.size == 0:
        return
    distance = ulp_distance(actual, expected)
    worst = np.unravel_index(int(np.argmax(distance)), distance.shape)
    if distance[worst] > max_ulps:
        raise AssertionError(
            f"{what or 'values'}: {int((distance > max_ulps).sum())} of {distance.size} elements differ by more "
            f"than {max_ulps} ulps; worst {int(distance[worst])} ulps at index {tuple(map(int, worst))}: "
            f"actual {actual[worst].item()!r}, expected {expected[worst].item()!r}")


def brownian(n, n_steps, d, T, seed):
    """Increments N(0, T / n_steps) of shape (n, n_steps, d)."""
    return np.random.default_rng(seed).standard_normal((n, n_steps, d)) * np.sqrt(T / n_steps)


def coarsen(dW, factor):
    """Sum consecutive increments: the same Brownian path on a grid `factor` times coarser."""
    n, N, d = dW.shape
    return dW.reshape(n, N // factor, factor, d).sum(axis=2)


def import_file(path):
    """The Python file at ``path`` imported as a module named after it (not added to sys.modules)."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def emitted_module(sde, path, backend: str = "numba"):
    """``ss.emit(sde, backend, path)`` written to ``path`` and imported as a module of that name."""
    ss.emit(sde, backend=backend, path=path)
    return import_file(path)

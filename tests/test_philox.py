"""Counter-based increments: Philox4x32-10 keyed by (seed, global path, step, noise column).

The generator is checked against the Random123 known-answer vectors, its normals for their
moments, law and independence across paths, steps (the cos/sin pairs of one Box-Muller call
included), columns and seeds (each with a tolerance from the standard error, and a deliberately
correlated stream that the same statistics reject), and the kernels for drawing these increments
on every backend and form: bit for bit where the same compiled code runs (any chunk size, thread
count or path offset of one backend), to a stated bound across implementations of log, sqrt, cos
and sin (numpy, numba, torch), which may round differently in the last place.
"""
from __future__ import annotations


import numpy as np
import pytest
from scipy import stats

import symscore as ss
from conftest import assert_ulp_close, emitted_module
from symscore.compiler.runtime import philox4x32, philox_normal

U = np.uint64

# Random123's kat_vectors for philox4x32_10: (counter, key) -> output
KNOWN_ANSWERS = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
]


@pytest.mark.parametrize("counter, key, expected", KNOWN_ANSWERS)
def test_philox_matches_the_random123_known_answers(counter, key, expected):
    assert tuple(int(v) for v in philox4x32(*map(U, counter), *map(U, key))) == expected


def test_the_torch_stream_is_the_numpy_stream_to_4_ulps():
    """Large path indices (> 2^32) and seeds (> 2^32) exercise both words of counter and key. The
    Philox words are integers (equal), but torch's log, cos and sin (SLEEF on the CPU) are not
    numpy's: the normals agree within 4 ulps (log, cos/sin each within 1 ulp, sqrt and the products
    correctly rounded; measured: at most 2)."""
    import torch

    module = ss.compile(ss.library.ou(m=1), backend="torch").module
    rng = np.random.default_rng(0)
    for seed in (0, 7, 2**32 + 5, 2**64 - 1):
        path = rng.integers(0, 2**40, size=200, dtype=np.int64)
        group = rng.integers(0, 2**20, size=200, dtype=np.int64)
        column = rng.integers(0, 300, size=200, dtype=np.int64)
        ours = module.philox_normals4_torch(seed, *(torch.as_tensor(a) for a in (path, group, column))).numpy()
        for phase in range(4):
            expected = philox_normal(U(seed), path.astype(U), group.astype(U) * U(4) + U(phase), column.astype(U))
            assert_ulp_close(ours[:, phase], expected, 4, f"torch vs numpy normals, seed {seed}, phase {phase}")


def _max_correlation(z: np.ndarray) -> tuple[float, float]:
    """Largest |correlation| between neighbours along each axis of z (paths, steps, columns), and
    the tolerance 5 / sqrt(N) (5 standard errors of a correlation estimate under independence)."""
    pairs = [(z[:-1], z[1:]), (z[:, :-1], z[:, 1:]), (z[:, :, :-1], z[:, :, 1:]),
             (z[:, 0::4], z[:, 1::4]), (z[:, 2::4], z[:, 3::4])]  # the cos/sin pairs of one call
    worst, n = 0.0, min(a.size for a, _ in pairs)
    for a, b in pairs:
        worst = max(worst, abs(float(np.corrcoef(a.ravel(), b.ravel())[0, 1])))
    return worst, 5.0 / np.sqrt(n)


def test_the_normals_have_the_law_and_independence_of_brownian_increments():
    z = ss.brownian_increments(11, 2000, 64, 3, 1.0)  # dt = 1: standard normals, 384 000 of them
    n = z.size
    assert abs(z.mean()) < 5 / np.sqrt(n)
    assert abs(z.var() - 1) < 5 * np.sqrt(2 / n)
    assert abs(stats.kurtosis(z.ravel(), fisher=False) - 3) < 5 * np.sqrt(24 / n)
    assert stats.kstest(z.ravel(), "norm").pvalue > 1e-3
    worst, tolerance = _max_correlation(z)
    assert worst < tolerance, (worst, tolerance)
    other_seed = ss.brownian_increments(12, 2000, 64, 3, 1.0)
    assert abs(np.corrcoef(z.ravel(), other_seed.ravel())[0, 1]) < 5 / np.sqrt(n)
    # the same statistics reject a stream that repeats one column in the next (a keying mistake)
    wrong = z.copy()
    wrong[:, :, 1] = wrong[:, :, 0]
    assert _max_correlation(wrong)[0] > 10 * tolerance
    # a path's increments depend on its index only (the same numpy code on both sides: bit for bit)
    np.testing.assert_array_equal(ss.brownian_increments(11, 10, 64, 3, 1.0, path_offset=1990), z[1990:])


@pytest.mark.parametrize("backend, form", [("numba", "auto"), ("torch", "auto"), ("torch", "loop"),
                                           pytest.param("numba", "loop", marks=[pytest.mark.slow, pytest.mark.loop_kernel])])
def test_a_seed_gives_the_same_increments_on_every_backend_form_and_chunking(backend, form):
    sde = ss.library.benes(m=2)
    n, n_steps = 60, 38  # not a multiple of 4: the last Philox group is partial
    x0 = np.random.default_rng(0).normal(size=(n, 2))
    options = {"as_numpy": True} if backend == "torch" else {}
    kernel = ss.compile(sde, backend=backend, form=form)
    shared = kernel.simulate(x0, [0.5, 1.0], n_steps, dW=ss.brownian_increments(5, n, n_steps, 2, 1 / n_steps),
                             **options)
    seeded = kernel.simulate(x0, [0.5, 1.0], n_steps, seed=5, **options)
    chunked = kernel.simulate(x0, [0.5, 1.0], n_steps, seed=5, chunk_size=7, **options)
    offset = kernel.simulate(x0[20:], [0.5, 1.0], n_steps, seed=5, path_offset=20, **options)
    # in-kernel draws against numpy's increments: two implementations of Box-Muller, whose
    # last-place differences flow through 38 steps (4-ulp changes of dW move these targets,
    # |target| < 4, by < 4e-15, measured): to rounding
    np.testing.assert_allclose(seeded.target, shared.target, rtol=1e-12, atol=1e-12)
    # one backend's compiled code on other chunks and offsets: bit for bit
    np.testing.assert_array_equal(chunked.target, seeded.target)
    np.testing.assert_array_equal(offset.target, seeded.target[20:])


def test_numba_and_torch_agree_per_path_with_a_seed_and_for_any_thread_count():
    import numba

    sde = ss.library.benes(m=2)
    x0 = np.random.default_rng(1).normal(size=(200, 2))
    numba_kernel, torch_kernel = ss.compile(sde), ss.compile(sde, backend="torch")
    ours = numba_kernel.simulate(x0, [0.25, 1.0], 100, seed=2**40 + 3)
    theirs = torch_kernel.simulate(x0, [0.25, 1.0], 100, seed=2**40 + 3, as_numpy=True)
    # two implementations (numba's libm calls, torch's vectorised ones) over 100 steps: to rounding
    np.testing.assert_allclose(ours.target, theirs.target, rtol=1e-10, atol=1e-10)
    threads = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        single = numba_kernel.simulate(x0, [0.25, 1.0], 100, seed=2**40 + 3)
    finally:
        numba.set_num_threads(threads)
    np.testing.assert_array_equal(single.target, ours.target)  # the same compiled kernel: bit for bit


def test_the_emitted_module_draws_the_same_increments(tmp_path):
    sde = ss.library.benes(m=2)
    module = emitted_module(sde, tmp_path / "benes_kernel.py")
    x0 = np.random.default_rng(2).normal(size=(30, 2))
    _, _, target = module.simulate(x0, [1.0], 20, seed=9, path_offset=4)
    # the emitted module is the kernel's own source (test_emit_cache), compiled by the same numba:
    # the same compiled code, so bit for bit
    np.testing.assert_array_equal(target, ss.compile(sde).simulate(x0, [1.0], 20, seed=9, path_offset=4).target)


@pytest.mark.parametrize("name, value, message", [
    ("seed", -1, "seed: expected an integer >= 0"),
    ("seed", 2**64, r"seed: expected an integer in \[0, 2\^64\)"),
    ("seed", 1.5, "seed: expected an integer >= 0"),
    ("path_offset", -3, "path_offset: expected an integer >= 0"),
])
def test_bad_seed_or_offset_is_refused_naming_it(name, value, message):
    kernel = ss.compile(ss.library.benes(m=2))
    with pytest.raises(ss.SimulationInputError, match=message):
        kernel.simulate(np.zeros((2, 2)), [1.0], 4, **{name: value})

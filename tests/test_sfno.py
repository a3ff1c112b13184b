"""The spherical Fourier neural operator (symscore.learn.sfno, ``architecture="sfno"``).

The factored grid transforms are checked against the library's (torch-harmonics through
SphericalHarmonics) on random coefficients and random grids, and for their gradients; the network
for the symmetries a stationary field's score has and that the module docstring claims (rotation
about the polar axis by a step of the grid, and the north-south reflection of the Gauss-Legendre
grid), each with a deliberately wrong variant that the same check rejects, and for what its
docstring states (rows independent, unit pixel variance of a white input, the formula without
blocks); the ScoreModel for its zero start at the Gaussian skip, its refusals, its file round trip,
float64 and one short training run.

Every test is small (L <= 4, batches <= 16): the whole file runs in seconds on a CPU.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

import symscore as ss
from symscore.fields import (SphericalHarmonics, coefficient_index, field_data, whittle_matern_sde,
                             whittle_matern_spectrum)
from symscore.learn.sfno import GridTransforms, SphericalFourierNetwork

#: float32 agreement, relative to the largest entry of the reference. The transforms' factors are
#: computed in float64 and rounded once; measured 0.5e-7 to 1.6e-7 for L <= 4 (transforms) and up
#: to 6e-7 (the network of two blocks under a rotation or the reflection), so 1e-5 leaves a factor
#: 15 or more. The wrong variants below miss it by 30 (transforms) and 10^4 or more (network) times.
FLOAT32_BOUND = 1e-5
TIME_FEATURES = 9


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """One torch thread for this module, restored after it: its tensors are tiny, and on cores
    shared with other work two spinning threads made every small matmul wait (the file took 17-24 s
    instead of 7.5 s, measured on 2 busy cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _relative_error(value: torch.Tensor, reference: torch.Tensor) -> float:
    """max |value - reference| / max |reference|, in float64."""
    value, reference = value.double(), reference.double()
    return float((value - reference).abs().max() / reference.abs().max())


def _grids():
    """(L, nlat, nlon): the smallest exact grid and the network's 1.5-times oversampled one."""
    for L in (1, 3, 4):
        for nlat in (L + 1, math.ceil(1.5 * (L + 1))):
            yield L, nlat, 2 * nlat


# -- the grid transforms -----------------------------------------------------------------------------
@pytest.mark.parametrize("L, nlat, nlon", list(_grids()))
def test_grid_transforms_are_the_librarys(L, nlat, nlon):
    """GridTransforms' synthesis and analysis (a Legendre sum per order, then a trigonometric sum
    per latitude, in float32) equal SphericalHarmonics' (torch-harmonics' RealSHT and
    InverseRealSHT in float64) to FLOAT32_BOUND of the largest value: synthesis on random
    coefficients, analysis on random grids (not band-limited: the quadrature projection itself,
    aliasing included, must be the library's). Analysis after synthesis is the identity.

    The wrong variant: the Legendre factor of order +1 scaled by 1.001 in synthesis and in analysis; both
    comparisons must then fail by a factor 10 beyond the bound (the check can fail)."""
    generator = torch.Generator().manual_seed(L * 100 + nlat)
    transforms, library = GridTransforms(L, nlat, nlon), SphericalHarmonics(L, nlat=nlat, nlon=nlon)
    coefficients = torch.randn(16, library.m, generator=generator)
    grid = torch.randn(16, nlat, nlon, generator=generator)
    expected_grid, expected_coefficients = library.synthesis(coefficients.double()), library.analysis(grid.double())

    synthesis, analysis = transforms.synthesis(coefficients), transforms.analysis(grid)
    assert synthesis.shape == (16, nlat, nlon) and analysis.shape == (16, library.m)
    assert synthesis.dtype == analysis.dtype == torch.float32
    assert _relative_error(synthesis, expected_grid) < FLOAT32_BOUND
    assert _relative_error(analysis, expected_coefficients) < FLOAT32_BOUND
    assert _relative_error(transforms.analysis(synthesis), coefficients) < FLOAT32_BOUND

    slot = L + 1  # the slot of order +1 (orders run -L..L)
    with torch.no_grad():
        transforms.legendre[slot] *= 1.001
        transforms.legendre_analysis[slot] *= 1.001
    assert _relative_error(transforms.synthesis(coefficients), expected_grid) > 10 * FLOAT32_BOUND
    assert _relative_error(transforms.analysis(grid), expected_coefficients) > 10 * FLOAT32_BOUND


def test_grid_transform_gradients_in_float64():
    """torch.autograd.gradcheck of synthesis and analysis (L = 2 on the network's 1.5-times grid),
    in float64: ``.double()`` must carry the transforms' buffers (they are not parameters), or
    the float32 factors would fail gradcheck's finite differences."""
    L, nlat = 2, math.ceil(1.5 * 3)
    transforms = GridTransforms(L, nlat, 2 * nlat).double()
    assert transforms.legendre.dtype == transforms.trig_analysis.dtype == torch.float64
    generator = torch.Generator().manual_seed(0)
    coefficients = torch.randn(3, 9, dtype=torch.float64, generator=generator, requires_grad=True)
    grid = torch.randn(3, nlat, 2 * nlat, dtype=torch.float64, generator=generator, requires_grad=True)
    assert torch.autograd.gradcheck(transforms.synthesis, (coefficients,))
    assert torch.autograd.gradcheck(transforms.analysis, (grid,))


# -- the network's symmetries -------------------------------------------------------------------------
def _network(L: int, oversampling: float, seed: int = 0) -> SphericalFourierNetwork:
    """A random network of width 4 and depth 2 whose every part acts: the projection, the linear
    gain and the FiLM layers start at zero, so they are drawn at random here."""
    torch.manual_seed(seed)
    net = SphericalFourierNetwork((L + 1) ** 2, TIME_FEATURES, 4, 2, nn.SiLU, oversampling=oversampling)
    with torch.no_grad():
        net.project.weight.normal_()
        net.linear.weight.normal_(std=0.3)
        net.linear.bias.normal_(std=0.3)
        for block in net.blocks:
            block.film.weight.normal_(std=0.3)
            block.film.bias.normal_(std=0.3)
    return net


def _inputs(L: int, seed: int = 1):
    """(z (16, m), time features (16, 9), a stationary metric: the Whittle-Matern C_l per degree)."""
    generator = torch.Generator().manual_seed(seed)
    degrees = SphericalHarmonics(L).degrees
    metric = torch.as_tensor(whittle_matern_spectrum(L, 1.0, 2.0)[degrees])
    return (torch.randn(16, (L + 1) ** 2, generator=generator), torch.randn(16, TIME_FEATURES, generator=generator),
            metric)


def _coefficient_map(net: SphericalFourierNetwork, grid_map) -> np.ndarray:
    """The (m, m) matrix M of a map of the network's grid onto itself, a_new = M a: synthesis of
    each basis vector on that grid, the map, analysis (SphericalHarmonics, float64)."""
    transforms = net.transforms
    library = SphericalHarmonics(transforms.L, nlat=transforms.nlat, nlon=transforms.nlon)
    return library.analysis(grid_map(library.synthesis(np.eye(library.m)))).T


def _equivariance_error(net, z, embedding, metric, matrix: np.ndarray) -> float:
    """max |F(M z) - M F(z)| relative to max |F(z)| (F is the network, M the coefficient map)."""
    matrix = torch.as_tensor(matrix, dtype=torch.float32)
    with torch.no_grad():
        out = net(z, embedding, metric)
        assert out.abs().max() > 1.0  # the network is not (nearly) zero: the check has something to see
        return _relative_error(net(z @ matrix.T, embedding, metric), out @ matrix.T)


def _rotation(net):
    """One longitude step 2 pi / nlon about the polar axis: a permutation of the grid's columns."""
    return _coefficient_map(net, lambda grid: np.roll(grid, 1, axis=-1))


def _reflection(net):
    """North <-> south: the Gauss-Legendre rows in reverse order."""
    return _coefficient_map(net, lambda grid: np.flip(grid, axis=-2))


def _parity(L: int) -> np.ndarray:
    return np.array([(-1.0) ** (l + m) for l in range(L + 1) for m in range(-l, l + 1)])


class _LatitudeModulatedLift(nn.Module):
    """The lift applied to the input field times 1 + sin(latitude) / 2: the same at every longitude
    (symmetric under rotations about the polar axis), different in the north and in the south."""

    def __init__(self, lift: nn.Module, net: SphericalFourierNetwork):
        super().__init__()
        transforms = net.transforms
        latitude = np.radians(SphericalHarmonics(transforms.L, nlat=transforms.nlat, nlon=transforms.nlon).lat)
        profile = (1 + 0.5 * np.sin(latitude))[:, None, None, None]  # the grid is (nlat, n, 1, nlon) here
        self.lift, self.profile = lift, torch.as_tensor(profile, dtype=torch.float32)

    @property
    def weight(self):  # the network reads its dtype off the lift's weight
        return self.lift.weight

    def forward(self, u):
        return self.lift(u * self.profile)


@pytest.mark.parametrize("L, oversampling", [(2, 1.0), (4, 1.5)])
def test_network_commutes_with_a_rotation_by_one_grid_step(L, oversampling):
    """F(R z) = R F(z) to FLOAT32_BOUND of max |F(z)|, R the rotation about the polar axis by one
    longitude step of the network's grid. On the grid R permutes the columns, which commutes with
    the pointwise layers; the spectral convolution (one matrix per degree) and the per-degree
    colour, projection and linear gain commute with it on coefficients; and an FFT-like sum over
    equally spaced longitudes commutes with the step whatever the degree of the (aliased) products,
    so the equivariance is exact up to rounding, on any grid of the network.

    R is measured, not assumed: synthesis of the basis on the grid, the column roll, analysis. It is
    orthogonal, not the identity, and nlon steps make a full turn.

    The wrong variant: the first block's spectral weights one matrix per (l, m) instead of per l,
    which the module docstring says would break the symmetry, fails by far."""
    net = _network(L, oversampling)
    z, embedding, metric = _inputs(L)
    rotation = _rotation(net)
    m = (L + 1) ** 2
    assert np.abs(rotation @ rotation.T - np.eye(m)).max() < 1e-12
    assert np.abs(rotation - np.eye(m)).max() > 0.1
    assert np.abs(np.linalg.matrix_power(rotation, net.transforms.nlon) - np.eye(m)).max() < 1e-10
    assert _equivariance_error(net, z, embedding, metric, rotation) < FLOAT32_BOUND

    # the wrong variant: a channel mixing that also depends on the order (per coefficient, not per degree)
    spectral = net.blocks[0].spectral
    by_order = torch.randn(2 * L + 1, L + 1, 4, 4) / 2
    spectral.forward = lambda slots: torch.matmul(slots, by_order)
    assert _equivariance_error(net, z, embedding, metric, rotation) > 1e-3


@pytest.mark.parametrize("L, oversampling", [(2, 1.0), (4, 1.5)])
def test_network_commutes_with_the_north_south_reflection(L, oversampling):
    """The Gauss-Legendre latitudes are symmetric about the equator, so reversing the grid's rows is
    the reflection theta -> pi - theta, which maps a_lm to (-1)^(l + m) a_lm (checked on the grid to
    1e-12, and the latitudes checked symmetric). The network commutes with it to FLOAT32_BOUND.

    The wrong variant: the input field weighted by 1 + sin(latitude) / 2 before the lift. It keeps
    the rotation symmetry about the polar axis (it passes the rotation check) and breaks this one
    (it fails here): each check sees its own symmetry."""
    net = _network(L, oversampling)
    z, embedding, metric = _inputs(L)
    transforms = net.transforms
    latitudes = SphericalHarmonics(L, nlat=transforms.nlat, nlon=transforms.nlon).lat
    assert np.abs(latitudes + latitudes[::-1]).max() < 1e-10
    reflection = _reflection(net)
    assert np.abs(reflection - np.diag(_parity(L))).max() < 1e-12
    assert _equivariance_error(net, z, embedding, metric, reflection) < FLOAT32_BOUND

    net.lift = _LatitudeModulatedLift(net.lift, net)
    assert _equivariance_error(net, z, embedding, metric, _rotation(net)) < FLOAT32_BOUND
    assert _equivariance_error(net, z, embedding, metric, reflection) > 1e-3


def test_rows_are_independent():
    """The transforms move rows, channels and orders through reshapes and transposes; a slip there
    would mix fields of one batch. Each row alone gives its row of the batch (to FLOAT32_BOUND),
    and the Jacobian of row 0's output has exactly zero entries on the other rows' inputs."""
    L = 3
    net = _network(L, 1.5)
    z, embedding, metric = _inputs(L)
    with torch.no_grad():
        batch = net(z, embedding, metric)
        alone = torch.cat([net(z[i:i + 1], embedding[i:i + 1], metric) for i in range(len(z))])
    assert _relative_error(alone, batch) < FLOAT32_BOUND
    z.requires_grad_(True)
    (gradient,) = torch.autograd.grad(net(z, embedding, metric)[0].sum(), z)
    assert gradient[0].abs().max() > 0 and not gradient[1:].any()


def test_white_input_is_a_field_of_unit_pixel_variance():
    """The module docstring: c = Q^1/2 scaled so that a white z synthesises to unit pixel variance.
    The field the lift receives for z = e_i is c_i Y_i, so for white z its variance at pixel k is
    sum_i (c_i Y_i(k))^2: 1 at every pixel (to FLOAT32_BOUND) for a metric constant within each
    degree (the addition theorem), whatever the metric's scale (times 7: the same fields). A metric
    that is not constant within a degree (a_10, the zonal degree-1 mode, given 30 times its
    share) gives a variance that varies over the sphere (the check can fail)."""
    L = 3
    net = _network(L, 1.5)
    _, embedding, metric = _inputs(L)
    seen = []
    # the lift's input is the latitude-major grid (nlat, n, 1, nlon): as (n, nlat nlon)
    net.lift.register_forward_pre_hook(
        lambda module, inputs: seen.append(inputs[0][:, :, 0].transpose(0, 1).reshape(inputs[0].shape[1], -1).double()))

    def fields(metric):  # (m, nlat nlon): the lift's input for z = e_i, row i
        with torch.no_grad():
            net(torch.eye(net.transforms.m), embedding, metric)
        return seen[-1]

    basis_fields = fields(metric)
    assert basis_fields.shape == (net.transforms.m, net.transforms.nlat * net.transforms.nlon)
    assert ((basis_fields ** 2).sum(0) - 1).abs().max() < FLOAT32_BOUND
    assert _relative_error(fields(7 * metric), basis_fields) < FLOAT32_BOUND
    uneven = metric.clone()
    uneven[coefficient_index(1, 0)] *= 30
    assert ((fields(uneven) ** 2).sum(0) - 1).abs().max() > 0.1


def test_network_without_blocks_is_its_formula():
    """With no blocks the network is linear and its formula can be written out: the lifted field
    w S(c z) + b + beta(t) per channel, analysed, projected by P[l] and divided by c, plus the linear
    gain g_l(t) z: F(z)_lm = (sum_k P[k, l] w_k + g_l(t)) z_lm, plus, at l = 0 only, the constant
    fields' coefficient sqrt(4 pi) sum_k P[k, 0] (b_k + beta_k(t)) / c_0. The colour c cancels on
    degrees >= 1, so the same network under a metric of another shape (Q^2) gives the same output
    there; an output not divided by c (the field's units, not the model's) would not (the check
    can fail: it did when the division was removed)."""
    L = 3
    net = _network(L, 1.5)
    net.blocks = nn.ModuleList()
    z, embedding, metric = _inputs(L)
    degrees = torch.as_tensor(SphericalHarmonics(L).degrees)
    with torch.no_grad():
        projection = net.project.weight[0]  # (channels, L + 1)
        gain = (projection * net.lift.weight).sum(0)[degrees] + net.linear(embedding)[:, degrees]
        expected = gain * z
        colour_0 = torch.sqrt(metric[0] * 4 * math.pi / metric.sum())
        constants = net.lift.bias + net.lift_time(embedding)  # (16, channels)
        expected[:, 0] += math.sqrt(4 * math.pi) * (constants * projection[:, 0]).sum(1) / colour_0
        assert _relative_error(net(z, embedding, metric), expected) < FLOAT32_BOUND
        other = net(z, embedding, metric ** 2)
        assert _relative_error(other[:, 1:], expected[:, 1:]) < FLOAT32_BOUND


# -- the score model ------------------------------------------------------------------------------------
def _model(L: int = 3, **overrides) -> ss.ScoreModel:
    degrees = SphericalHarmonics(L).degrees
    options = dict(architecture="sfno", width=4, depth=2, preconditioning="cameron-martin", gaussian_skip=True,
                   metric=whittle_matern_spectrum(L, 1.0, 2.0)[degrees])
    return ss.ScoreModel((L + 1) ** 2, **(options | overrides))


def test_fresh_model_is_its_gaussian_skip_and_leaves_it_after_one_step():
    """At initialisation the projection and the linear gain are zero, so the model equals its
    Gaussian skip exactly (bit for bit). The zero start is not a dead end: the first gradient
    reaches only the projection and the linear gain (every block's gradient is exactly zero behind a
    zero projection), and after one Adam step the model differs from the skip and every parameter of
    the network, the blocks' included, has a non-zero gradient."""
    torch.manual_seed(0)
    model = _model()
    net = model.net
    assert isinstance(net, SphericalFourierNetwork)
    assert not net.project.weight.any() and not net.linear.weight.any() and not net.linear.bias.any()
    generator = torch.Generator().manual_seed(2)
    x, t = torch.randn(16, model.m, generator=generator), 0.05 + 0.9 * torch.rand(16, generator=generator)
    target = torch.randn(16, model.m, generator=generator)
    assert torch.equal(model(x, t), model.baseline(x, t))

    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    ((model(x, t) - target) ** 2).mean().backward()
    for name, parameter in net.named_parameters():
        reached = parameter.grad is not None and bool(parameter.grad.any())
        assert reached == name.startswith(("project.", "linear.")), name
    optimiser.step()
    optimiser.zero_grad()

    assert (model(x, t) - model.baseline(x, t)).abs().max() > 1e-4
    ((model(x, t) - target) ** 2).mean().backward()
    for name, parameter in net.named_parameters():
        assert parameter.grad is not None and parameter.grad.any(), name


@pytest.mark.parametrize("m", [10, 1])
def test_sfno_needs_the_coefficients_of_a_field_of_degree_at_least_one(m):
    """m = 10 is not (L + 1)^2 and m = 1 is L = 0 (nothing to convolve): SymscoreError naming the
    architecture and m. m = 4 (L = 1), the smallest field, is accepted."""
    with pytest.raises(ss.SymscoreError, match=rf"architecture.*got m = {m}\b"):
        ss.ScoreModel(m, architecture="sfno", width=4, depth=1)
    assert ss.ScoreModel(4, architecture="sfno", width=4, depth=1).net.L == 1


def test_save_and_load_give_identical_outputs(tmp_path):
    """A round trip through a file keeps the architecture, the metric (which colours the network's
    input) and every weight: outputs identical bit for bit, torch and numpy. The weights are all
    drawn at random first (a fresh model's network is zero, which would make the comparison
    vacuous), and a fresh model of the same config does give different outputs."""
    torch.manual_seed(0)
    model = _model()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(std=0.3)
    path = model.save(tmp_path / "sfno.pt")
    loaded = ss.ScoreModel.load(path)
    assert loaded.config["architecture"] == "sfno" and isinstance(loaded.net, SphericalFourierNetwork)
    assert torch.equal(loaded.metric, model.metric)
    x = torch.randn(8, model.m, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        assert torch.equal(loaded(x, 0.3), model(x, 0.3))
        assert (_model()(x, 0.3) - model(x, 0.3)).abs().max() > 1e-3
    np.testing.assert_array_equal(loaded(x.numpy(), 0.3), model(x.numpy(), 0.3))


def test_double_precision_model_follows_the_float32_one():
    """``.double()`` carries the network, its grid transforms (buffers) and the metric's colour to
    float64 (the network reads its dtype off its weights): the output is float64 and equals the
    float32 model's to float32 rounding (FLOAT32_BOUND of the largest score)."""
    torch.manual_seed(0)
    model = _model()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(std=0.3)
    x = torch.randn(8, model.m, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        single = model(x, 0.3)
        double = model.double()(x.double(), 0.3)
    assert model.net.transforms.legendre.dtype == torch.float64 and double.dtype == torch.float64
    assert _relative_error(single, double) < FLOAT32_BOUND


def test_training_with_the_sfno_runs():
    """Three DSM steps on lognormal fields at L = 2 (Cameron-Martin, Gaussian skip): the result is an
    sfno model whose projection left zero and whose scores are finite."""
    L = 2
    data = field_data("lognormal", L, 64)
    model = ss.train(whittle_matern_sde(L), data, steps=3, batch_size=8, target="dsm", architecture="sfno",
                     width=4, depth=1, preconditioning="cameron-martin", gaussian_skip=True, progress=False,
                     backend="torch", t_min=0.05, n_steps=20)
    assert model.config["architecture"] == "sfno" and isinstance(model.net, SphericalFourierNetwork)
    assert model.net.project.weight.abs().max() > 0
    scores = model(data[:8], 0.3)
    assert scores.shape == (8, (L + 1) ** 2) and np.isfinite(scores).all()
    assert len(model.loss_history) == 3 and np.isfinite(model.loss_history).all()

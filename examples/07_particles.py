"""Interacting particles: 8 particles in the plane (m = 16) with a pair potential, trained end to end.

The forward SDE is overdamped Langevin dynamics in a harmonic trap with a soft pair repulsion,

    dX = -grad U(X) dt + dB,   U = sum_k |p_k|^2 / 2 + sum_{i<j} eps / (|p_i - p_j|^2 + a^2),

with eps = 1/4, a = 1 and T = 2 (a sharper repulsion makes the Malliavin matrix ill-conditioned
on paths whose particles meet),

so every coordinate is coupled to every other (a width-16 block in the loop form, its Hessian a
sum of 28 pair terms). Data: the 8 particles on a ring of radius 1.5 (random rotation, small
jitter), each configuration one point in R^16. The prior is the forward SDE's own law after a
long run from a standard normal (no data involved), the reverse SDE brings it back; the figures
compare configurations and pair distances of data, samples and prior. The reverse SDE stops at
the model's t_min, so the samples are compared with the data carried forward to t_min as well as
with the clean data. The script prints the training time per step (about 10 minutes on 2 cores;
docs/results/demo.md has the figures).

    python examples/07_particles.py [OUT]   (SYMSCORE_SMALL=1 for a smoke run)
"""
import time

import matplotlib
import numpy as np
import sympy as sp

import symscore as ss
from _common import SMALL, output_folder, size

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

N_PARTICLES, RADIUS = 8, 1.5
out = output_folder(__file__)
t = sp.Symbol("t")
x = sp.symbols(f"x1:{N_PARTICLES + 1}")
y = sp.symbols(f"y1:{N_PARTICLES + 1}")
state = [c for pair in zip(x, y) for c in pair]  # x1, y1, x2, y2, ...
eps, a = sp.Rational(1, 4), sp.Integer(1)
U = sum((xi**2 + yi**2) / 2 for xi, yi in zip(x, y))
U += sum(eps / ((x[i] - x[j]) ** 2 + (y[i] - y[j]) ** 2 + a**2)
         for i in range(N_PARTICLES) for j in range(i + 1, N_PARTICLES))
sde = ss.SDE([-sp.diff(U, c) for c in state], 1, state, t, name="particles8", T=2)


def ring_configurations(n, seed):
    """n configurations (n, 16): the particles evenly on a circle, rotated at random, jittered."""
    rng = np.random.default_rng(seed)
    angles = rng.uniform(0, 2 * np.pi, size=(n, 1)) + 2 * np.pi * np.arange(N_PARTICLES) / N_PARTICLES
    points = RADIUS * np.stack([np.cos(angles), np.sin(angles)], axis=-1)
    return (points + 0.05 * rng.normal(size=points.shape)).reshape(n, 2 * N_PARTICLES)


def pair_distances(configurations):
    points = configurations.reshape(len(configurations), N_PARTICLES, 2)
    i, j = np.triu_indices(N_PARTICLES, k=1)
    return np.linalg.norm(points[:, i] - points[:, j], axis=-1).ravel()


data = ring_configurations(size(20_000, 200), seed=0)
started = time.perf_counter()
kernel = ss.compile(sde)
print(f"{sde.derive().structure} drift, m = {sde.m}: built in {time.perf_counter() - started:.1f} s")
# the prior: the forward SDE (time-homogeneous) run from a standard normal for 4 T = 8 time units,
# which approximates its stationary law without looking at the data
prior = np.random.default_rng(1).normal(size=(size(4000, 64), sde.m))
for lap in range(4):
    prior = kernel.simulate(prior, [sde.T], size(100, 10), seed=lap).x[:, -1]
steps = size(1000, 3)
started = time.perf_counter()
model = ss.train(sde, data, steps=steps, batch_size=size(256, 16), n_steps=size(50, 10), width=size(256, 32),
                 depth=3, lr=2e-3, progress=not SMALL)
seconds = time.perf_counter() - started
print(f"trained {steps} steps in {seconds:.0f} s: {seconds / steps:.2f} s per step")
samples = ss.sample(sde, model, size(2000, 32), n_steps=size(300, 10), method="sde", prior=prior, seed=2)
# the reverse SDE ends at the model's t_min, so its samples are of p_{t_min}: data carried forward
# to t_min by the forward SDE are what they should match (the clean ring is t_min away)
t_min = model.t_min
noised = kernel.simulate(data[: len(samples)], [t_min], size(20, 2), seed=3).x[:, -1]

# configurations: each particle's positions over many configurations, data against samples
fig, axes = plt.subplots(1, 4, figsize=(16, 4.2))
colours = plt.cm.tab10(np.arange(N_PARTICLES))
for ax, points, title in ((axes[0], data[:300], "data"), (axes[1], samples[:300], "samples"),
                          (axes[2], prior[:300], "prior (forward SDE's law at T)")):
    pts = points.reshape(len(points), N_PARTICLES, 2)
    for k in range(N_PARTICLES):
        ax.scatter(pts[:, k, 0], pts[:, k, 1], s=2, color=colours[k], alpha=0.5)
    ax.set(title=title, xlim=(-3, 3), ylim=(-3, 3), aspect="equal")
bins = np.linspace(0, 4, 81)
for points, label in ((data, "data"), (noised, "data at t_min"), (samples, "samples"), (prior, "prior")):
    axes[3].hist(pair_distances(points), bins=bins, density=True, histtype="step", label=label)
axes[3].set(title="pair distances", xlabel="|p_i - p_j|")
axes[3].legend()
fig.tight_layout()
fig.savefig(out / "particles.png", dpi=110)
for points, label in ((data, "data"), (noised, f"data at t_min = {t_min:.3g}"), (samples, "samples"),
                      (prior, "prior")):
    radii = np.linalg.norm(points.reshape(len(points), N_PARTICLES, 2), axis=-1)
    print(f"{label:>22}: mean radius {radii.mean():.3f} (SE {radii.mean(axis=1).std() / np.sqrt(len(points)):.3f}), "
          f"spread of radii within a configuration {radii.std(axis=1).mean():.3f}")
print(f"wrote {out / 'particles.png'}")

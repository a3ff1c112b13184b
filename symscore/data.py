"""Toy and shipped datasets, all seeded: ``ss.data.load(name_or_path, n, seed)``.

Two-dimensional toys (checkerboard, moons, swiss roll, 8 gaussians, rings) are the usual test
beds of diffusion models; ``student_t`` is a heavy-tailed one (2 degrees of freedom); ``digits``
is scikit-learn's shipped 8 x 8 digits (1797 images, 64-d) scaled from [0, 16] to [-1, 1]. User
arrays and ``.npy`` files go through the same checks.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ._errors import SymscoreError

__all__ = ["checkerboard", "moons", "swiss_roll", "eight_gaussians", "rings", "student_t", "digits", "load", "check_data",
           "DATASETS"]


def _rng(seed):
    return np.random.default_rng(seed)


def checkerboard(n: int = 10_000, seed: int = 0, squares: int = 4, size: float = 4.0) -> np.ndarray:
    """Uniform on the black squares of a ``squares`` x ``squares`` board over [-size, size]^2."""
    rng = _rng(seed)
    cell = 2 * size / squares
    out = np.empty((0, 2))
    while out.shape[0] < n:
        points = rng.uniform(-size, size, size=(2 * n, 2))
        index = np.floor((points + size) / cell).astype(int)
        out = np.concatenate([out, points[(index.sum(axis=1) % 2) == 0]])
    return out[:n]


def moons(n: int = 10_000, seed: int = 0, noise: float = 0.05) -> np.ndarray:
    """scikit-learn's two moons, centred and scaled by 2."""
    from sklearn.datasets import make_moons

    x, _ = make_moons(n_samples=n, noise=noise, random_state=seed)
    return (x - np.array([0.5, 0.25])) * 2


def swiss_roll(n: int = 10_000, seed: int = 0, noise: float = 0.5) -> np.ndarray:
    """scikit-learn's swiss roll, the (x, z) plane, divided by 3 (roughly in [-4, 4]^2)."""
    from sklearn.datasets import make_swiss_roll

    x, _ = make_swiss_roll(n_samples=n, noise=noise, random_state=seed)
    return x[:, [0, 2]] / 3


def eight_gaussians(n: int = 10_000, seed: int = 0, radius: float = 3.0, std: float = 0.3) -> np.ndarray:
    """Eight Gaussians of std ``std`` equally spaced on a circle of radius ``radius``."""
    rng = _rng(seed)
    angle = 2 * np.pi * rng.integers(8, size=n) / 8
    centres = radius * np.stack([np.cos(angle), np.sin(angle)], axis=1)
    return centres + std * rng.standard_normal((n, 2))


def rings(n: int = 10_000, seed: int = 0, radii=(1.0, 2.0, 3.0), std: float = 0.08) -> np.ndarray:
    """Concentric rings, points in proportion to the circumference, radial noise ``std``."""
    rng = _rng(seed)
    radii = np.asarray(radii, dtype=np.float64)
    which = rng.choice(len(radii), size=n, p=radii / radii.sum())
    angle = rng.uniform(0, 2 * np.pi, size=n)
    r = radii[which] + std * rng.standard_normal(n)
    return np.stack([r * np.cos(angle), r * np.sin(angle)], axis=1)


def student_t(n: int = 10_000, seed: int = 0, df: float = 2.0, scale: float = 1.0) -> np.ndarray:
    """A 2-D Student t with ``df`` degrees of freedom (default 2: infinite variance): z / sqrt(g / df)
    with z ~ N(0, scale^2 I) and g ~ chi^2_df shared by both coordinates (elliptical, heavy-tailed:
    P(|x| > r) ~ r^-df)."""
    rng = _rng(seed)
    z = scale * rng.standard_normal((n, 2))
    return z / np.sqrt(rng.chisquare(df, size=(n, 1)) / df)


def digits(n: int | None = None, seed: int = 0) -> np.ndarray:
    """scikit-learn's 8 x 8 digits as 64-d vectors in [-1, 1]; n rows drawn without replacement
    (all 1797 when n is None; with replacement only if n > 1797)."""
    from sklearn.datasets import load_digits

    images = load_digits().data / 8.0 - 1.0
    if n is None:
        return images
    rng = _rng(seed)
    return images[rng.choice(images.shape[0], size=n, replace=n > images.shape[0])]


DATASETS = {"checkerboard": checkerboard, "moons": moons, "swiss_roll": swiss_roll,
            "eight_gaussians": eight_gaussians, "rings": rings, "student_t": student_t, "digits": digits}


def check_data(data, m: int | None = None, name: str = "data", min_rows: int = 2) -> np.ndarray:
    """``data`` as a finite float64 (n, m) array with n >= min_rows, or a SymscoreError naming the problem."""
    try:
        array = np.asarray(data, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise SymscoreError(f"{name}: expected an (n, m) array of numbers, got {type(data).__name__}") from exc
    if array.ndim == 1 and m == 1:
        array = array[:, None]
    if array.ndim != 2 or array.shape[0] < min_rows:
        raise SymscoreError(f"{name}: expected an (n, m) array with n >= {min_rows} rows, got shape {array.shape}")
    if m is not None and array.shape[1] != m:
        raise SymscoreError(f"{name}: the SDE has dimension m = {m}, but the data have {array.shape[1]} columns")
    bad = ~np.isfinite(array).all(axis=1)
    if bad.any():
        raise SymscoreError(f"{name}: {int(bad.sum())} row(s) contain NaN or inf (first: row {int(np.flatnonzero(bad)[0])})")
    return array


def load(source, n: int | None = 10_000, seed: int = 0) -> np.ndarray:
    """A dataset by name (``DATASETS``), a ``.npy`` file, or an array; n rows (all if None), seeded."""
    if isinstance(source, str | Path) and str(source) in DATASETS:
        function = DATASETS[str(source)]
        return function(n, seed=seed) if n is not None or function is digits else function(seed=seed)
    if isinstance(source, str | Path):
        path = Path(source)
        if path.suffix != ".npy":
            raise SymscoreError(f"data: expected a dataset name ({', '.join(DATASETS)}) or a .npy file, got {str(source)!r}")
        if not path.is_file():
            raise SymscoreError(f"data: no such file {str(path)!r}")
        try:
            source = np.load(path, allow_pickle=False)
        except ValueError as exc:
            raise SymscoreError(f"data: {str(path)!r} is not a readable .npy array ({exc})") from exc
    array = check_data(source)
    if n is not None and n < array.shape[0]:
        array = array[_rng(seed).choice(array.shape[0], size=n, replace=False)]
    return array

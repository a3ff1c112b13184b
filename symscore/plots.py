"""Figures (matplotlib, Agg backend, saved as PNG): samples beside data, score fields, target
variance against t, loss curves, Mollweide maps and angular power spectra of spherical fields.
Each function writes ``path`` and returns it."""
from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["plot_samples", "plot_sample_grid", "plot_score_field", "plot_target_variance", "plot_loss", "plot_digits",
           "plot_field_maps", "plot_power_spectra", "plot_score_error", "plot_target_bias"]


def _figure(n_panels: int, size: float = 3.6, rows: int | None = None):
    """(pyplot, figure, axes): a row of ``n_panels`` axes, or a (rows, n_panels) array if ``rows`` is given."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(rows or 1, n_panels, figsize=(size * n_panels, size * (rows or 1)), squeeze=False)
    return plt, fig, axes[0] if rows is None else axes


def _save(plt, fig, path, tight: bool = True) -> Path:
    """Write ``fig`` to ``path`` (parents created) and close it; ``tight=False`` for figures with a
    colorbar shared across axes, which tight_layout cannot place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if tight:
        fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_samples(data, samples: dict, path, limits=None, max_points: int = 5000, labels=None) -> Path:
    """Scatter of the first two coordinates: the data (titled "data"; None for no data panel), then
    each entry of ``samples`` (title -> array). ``labels``: names of the two plotted coordinates
    (axis labels); the limits default to the first panel's span."""
    panels = {} if data is None else {"data": np.asarray(data)}
    panels |= {k: np.asarray(v) for k, v in samples.items()}
    if not panels:
        raise ValueError("plot_samples: expected data or at least one entry in samples")
    plt, fig, axes = _figure(len(panels))
    if limits is None:
        first = next(iter(panels.values()))[:, :2]
        span = float(np.nanmax(np.abs(first))) * 1.25 if np.isfinite(first).any() else 1.0
        limits = (-span, span)
    for ax, (title, points) in zip(axes, panels.items()):
        ax.scatter(points[:max_points, 0], points[:max_points, 1], s=1.5, alpha=0.5, lw=0)
        ax.set(title=title, xlim=limits, ylim=limits, aspect="equal")
        if labels is not None:
            ax.set(xlabel=str(labels[0]), ylabel=str(labels[1]))
    return _save(plt, fig, path)


def plot_sample_grid(grid: dict, path, max_points: int = 3000, size: float = 2.6) -> Path:
    """Scatter plots in a grid: a row per entry of ``grid`` (row title -> {column title -> (n, 2)}),
    the same columns in every row, each row on the limits of its first column (the data)."""
    columns = list(next(iter(grid.values())))
    plt, fig, axes = _figure(len(columns), size=size, rows=len(grid))
    for row_axes, (row_title, panels) in zip(axes, grid.items()):
        span = np.abs(np.asarray(panels[columns[0]])[:, :2]).max() * 1.25
        for ax, column in zip(row_axes, columns):
            points = np.asarray(panels[column])
            ax.scatter(points[:max_points, 0], points[:max_points, 1], s=1, alpha=0.5, lw=0)
            ax.set(xlim=(-span, span), ylim=(-span, span), aspect="equal", xticks=[], yticks=[])
            ax.set_title(f"{row_title}: {column}", fontsize=8)
    return _save(plt, fig, path)


def plot_score_field(scores: dict, t: float, path, limits=(-3.0, 3.0), n_grid: int = 21) -> Path:
    """Quiver plots of 2-D score fields at time t (title -> callable score(x, t)), side by side."""
    plt, fig, axes = _figure(len(scores))
    axis = np.linspace(*limits, n_grid)
    grid = np.stack(np.meshgrid(axis, axis), axis=-1).reshape(-1, 2)
    for ax, (title, score) in zip(axes, scores.items()):
        vectors = np.asarray(score(grid, t))
        ax.quiver(grid[:, 0], grid[:, 1], vectors[:, 0], vectors[:, 1], np.linalg.norm(vectors, axis=1))
        ax.set(title=f"{title}, t = {t:g}", aspect="equal")
    return _save(plt, fig, path)


def plot_target_variance(variances: dict, path) -> Path:
    """Mean per-coordinate variance of the target against t (log-log); label -> (times, variances)."""
    plt, fig, axes = _figure(1, size=4.5)
    for label, (times, values) in variances.items():
        axes[0].loglog(times, values, marker="o", ms=3, label=label)
    axes[0].set(xlabel="t", ylabel="Var[target] (mean over coordinates)", title="target variance")
    axes[0].legend()
    return _save(plt, fig, path)


def plot_loss(histories: dict, path, smooth: int = 50) -> Path:
    """Training loss against step (moving average over ``smooth`` steps), one line per entry."""
    plt, fig, axes = _figure(1, size=4.5)
    for label, history in histories.items():
        history = np.asarray(history, dtype=np.float64)
        window = max(1, min(smooth, len(history) // 5 or 1))
        averaged = np.convolve(history, np.ones(window) / window, mode="valid")
        axes[0].plot(np.arange(len(averaged)) + window, averaged, label=label)
    axes[0].set(xlabel="step", ylabel="loss (normalised units)", yscale="log", title="training loss")
    axes[0].legend()
    return _save(plt, fig, path)


def plot_digits(images, path, columns: int = 10) -> Path:
    """A grid of 8 x 8 images given as (n, 64) rows in [-1, 1]."""
    images = np.clip(np.asarray(images)[: columns * ((len(images) + columns - 1) // columns)], -1, 1)
    rows = (len(images) + columns - 1) // columns
    plt, fig, _ = _figure(1)
    plt.close(fig)
    fig, axes = plt.subplots(rows, columns, figsize=(columns * 0.8, rows * 0.8), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, image in zip(axes.ravel(), images):
        ax.imshow(image.reshape(8, 8), cmap="gray_r", vmin=-1, vmax=1)
    return _save(plt, fig, path)


def plot_field_maps(fields: dict, L: int, path, n_maps: int = 3, resolution: int = 96) -> Path:
    """Mollweide maps of spherical fields: one row per entry of ``fields`` (title -> coefficients
    (n, (L + 1)^2)), its first ``n_maps`` fields side by side, synthesised on a grid of
    ``resolution`` latitudes; every map shares one symmetric colour scale (the 99.5% quantile of
    the absolute values)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .fields import SphericalHarmonics

    harmonics = SphericalHarmonics(L, nlat=max(resolution, L + 1), nlon=2 * max(resolution, L + 1))
    maps = {title: harmonics.synthesis(np.asarray(coeffs, dtype=np.float64)[:n_maps]) for title, coeffs in fields.items()}
    # one scale for all maps, robust to a heavy-tailed outlier (values beyond it saturate)
    limit = float(np.quantile(np.abs(np.concatenate([m.ravel() for m in maps.values()])), 0.995))
    lon = np.radians(np.append(harmonics.lon, 360.0) - 180.0)  # the first column again, closing the seam
    lat = np.radians(harmonics.lat)
    fig, axes = plt.subplots(len(maps), n_maps, figsize=(3.4 * n_maps, 2.0 * len(maps) + 0.4), squeeze=False,
                             subplot_kw={"projection": "mollweide"})
    for row, (title, values) in zip(axes, maps.items()):
        for column, ax in enumerate(row):
            ax.set_xticklabels([])
            ax.set_yticklabels([])
            if column >= len(values):
                ax.axis("off")
                continue
            # longitudes 0..360 shown as -180..180: roll by half a turn, then close the seam
            field = np.roll(values[column], len(harmonics.lon) // 2, axis=1)
            image = ax.pcolormesh(lon, lat, np.concatenate([field, field[:, :1]], axis=1), cmap="RdBu_r",
                                  vmin=-limit, vmax=limit, shading="nearest")
            ax.set_title(f"{title} {column + 1}", fontsize=9)
    fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.6)
    return _save(plt, fig, path, tight=False)


def plot_power_spectra(spectra: dict, path, reference: dict | None = None) -> Path:
    """Angular power spectra C_l against l (log scale): ``spectra`` title -> (C_l (L + 1,), or a
    pair (C_l, standard error) drawn with error bars); ``reference`` title -> C_l drawn dashed
    (for example the noise's Whittle-Matern C_l)."""
    plt, fig, axes = _figure(1, size=4.8)
    ax = axes[0]
    for title, values in spectra.items():
        mean, error = (values if isinstance(values, tuple) else (values, None))
        degrees = np.arange(len(mean))
        ax.errorbar(degrees, mean, yerr=error, marker="o", ms=3, capsize=2, label=title)
    for title, values in (reference or {}).items():
        ax.plot(np.arange(len(values)), values, "k--", lw=1, label=title)
    ax.set(xlabel="degree l", ylabel="C_l", yscale="log", title="angular power spectrum")
    ax.legend()
    return _save(plt, fig, path)


def plot_score_error(report, path) -> Path:
    """A :class:`~symscore.truth.ScoreErrorReport`: the relative L2 error e(t) of the score with
    its standard error against t, and the truth's own error estimate (dashed; e(t) below it is not
    resolved by the truth)."""
    plt, fig, axes = _figure(1, size=4.5)
    ax = axes[0]
    ax.errorbar(report.times, report.error, yerr=report.standard_error, marker="o", ms=4, capsize=3,
                label="score error e(t)")
    if np.any(report.truth_error > 0):
        ax.plot(report.times, report.truth_error, "k--", lw=1, label=f"truth's error ({report.truth_kind})")
    ax.set(xlabel="t", ylabel="sqrt(E|s - s*|^2 / E|s*|^2)", title=f"score error, {report.sde_name}")
    if np.all(report.error > 0):
        ax.set_yscale("log")
    ax.legend()
    return _save(plt, fig, path)


def plot_target_bias(report, path, z_limit: float = 4.0) -> Path:
    """A :class:`~symscore.truth.TargetBiasReport`, one panel per record time. 1-D: the mean target
    per bin (error bars: its standard error) against the mean true score ``s*(X_t)`` over the same
    paths, at the bins' mean X_t. m >= 2: one row per coordinate, a map of the z-scores per bin
    (cell = marginal-quantile bin of the first two coordinates; skipped bins blank; colours
    saturate at +-``z_limit``)."""
    times = list(report.times)
    title = f"{report.target}, n_steps = {report.n_steps}"
    if len(report.bin_axes) == 1:
        plt, fig, axes = _figure(len(times), size=3.4)
        for ax, t, x, target, truth, se in zip(axes, times, report.bin_centres, report.bin_mean_target,
                                               report.bin_mean_truth, report.bin_standard_error):
            ax.plot(x[:, 0], truth[:, 0], "k-", lw=1, label="truth s*")
            ax.errorbar(x[:, 0], target[:, 0], yerr=se[:, 0], fmt="o", ms=3, capsize=2, label="mean target")
            ax.set(xlabel="X_t (bin mean)", title=f"{title}\nt = {t:.3g}")
        axes[0].set_ylabel("score")
        axes[0].legend(fontsize=8)
        return _save(plt, fig, path)
    m = report.bin_centres[0].shape[1]
    shown = min(m, 2)
    plt, fig, axes = _figure(len(times), size=3.0, rows=shown)
    image = None
    for column, (t, cells, z) in enumerate(zip(times, report.bin_cells, report.z)):
        for row in range(shown):
            grid = np.full((report.bins, report.bins), np.nan)
            grid[cells[:, 1], cells[:, 0]] = np.clip(z[:, row], -z_limit, z_limit)
            ax = axes[row, column]
            image = ax.imshow(grid, origin="lower", cmap="RdBu_r", vmin=-z_limit, vmax=z_limit)
            ax.set(title=f"t = {t:.3g}, coordinate {row + 1}", xticks=[], yticks=[],
                   xlabel="x1 quantile bin", ylabel="x2 quantile bin")
    fig.suptitle(f"{title}: z = bin mean(target - s*) / std. error")
    fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.7)
    return _save(plt, fig, path, tight=False)

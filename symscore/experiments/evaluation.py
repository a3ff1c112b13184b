"""Evaluating sample sets against held-out data, next to the noise floor.

A sample-based metric is biased by the sample size (sliced W2 and W2 upwards; MMD^2 and the
energy distance are unbiased but noisy), so a value means little alone. Its *noise floor* is the
same metric between independent draws of the data of the same sizes: a perfect model reaches it,
and "x floor" (the metric over its floor) is the figure an experiment reports.
"""
from __future__ import annotations

from .. import metrics

__all__ = ["FLOOR", "noise_floor", "flat_metrics", "ratio_to_floor"]

#: the row label of the noise floor in every report
FLOOR = "data (noise floor)"


def noise_floor(draw, n: int, held_out, seeds, seed: int = 0, max_points: int | None = None) -> dict:
    """Each metric between ``held_out`` and fresh draws ``draw(n, seed=s)`` for ``s`` in ``seeds``:
    their mean and standard error (:func:`symscore.metrics.evaluate_replicates`, with its ``seed``
    and ``max_points``), as for a sampled row."""
    references = [draw(n, seed=int(s)) for s in seeds]
    return metrics.evaluate_replicates(references, held_out, seed=seed, max_points=max_points)


def flat_metrics(report: dict) -> dict:
    """:func:`symscore.metrics.evaluate_replicates`'s report as ``{name: mean}``, with
    ``<name>_se``, the standard error, where there was more than one set."""
    row = {}
    for name, entry in report.items():
        row[name] = entry["value"]
        if entry["standard_error"] is not None:
            row[f"{name}_se"] = entry["standard_error"]
    return row


def ratio_to_floor(row: dict, floor: dict, metric: str = "sliced_w2") -> float:
    """``metric`` of ``row`` over that of ``floor``; rows either flat (:func:`flat_metrics`) or as
    :func:`symscore.metrics.evaluate_replicates` reports them."""
    value = lambda entry: entry["value"] if isinstance(entry, dict) else entry  # noqa: E731
    return value(row[metric]) / value(floor[metric])

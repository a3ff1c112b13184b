"""How a comparison holds over training seeds.

One training run is one draw (on the checkerboard a row's ratio to the noise floor moves by a
third between seeds), so a comparison that should hold in general is read from several runs:
per row, its ratio per seed, their mean and range, and in how many runs it is within a tolerance
of the floor.
"""
from __future__ import annotations

import numpy as np

__all__ = ["WITHIN", "seeds_summary", "seeds_table"]

#: a row "is within the floor" in a run when its ratio to the floor is at most this
WITHIN = 1.5


def seeds_summary(ratios: dict) -> dict:
    """``{row: [ratio to the floor per seed]}`` as ``{row: {"ratios", "mean", "min", "max",
    "within_1.5"}}`` (``within_1.5``: the runs whose ratio is at most :data:`WITHIN`)."""
    summary = {}
    for row, values in ratios.items():
        values = [float(v) for v in values]
        summary[row] = {"ratios": values, "mean": float(np.mean(values)), "min": min(values), "max": max(values),
                        "within_1.5": int(sum(v <= WITHIN for v in values))}
    return summary


def seeds_table(summary: dict, seeds, first_column: str | None = None) -> list[str]:
    """A Markdown table of ``summary`` (:func:`seeds_summary`; with ``first_column``, a mapping
    ``{group: summary}`` whose group names fill that column): ratio per seed, mean, runs within."""
    grouped = summary if first_column else {None: summary}
    head = ([first_column] if first_column else []) + ["SDE + target, sampler"]
    head += [f"seed {seed}" for seed in seeds] + ["mean", f"within {WITHIN:g}x"]
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for group, rows in grouped.items():
        for label, row in rows.items():
            cells = ([group] if first_column else []) + [label] + [f"{r:.2f}" for r in row["ratios"]]
            cells += [f"{row['mean']:.2f}", f"{row['within_1.5']} of {len(row['ratios'])}"]
            lines.append("| " + " | ".join(cells) + " |")
    return lines

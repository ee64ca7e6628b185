"""Plain-text tables of the evaluation's rows, as ``experiments.evaluate`` prints them."""

from __future__ import annotations

import math
from typing import Any

from jaxgan.eval import suite


def format_parzen_probes(probes: dict[str, dict[str, Any]]) -> str:
    """A plain-text table of ``jaxgan.eval.suite.parzen_probes``: one line per probe, one
    column per set."""
    sets = list(probes)
    header = f"{'Parzen LL (nats) of':<20}" + "".join(f"{what:>24}" for what in sets)
    lines = [header, "-" * len(header)]
    for name, _ in suite.PARZEN_PROBES:
        cells = []
        for what in sets:
            row = probes[what][name]
            cells.append(f"{row['mean']:>9.1f}+-{row['stderr']:<4.1f} s={row['sigma']:.3f}")
        lines.append(f"{name:<20}" + "".join(f"{cell:>24}" for cell in cells))
    return "\n".join(lines)


def format_table(rows: dict[str, dict[str, Any]]) -> str:
    """A plain-text table of rows from ``jaxgan.eval.evaluate_samples``, one line per row."""
    header = (
        f"{'row':<12} {'n':>6} {'FID feat':>9} {'FID logit':>9} {'score':>12} {'rarest':>7} "
        f"{'conf':>6} {'prec':>5} {'recall':>6} {'cover':>5} "
        f"{'Parzen LL (nats)':>17} {'sigma':>6} {'t->c':>6} {'c->c':>6} "
        f"{'NN gen':>7} {'NN test':>7} {'ratio':>6}"
    )
    lines = [header, "-" * len(header)]
    for name, row in rows.items():
        parzen, memo = row["parzen"], row["memorization"]
        score = f"{row['classifier_score']:.3f}+-{row['classifier_score_std']:.3f}"
        parzen_text = f"{parzen['mean']:.1f}+-{parzen['stderr']:.1f}"
        edge = "*" if parzen["sigma_on_grid_edge"] else " "
        lines.append(
            f"{name:<12} {row['num_samples']:>6} {row['fid_features']:>9.3f} "
            f"{row['fid_logits']:>9.3f} {score:>12} {row['rarest_class_share']:>7.4f} "
            f"{row['mean_confidence']:>6.3f} {row['precision']:>5.3f} {row['recall']:>6.3f} "
            f"{row['coverage']:>5.3f} "
            f"{parzen_text:>17} {parzen['sigma']:>5.3f}{edge} "
            f"{parzen['test_nearest_median']:>6.3f} {parzen['centre_nearest_median']:>6.3f} "
            f"{memo['generated_median']:>7.3f} "
            f"{memo['heldout_median']:>7.3f} {_ratio(memo['ratio']):>6}"
        )
    lines.append("t->c: median distance from a test digit to its nearest Parzen centre; c->c: "
                 "from a centre to its nearest other centre")
    if any(row["parzen"]["sigma_on_grid_edge"] for row in rows.values()):
        lines.append("* sigma is at the edge of the grid: the best sigma may lie outside it")
    return "\n".join(lines)


def _ratio(value: float) -> str:
    return "inf" if math.isinf(value) else f"{value:.3f}"


def format_conditional_table(rows: dict[str, dict[str, Any]]) -> str:
    """A plain-text table of ``jaxgan.eval.suite.conditional_metrics`` rows: one line per
    class, a column pair (accuracy, per-class FID) per row."""
    names = list(rows)
    header = f"{'class':>5} " + " ".join(f"{name + ' acc':>12} {name + ' FID':>12}" for name in names)
    lines = [header, "-" * len(header)]
    classes = len(next(iter(rows.values()))["accuracy_per_class"])

    def cell(value, digits):
        return f"{'-':>12}" if value is None else f"{value:>12.{digits}f}"

    for c in range(classes):
        lines.append(f"{c:>5} " + " ".join(
            cell(rows[n]["accuracy_per_class"][c], 4) + " " + cell(rows[n]["fid_per_class"][c], 2)
            for n in names))
    lines.append(f"{'all':>5} " + " ".join(
        cell(rows[n]["accuracy"], 4) + " " + cell(rows[n]["mean_fid_per_class"], 2) for n in names))
    return "\n".join(lines)

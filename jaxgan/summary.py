"""Training records: ``metrics.jsonl``, TensorBoard event files and a loss-curve PNG."""

from __future__ import annotations

import json
import os
from typing import Any

from jaxgan.files import atomic_path


class MetricsWriter:
    """Appends one JSON line per record to ``workdir/metrics.jsonl`` and mirrors the scalars
    to TensorBoard event files in ``workdir/tensorboard``.

    A resumed run appends to the same files; records past the resumed step (written after the
    last checkpoint of the interrupted run) are dropped first so the log has no duplicates.
    """

    def __init__(self, workdir: str | os.PathLike, *, resume_step: int = 0):
        from tensorboardX import SummaryWriter  # imported here: it is slow to import

        self.path = os.path.join(os.fspath(workdir), "metrics.jsonl")
        kept = [r for r in read_metrics(self.path) if r["step"] <= resume_step]
        with atomic_path(self.path) as tmp, open(tmp, "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in kept)
        self._file = open(self.path, "a")
        self._tensorboard = SummaryWriter(os.path.join(os.fspath(workdir), "tensorboard"))

    def write(self, step: int, scalars: dict[str, float]) -> None:
        record = {"step": int(step), **{k: float(v) for k, v in scalars.items()}}
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()
        for name, value in scalars.items():
            self._tensorboard.add_scalar(name, float(value), int(step))

    def close(self) -> None:
        self._file.close()
        self._tensorboard.close()


def read_metrics(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The records of a ``metrics.jsonl`` (an unfinished last line is skipped)."""
    if not os.path.exists(path):
        return []
    records = []
    with open(path) as f:
        for line in f:
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                break  # a line cut short by a kill; everything after it is also suspect
    return records


def plot_losses(records: list[dict[str, Any]], path: str | os.PathLike) -> None:
    """Writes a PNG of D's and G's losses and of D(x), D(G(z)) against the step, and of the
    held-out Parzen estimate when the records have it (``TrainConfig.parzen_samples``).

    Uses Matplotlib's object API (a ``Figure`` with the Agg canvas): no global backend or
    pyplot state is touched.
    """
    from matplotlib.figure import Figure

    if not records:
        return
    steps = [r["step"] for r in records]
    parzen = [(r["step"], r["parzen_heldout"]) for r in records if "parzen_heldout" in r]
    fig = Figure(figsize=(15 if parzen else 10, 3.5))
    axes = fig.subplots(1, 3 if parzen else 2)
    ax_loss, ax_d = axes[0], axes[1]
    for name in ("d_loss", "g_loss"):
        ax_loss.plot(steps, [r.get(name, float("nan")) for r in records], label=name)
    ax_loss.set_xlabel("step")
    ax_loss.set_title("losses")
    ax_loss.legend()
    for name, label in (("d_real", "D(x)"), ("d_fake", "D(G(z))")):
        ax_d.plot(steps, [r.get(name, float("nan")) for r in records], label=label)
    ax_d.axhline(0.5, color="gray", lw=0.8, ls=":")
    ax_d.set_ylim(0, 1)
    ax_d.set_xlabel("step")
    ax_d.set_title("discriminator output")
    ax_d.legend()
    if parzen:
        axes[2].plot(*zip(*parzen), marker=".")
        axes[2].set_xlabel("step")
        axes[2].set_title("Parzen log-likelihood, 1,000 held-out rows (nats)")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")

"""The quality sweep's wiring: candidate commands and the table built from recorded runs."""

import dataclasses
import json

from experiments import mnist, sweep
from jaxgan.config import TrainConfig


def config_of(command):
    """The TrainConfig that ``python -m experiments.mnist`` would build from ``command``."""
    # Drop "python -m experiments.mnist".
    return mnist.config_from_args(mnist._train_parser().parse_args(command[3:]))


def test_candidates_start_from_the_base_flags_and_default_from_the_defaults():
    # The first three rounds ran before conditional GANs: they stay plain unconditional.
    unconditional = TrainConfig(conditional=False, clusters=0, steps=5500)
    assert config_of(sweep.train_command("default", 2, "W")) == dataclasses.replace(
        unconditional, seed=2)
    tiny = config_of(sweep.train_command("tiny_k5_lr2e-3", 0, "W"))
    # The base (batch 64) survives; the candidate's own learning rates override the base's.
    assert tiny.batch_size == 64 and tiny.g_lr == tiny.d_lr == 2e-3
    assert tiny.g_widths == (64, 32, 16) and tiny.d_widths == (16, 32)
    assert tiny.conditional is False
    # Candidates named default* start from the defaults, not from the base flags.
    assert config_of(sweep.train_command("default_9000", 0, "W")) == dataclasses.replace(
        unconditional, steps=9000)
    assert config_of(sweep.train_command("default_linear", 0, "W")) == dataclasses.replace(
        unconditional, lr_schedule="linear")
    # The fourth round: the same model conditional, and the new default (4,000 steps).
    assert config_of(sweep.train_command("conditional_5500", 0, "W")) == TrainConfig(
        conditional=True, steps=5500)
    assert config_of(sweep.train_command("conditional", 0, "W")) == TrainConfig(conditional=True)


def test_table_reads_the_recorded_runs(tmp_path):
    run = tmp_path / "default" / "seed1"
    run.mkdir(parents=True)
    summary = {"workdir": str(run), "step": 5500, "seconds": 250.5}
    (run / "train.log").write_text("a log line\n" + json.dumps(summary, indent=2)
                                   + "\n\tElapsed (wall clock) time: 4:20\n")
    row = {"fid_features": 12.345, "rarest_class_share": 0.0874, "mean_confidence": 0.95,
           "parzen": {"mean": 200.04}}
    (run / "eval.json").write_text(json.dumps({"rows": {"generator": row}}))
    markdown = sweep.table(str(tmp_path), ["default", "tiny_k5"], [0, 1])
    lines = markdown.splitlines()
    assert len(lines) == 3  # header, rule, the one recorded run
    assert lines[2].startswith("| default | 1 | 5500 | 250.5 | 12.3 | 0.087 | 0.950 | 200.0 |")
    records = json.loads((tmp_path / "sweep.json").read_text())
    assert records[0]["fid"] == 12.345 and records[0]["steps"] == 5500

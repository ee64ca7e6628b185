"""Every command turns bad input into one line naming what to fix and exit status 2, before
doing any work; nothing on disk is touched.

The commands' ``main`` functions run in this process (the flags are parsed exactly as from a
shell); one subprocess test checks the same from the shell for the training command.
"""

import os
import subprocess
import sys

import numpy as np
import pytest

from benchmarks import train_step as benchmark
from experiments import evaluate, mnist, toy1d
from jaxgan import trainer
from jaxgan.config import TrainConfig
from tests.support import ROOT, tiny_config

COMMANDS = {"mnist": mnist.main, "evaluate": evaluate.main, "toy1d": toy1d.main,
            "benchmark": benchmark.main}


@pytest.fixture(scope="module")
def place(tmp_path_factory):
    """A directory with one good workdir and a collection of bad inputs."""
    root = tmp_path_factory.mktemp("inputs")
    trainer.train(tiny_config(steps=3), root / "good", progress=False)
    (root / "a_file").write_text("")
    for name, text in (("garbage", "not json{"), ("truncated", '{\n  "arch": "dcg'),
                       ("a_list", "[1, 2]")):
        (root / name).mkdir()
        (root / name / "config.json").write_text(text)
    (root / "no_checkpoint").mkdir()
    (root / "no_checkpoint" / "config.json").write_text((root / "good" / "config.json").read_text())
    digits = np.zeros((4, 28, 28), np.float32)
    np.save(root / "wrong_shape.npy", np.zeros((4, 32, 32, 2), np.float32))
    np.save(root / "other_size.npy", np.zeros((4, 32, 32), np.float32))
    np.save(root / "wrong_dtype.npy", digits.astype(np.complex64))
    np.save(root / "out_of_range.npy", digits + 2)
    np.save(root / "with_nan.npy", np.where(digits == 0, np.nan, digits))
    np.savez(root / "archive.npz", images=digits)
    (root / "garbage.npy").write_bytes(b"\x00garbage\xff" * 10)
    np.save(root / "exists.npy", digits)
    return root


# (command, arguments with {p} for the fixture's directory, what the one line must contain)
CASES = {
    "train: workdir cannot be created": ("mnist", "--steps 2 --workdir /proc/jaxgan-forbidden",
                                         "workdir /proc/jaxgan-forbidden cannot be used"),
    "train: workdir is a file": ("mnist", "--steps 2 --workdir {p}/a_file", "is a file"),
    "train: config.json is garbage": ("mnist", "--steps 2 --workdir {p}/garbage",
                                      "garbage/config.json is not a readable training config"),
    "train: config.json is truncated": ("mnist", "--steps 2 --workdir {p}/truncated",
                                        "truncated/config.json is not a readable"),
    "train: paper preset on the 5,000 embedded digits": (
        "mnist", "--preset paper --data embedded --workdir {p}/paper",
        "rows 0:50000 are not within the 5000 rows"),
    "train: simultaneous update with k = 2": (
        "mnist", "--update simultaneous --d-steps 2 --workdir {p}/new", "--d-steps"),
    "train: Parzen curve without held-out rows": (
        "mnist", "--parzen-samples 100 --workdir {p}/new", "--parzen-samples: needs held-out"),
    "train: paper_sgd with a schedule": (
        "mnist", "--optimizer paper_sgd --lr-schedule linear --workdir {p}/new",
        "--lr-schedule"),
    "train: config.json is not an object": ("mnist", "--steps 2 --workdir {p}/a_list",
                                            "a JSON list, not an object"),
    "sample: no workdir": ("mnist", "sample --workdir {p}/missing --out {p}/o.npy",
                           "not a training workdir"),
    "sample: config.json is garbage": ("mnist", "sample --workdir {p}/garbage --out {p}/o.npy",
                                       "not a readable training config"),
    "sample: output exists": ("mnist", "sample --workdir {p}/good --out {p}/exists.npy",
                              "exists; choose another name or add --overwrite"),
    "sample: output is not .npy": ("mnist", "sample --workdir {p}/good --out {p}/good",
                                   "give a .npy file name"),
    "sample: output not writable": ("mnist", "sample --workdir {p}/good --out /proc/x/o.npy",
                                    "--out /proc/x cannot be written"),
    "evaluate: samples of the wrong shape": ("evaluate", "--samples {p}/wrong_shape.npy",
                                             "C = 1 or 3 (MNIST: [N, 28, 28]), got shape [4, 32, 32, 2]"),
    "evaluate: samples of another size than the data": (
        "evaluate", "--samples {p}/other_size.npy --test-data embedded --test-split train[:100] "
        "--classifier-preset tiny",
        "the samples are images [32, 32], the test data [28, 28]"),
    "evaluate: samples of the wrong dtype": ("evaluate", "--samples {p}/wrong_dtype.npy",
                                             "got dtype complex64"),
    "evaluate: samples out of [0, 1]": ("evaluate", "--samples {p}/out_of_range.npy",
                                        "must lie in [0, 1]"),
    "evaluate: samples with NaN": ("evaluate", "--samples {p}/with_nan.npy", "NaN"),
    "evaluate: samples in an .npz": ("evaluate", "--samples {p}/archive.npz", ".npz archive"),
    "evaluate: samples not a .npy": ("evaluate", "--samples {p}/garbage.npy",
                                     "not a readable .npy file"),
    "evaluate: samples missing": ("evaluate", "--samples {p}/none.npy", "No such file"),
    "evaluate: workdir is a file": ("evaluate", "--workdir {p}/a_file", "not a training workdir"),
    "evaluate: config.json truncated": ("evaluate", "--workdir {p}/truncated",
                                        "not a readable training config"),
    "evaluate: no checkpoint": ("evaluate", "--workdir {p}/no_checkpoint",
                                "has no checkpoint yet"),
    "evaluate: output not writable": ("evaluate", "--reference --output /proc/x/e.json",
                                      "--output /proc/x cannot be written"),
    "evaluate: no test split": ("evaluate", "--workdir {p}/good --test-data embedded "
                                "--classifier-preset tiny --output {p}/e.json",
                                "use tfds or idx:DIR"),
    "evaluate: cache dir is a file": ("evaluate", "--classifier-only --cache-dir {p}/a_file",
                                      "--cache-dir"),
    "evaluate: classifier steps 0": ("evaluate", "--classifier-only --classifier-steps 0",
                                     "--classifier-steps"),
    "toy1d: out_dir is a file": ("toy1d", "--quick --out-dir {p}/a_file", "is a file"),
    "toy1d: out-dir not writable": ("toy1d", "--quick --out-dir /proc/x", "cannot be written"),
    "toy1d: unknown noise": ("toy1d", "--noise cauchy", "--noise"),
    "toy1d: batch size 0": ("toy1d", "--batch-size 0", "--batch-size"),
    "toy1d: not a number": ("toy1d", "--hidden many", "--hidden"),
    "benchmark: output dir is a file": ("benchmark", "--no-torch --output-dir {p}/a_file",
                                        "is a file"),
    "benchmark: batch 0": ("benchmark", "--no-torch --batch 0", "--batch"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_line_and_exit_2_and_touches_nothing(case, place, capsys):
    command, arguments, needle = CASES[case]
    before = {path: os.path.getmtime(path) for path in place.rglob("*")}
    argv = [a.format(p=place) for a in arguments.split()]
    with pytest.raises(SystemExit) as exit_info:
        COMMANDS[command](argv)
    assert exit_info.value.code == 2, case
    err = capsys.readouterr().err.strip().splitlines()
    err = [line for line in err if not line.startswith(("WARNING", "I0000", "W0000"))]
    assert len(err) == 1 and needle in err[0], (case, err)
    after = {path: os.path.getmtime(path) for path in place.rglob("*")}
    assert after == before, case


def test_from_the_shell_a_bad_workdir_is_one_line_without_a_traceback(tmp_path):
    (tmp_path / "config.json").write_text("{ truncated")
    result = subprocess.run(
        [sys.executable, "-m", "experiments.mnist", "--steps", "2", "--workdir", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        result.stderr.strip().splitlines()[-1]
    ] and "not a readable training config" in result.stderr
    assert "Traceback" not in result.stderr


def test_every_config_field_is_a_flag_documented_by_the_config_itself():
    """One mapping for every command: each TrainConfig / toy1d Config field is its kebab-case
    flag, typed by its annotation, with its docstring as help; a non-default value for every
    field given on the command line arrives in the config."""
    import dataclasses

    from experiments.cli import field_docs

    values = dict(
        arch="mlp", g_loss="minimax", d_steps=3, steps=7, batch_size=12, seed=5,
        data="idx:/x", train_split="train[:100]", update="simultaneous", d_loss_scale=0.25,
        optimizer="paper_sgd", g_lr=0.5, d_lr=0.25, adam_b1=0.1,
        lr_schedule="linear", augment_shift=2, latent_dim=9, noise="uniform", ema_decay=None,
        g_widths=(3, 2, 1), d_widths=(4,), kernel_size=3, d_dense=8,
        dtype="bfloat16", parzen_samples=11, log_every=2, sample_every=3,
        checkpoint_every=4, keep_checkpoints=5, num_devices=2, multihost=True,
        strict_versions=True, d_loss="hinge", r1_gamma=0.5, gp_weight=2.5, d_spectral_norm=True,
        d_minibatch_std=2, pack=3, steps_per_call=6, conditional=False, clusters=6,
        recluster_every=8,
    )
    assert set(values) == {f.name for f in dataclasses.fields(TrainConfig)}
    spelled = {None: "none", True: "true"}
    argv = []
    for name, value in values.items():
        text = ",".join(map(str, value)) if isinstance(value, tuple) else spelled.get(value, value)
        argv += ["--" + name.replace("_", "-"), str(text)]
    parsed = mnist.config_from_args(mnist._train_parser().parse_args(argv))
    assert dataclasses.asdict(parsed) == values
    assert mnist._train_parser().parse_args(["--num-devices", "all"]).num_devices is None

    help_text = " ".join(mnist._train_parser().format_help().split())
    docs = field_docs(TrainConfig)
    assert " ".join(docs["parzen_samples"].split()[:8]) in help_text
    toy_docs = field_docs(toy1d.Config)
    assert set(toy_docs) == {f.name for f in dataclasses.fields(toy1d.Config)}
    config = toy1d._parse_flags(["--out-dir", "/tmp/jaxgan-toy", "--d-learning-rate", "0.5",
                                 "--noise-quantiles", "64"])
    assert (config.out_dir, config.d_learning_rate, config.noise_quantiles) == (
        "/tmp/jaxgan-toy", 0.5, 64)


def test_directories_expand_the_home_directory(tmp_path, monkeypatch):
    """``~/x`` is the user's home, not a folder named ``~`` in the working directory (the
    evaluation's default cache directory is written that way)."""
    from experiments.cli import writable_directory

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    assert writable_directory("~/cache", "--cache-dir") == str(tmp_path / "home" / "cache")
    assert (tmp_path / "home" / "cache").is_dir() and not (tmp_path / "~").exists()

"""The MNIST training run end to end: outputs, resume, faults and the command line.

Every run here uses ``TrainConfig.tiny`` (a DCGAN a few hundred parameters wide) on the
embedded digits, so each takes seconds.
"""

import json
import logging
import os
import signal
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from jaxgan import trainer
from jaxgan.config import TrainConfig
from jaxgan.errors import CheckpointError, ConfigError, NonFiniteLossError
from jaxgan.summary import read_metrics
from tests.support import ROOT, tiny_config



def tiny_flags(**overrides):
    """Command-line flags for tiny_config (plus overrides)."""
    config = tiny_config(**overrides)
    flags = []
    for name, value in config.to_json().items():
        flag = "--" + name.replace("_", "-")
        if isinstance(value, (tuple, list)):
            value = ",".join(str(v) for v in value)
        flags += [flag, "none" if value is None else str(value)]
    return flags


def run_cli(*args, timeout=120):
    return subprocess.run(
        [sys.executable, "-m", "experiments.mnist", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=timeout,
    )


def leaves_equal(a, b):
    a, b = jax.tree.leaves(a), jax.tree.leaves(b)
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))


def test_run_writes_everything_a_user_expects(tmp_path):
    result = trainer.train(tiny_config(), tmp_path, progress=False)
    assert result.step == 6 and result.resumed_from is None
    assert int(result.state.step) == 6
    # config.json is the run's config with the auto fields resolved (labelled digits), and
    # says why.
    assert TrainConfig.load(tmp_path / "config.json") == tiny_config(
        conditional=True, clusters=0, r1_gamma=0.0, d_minibatch_std=0)
    assert json.loads((tmp_path / "config.json").read_text())["model"] == (
        "conditioned on the data's labels (auto: the data has labels)")
    records = read_metrics(tmp_path / "metrics.jsonl")
    assert [r["step"] for r in records] == [2, 3, 4, 6]  # log_every=2, checkpoint_every=3
    for record in records:
        assert {"d_loss", "g_loss", "d_real", "d_fake", "steps_per_s"} <= set(record)
        assert all(np.isfinite(v) for v in record.values())
        assert 0 <= record["d_real"] <= 1 and 0 <= record["d_fake"] <= 1
    assert any(name.startswith("events.out.tfevents") for name in os.listdir(tmp_path / "tensorboard"))
    for name in ("step_000003.png", "step_000006.png", "latest.png"):
        with Image.open(tmp_path / "samples" / name) as image:
            # conditional (labelled digits): 10 classes x 10 digits, 2px padding, 2x scale
            assert image.size == (2 * (10 * 30 + 2),) * 2
    assert (tmp_path / "losses.png").exists()
    assert sorted(os.listdir(tmp_path / "checkpoints")) == ["3", "6"]


def test_sample_grids_use_one_fixed_noise_batch(tmp_path):
    """The grid at a step depends only on the parameters: same noise at every save."""
    result = trainer.train(tiny_config(steps=3, conditional=False, clusters=0), tmp_path,
                           progress=False)
    gan = result.gan
    expected_noise = trainer._sample_noise(gan, 0, trainer.SAMPLE_GRID_SIZE)
    again = trainer._sample_noise(gan, 0, trainer.SAMPLE_GRID_SIZE)
    np.testing.assert_array_equal(expected_noise, again)
    params, stats = trainer._sampling_variables(gan, 0)(result.state)
    images = trainer._renderer(gan)(params, stats, expected_noise)
    from jaxgan.images import make_grid

    with Image.open(tmp_path / "samples" / "step_000003.png") as png:
        saved = np.asarray(png)[::2, ::2]
    np.testing.assert_array_equal(saved, make_grid(np.asarray(images, np.float32)))


KILL_SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    from jaxgan import trainer
    from tests.support import tiny_config  # python -c: the checkout (the cwd) is on the path

    def maybe_die(step):
        if step == int(sys.argv[2]):
            os.kill(os.getpid(), signal.SIGKILL)

    config = tiny_config(steps=12, checkpoint_every=4, keep_checkpoints=5)
    trainer.train(config, sys.argv[1], progress=False, on_step=maybe_die)
    """
)


def test_sigkill_and_resume_is_bit_identical_to_an_uninterrupted_run(tmp_path):
    """Killed with SIGKILL at step 10 (after checkpoint 8), resumed: same parameters, same
    data order, same metrics as a run that never stopped."""
    killed = subprocess.run(
        [sys.executable, "-c", KILL_SCRIPT, str(tmp_path / "killed"), "10"],
        cwd=ROOT, capture_output=True, text=True, timeout=180,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    saved = sorted(int(s) for s in os.listdir(tmp_path / "killed" / "checkpoints") if s.isdigit())
    assert saved and max(saved) <= 8

    config = tiny_config(steps=12, checkpoint_every=4, keep_checkpoints=5)
    resumed = trainer.train(config, tmp_path / "killed", progress=False)
    assert resumed.resumed_from == max(saved)
    straight = trainer.train(config, tmp_path / "straight", progress=False)
    assert resumed.resumed_from is not None and straight.resumed_from is None
    for field in ("g_params", "d_params", "g_opt_state", "d_opt_state", "g_ema_params"):
        assert leaves_equal(getattr(resumed.state, field), getattr(straight.state, field)), field
    assert int(resumed.state.step) == int(straight.state.step) == 12

    def records(name):
        return read_metrics(tmp_path / name / "metrics.jsonl")

    drop_timing = lambda rs: [{k: v for k, v in r.items() if k != "steps_per_s"} for r in rs]
    assert drop_timing(records("killed")) == drop_timing(records("straight"))


def test_resume_continues_to_more_steps(tmp_path):
    trainer.train(tiny_config(steps=3), tmp_path, progress=False)
    result = trainer.train(tiny_config(steps=6), tmp_path, progress=False)
    assert result.resumed_from == 3 and result.step == 6
    straight = trainer.train(tiny_config(steps=6), tmp_path / "b", progress=False)
    assert leaves_equal(result.state.g_params, straight.state.g_params)


def test_a_resumed_run_reuses_the_fresh_runs_compiled_step(tmp_path, caplog):
    """A fresh run's state is placed as a restored one is, so resuming compiles the same
    training step: the session's persistent compilation cache (tests/conftest.py) already
    holds it. (Before, an uncommitted fresh state lowered to a second program.) The latent
    size is this test's own, so no other test has compiled either program."""
    config = tiny_config(steps=2, checkpoint_every=2, latent_dim=13)
    trainer.train(config, tmp_path, progress=False)
    with jax.log_compiles(), caplog.at_level(logging.DEBUG, logger="jax"):
        resumed = trainer.train(tiny_config(steps=4, checkpoint_every=2, latent_dim=13),
                                tmp_path, progress=False)
    assert resumed.resumed_from == 2
    assert "Persistent compilation cache hit for 'jit_train_step'" in caplog.text


def snapshot(directory):
    return {
        os.path.relpath(os.path.join(root, name), directory): os.path.getmtime(os.path.join(root, name))
        for root, _, names in os.walk(directory)
        for name in names
    }


@pytest.mark.parametrize("overrides, field", [
    (dict(g_widths=(8,)), "g_widths"),
    (dict(d_widths=()), "d_widths"),
    (dict(kernel_size=0), "kernel_size"),
    (dict(d_dense=0), "d_dense"),
    (dict(d_minibatch_std=-1), "d_minibatch_std"),
    (dict(d_minibatch_std=3), "d_minibatch_std"),  # 3 does not divide the batch of 8
    (dict(d_minibatch_std=4, pack=4), "d_minibatch_std"),  # D judges 2 packs per batch
])
def test_bad_model_settings_name_their_field_and_the_command_line_their_flag(overrides, field):
    """The library speaks of fields; the command line maps them onto flags in one place."""
    from experiments.cli import flag_words

    with pytest.raises(ConfigError) as error:
        tiny_config(**overrides).validate()
    assert error.value.field == field and str(error.value).startswith(field + ": ")
    assert "--" not in str(error.value)
    assert flag_words(error.value, [field]).startswith("--" + field.replace("_", "-") + ": ")


@pytest.mark.parametrize("field, value", [
    ("g_widths", (8, 4)), ("d_widths", (8,)), ("kernel_size", 3), ("d_dense", 64),
    ("d_minibatch_std", 4),
])
def test_dcgan_settings_are_refused_for_the_mlp_pair(field, value):
    TrainConfig(arch="mlp").validate()  # the DCGAN defaults do not get in the way
    with pytest.raises(ConfigError, match="arch mlp has the paper's fixed") as error:
        TrainConfig(arch="mlp", **{field: value}).validate()
    assert error.value.field == field


def test_model_settings_are_what_fixes_the_parameters_shapes():
    """DCGAN widths of None are the modules' defaults (the dcgan preset's); the paper's pair
    has no DCGAN fields."""
    from jaxgan.config import preset

    assert TrainConfig(g_widths=None, d_widths=None).model() == TrainConfig(
        g_widths=(256, 128, 64), d_widths=(64, 128)).model()
    assert TrainConfig(g_widths=None, d_widths=None).model()["g_widths"] == preset(
        "dcgan").g_widths
    assert TrainConfig(arch="mlp").model() == {"arch": "mlp", "latent_dim": 100, "ema_decay": True,
                                               "lr_schedule": "constant", "optimizer": "adam",
                                               "pack": 1, "conditional": None, "clusters": None}
    # What does not shape the state is not in it: the seed, the data, the loss, the rates.
    assert TrainConfig(seed=3, g_loss="minimax", g_lr=1.0, ema_decay=0.5).model() == \
        TrainConfig().model()


def test_resume_with_a_different_model_is_refused_and_touches_nothing(tmp_path):
    trainer.train(tiny_config(), tmp_path, progress=False)
    before = snapshot(tmp_path / "checkpoints")
    config_before = (tmp_path / "config.json").read_text()
    with pytest.raises(ConfigError, match="g_widths") as error:
        trainer.train(tiny_config(g_widths=(8, 8, 4), steps=9), tmp_path, progress=False)
    assert "g_widths" in str(error.value) and "new workdir" in str(error.value)
    assert snapshot(tmp_path / "checkpoints") == before
    assert (tmp_path / "config.json").read_text() == config_before


def test_checkpoint_that_does_not_fit_is_refused_even_without_config(tmp_path):
    """Shapes are checked against the checkpoint itself, not only against config.json."""
    trainer.train(tiny_config(), tmp_path, progress=False)
    os.remove(tmp_path / "config.json")
    before = snapshot(tmp_path / "checkpoints")
    with pytest.raises(CheckpointError, match="does not fit"):
        trainer.train(tiny_config(d_widths=(4, 4), steps=9), tmp_path, progress=False)
    assert snapshot(tmp_path / "checkpoints") == before


def test_non_finite_loss_stops_with_the_step_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    real_step = trainer.train_step

    def poisoned(gan, state, *batch):  # images, and labels for a conditional run
        new_state, metrics = real_step(gan, state, *batch)
        bad = jnp.where(state.step >= 4, jnp.nan, 0.0)  # iteration 5 goes wrong
        return new_state, {**metrics, "g_loss": metrics["g_loss"] + bad}

    monkeypatch.setattr(trainer, "train_step", poisoned)
    with pytest.raises(NonFiniteLossError, match="step 5") as error:
        trainer.train(tiny_config(steps=9), tmp_path, progress=False)
    assert error.value.step == 5
    assert "checkpoint (step 3) is kept" in str(error.value)
    assert sorted(os.listdir(tmp_path / "checkpoints")) == ["3"]


@pytest.mark.parametrize(
    "flags, needle",
    [
        (["--steps", "0"], "--steps"),
        (["--steps", "-5"], "--steps"),
        (["--batch-size", "0"], "--batch-size"),
        (["--arch", "resnet"], "--arch"),
        (["--g-loss", "vanilla"], "--g-loss"),
        (["--g-lr", "0"], "--g-lr"),
        (["--d-lr", "-1e-3"], "--d-lr"),
        (["--d-steps", "two"], "--d-steps"),
    ],
)
def test_invalid_flags_exit_2_with_one_line(flags, needle, tmp_path):
    result = run_cli(*flags, "--workdir", str(tmp_path / "w"))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], result.stderr
    assert "Traceback" not in result.stderr


def test_batch_larger_than_data_and_missing_data_dir_are_one_line_errors(tmp_path):
    big = run_cli(*tiny_flags(batch_size=6000), "--workdir", str(tmp_path / "a"))
    assert big.returncode == 2 and "--batch-size" in big.stderr and "5000" in big.stderr
    assert "Traceback" not in big.stderr
    missing = tmp_path / "no-such-dir"
    gone = run_cli(*tiny_flags(data=f"idx:{missing}"), "--workdir", str(tmp_path / "b"))
    assert gone.returncode == 2 and str(missing) in gone.stderr
    assert "Traceback" not in gone.stderr


def test_cli_trains_then_samples(tmp_path):
    workdir = tmp_path / "run"
    trained = run_cli(*tiny_flags(steps=3), "--workdir", str(workdir), "--no-progress")
    assert trained.returncode == 0, trained.stderr[-2000:]
    summary = json.loads(trained.stdout[trained.stdout.index("{"):])
    assert summary["step"] == 3 and set(summary["final_metrics"]) >= {"d_loss", "g_loss"}
    out = tmp_path / "digits.npy"
    sampled = run_cli("sample", "--workdir", str(workdir), "--num", "10", "--out", str(out))
    assert sampled.returncode == 0, sampled.stderr[-2000:]
    digits = np.load(out)
    assert digits.shape == (10, 28, 28, 1) and digits.dtype == np.float32
    assert digits.min() >= 0 and digits.max() <= 1 and digits.std() > 0
    assert (tmp_path / "digits.png").exists()
    np.testing.assert_array_equal(digits, trainer.sample(workdir, 10, seed=0))
    assert not np.array_equal(digits, trainer.sample(workdir, 10, seed=1))
    nothing = run_cli("sample", "--workdir", str(tmp_path / "nothing"), "--out",
                      str(tmp_path / "other.npy"))
    assert nothing.returncode == 2 and "not a training workdir" in nothing.stderr
    # The paper's Figures 2 and 3 from the same run: 2 rows of 3 samples + the nearest
    # training digit, and 2 walks of 4 images (28 + 2 pixels a cell, 2 around, scaled 2x).
    drawn = run_cli("figures", "--workdir", str(workdir), "--rows", "2", "--columns", "3",
                    "--steps", "4")
    assert drawn.returncode == 0, drawn.stderr[-2000:]
    paths = json.loads(drawn.stdout[drawn.stdout.index("{"):])
    for name in ("figure2", "figure3"):
        with Image.open(paths[name]) as image:
            assert image.size == ((4 * 30 + 2) * 2, (2 * 30 + 2) * 2)
    assert os.path.dirname(paths["figure2"]) == str(workdir / "figures")
    missing = run_cli("figures", "--workdir", str(tmp_path / "nothing"))
    assert missing.returncode == 2 and "not a training workdir" in missing.stderr
    assert not (tmp_path / "nothing").exists()


def test_presets_apply_and_explicit_flags_override_them(tmp_path):
    from jaxgan.config import PRESETS, preset

    assert preset("default") == TrainConfig()
    dcgan = preset("dcgan", steps=7)
    assert dcgan.g_widths == (256, 128, 64) and dcgan.d_widths == (64, 128)
    assert dcgan.steps == 7 and dcgan.batch_size == PRESETS["dcgan"]["batch_size"]
    with pytest.raises(ConfigError, match="unknown preset 'nope'"):
        preset("nope")
    # On the command line: the preset's widths reach the workdir's config.json, with the one
    # flag given on top of them.
    trained = run_cli("--preset", "dcgan", "--steps", "1", "--batch-size", "8", "--data",
                      "embedded", "--latent-dim", "8", "--g-widths", "8,4",
                      "--workdir", str(tmp_path), "--no-progress")
    assert trained.returncode == 0, trained.stderr[-2000:]
    saved = TrainConfig.load(tmp_path / "config.json")
    assert saved.g_widths == (8, 4) and saved.d_widths == (64, 128) and saved.steps == 1
    assert saved.kernel_size == PRESETS["dcgan"]["kernel_size"]


# Placeholders of the documented commands, as a reader fills them in.
_PLACEHOLDERS = {"$M": "/data/mnist", "$D": "/data/digits", "$F": "/data/fashion",
                 "$G": "/data/fashion_flat", "--seed S": "--seed 1"}


def _documented_commands():
    """Every complete ``python -m experiments.mnist`` training command of README.md and
    docs/*.md but the notes (continued lines joined, comments and what follows ``&&``
    dropped; fragments that end at a flag left out), with its file and the section it
    stands in."""
    import glob
    import re
    import shlex

    commands = []
    pages = [p for p in sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))
             if os.path.basename(p) != "notes.md"]  # history: the commands of their day
    for path in [os.path.join(ROOT, "README.md")] + pages:
        section = None
        with open(path) as f:
            text = f.read().replace("\\\n", " ")
        for line in text.splitlines():
            if line.startswith("#"):
                section = line.strip("# `")
            for match in re.finditer(r"python -m experiments\.mnist(?![\w.])([^`|#&]*)", line):
                words = match.group(1)
                for placeholder, value in _PLACEHOLDERS.items():
                    words = words.replace(placeholder, value)
                # (a command quoted inside another, gcloud's --command "...", ends at its quote)
                words = shlex.split(words.split(" # ")[0].strip().removesuffix('"'))
                if words[:1] in (["sample"], ["figures"]) or {"N", "FLAGS"} & set(words) or (
                        words and words[-1].startswith("--")
                        and words[-1] not in ("--multihost", "--no-progress")):
                    continue  # another subcommand's, or a fragment ("--data" in prose)
                commands.append((os.path.relpath(path, ROOT), section, words))
    return commands


def test_every_documented_command_parses_and_validates():
    """Each training command in the README and the docs is one a user can run as written:
    its flags exist, their values parse and the config validates."""
    from experiments.mnist import _train_parser, config_from_args

    commands = _documented_commands()
    assert len(commands) > 40  # the README's and every page's
    for path, section, words in commands:
        try:
            config_from_args(_train_parser().parse_args(words)).validate()
        except (SystemExit, ConfigError) as error:
            raise AssertionError(f"{path} ({section}): {' '.join(words)}: {error}") from None


def test_the_presets_spelled_out_in_the_docs_are_the_presets():
    """docs/training.md spells out each Table 1 preset as flags: the two name one config."""
    from experiments.mnist import _train_parser, config_from_args
    from jaxgan.config import preset

    spelled = {section: words for path, section, words in _documented_commands()
               if path == os.path.join("docs", "training.md") and "--preset" not in words
               and section in ("table1", "table1_conditional")}
    assert set(spelled) == {"table1", "table1_conditional"}
    for name, words in spelled.items():
        config = config_from_args(_train_parser().parse_args(words))
        assert config == preset(name, data="idx:/data/mnist", seed=1), name
    resolved = preset("table1").resolved(has_labels=True, num_examples=50_000)
    assert (resolved.conditional, resolved.clusters, resolved.g_loss) == (False, 50, "nonsaturating")


def test_training_on_a_row_range_of_the_train_split(tmp_path):
    from jaxgan.checkpoint import Checkpointer

    result = trainer.train(tiny_config(steps=1, train_split="train[:100]"), tmp_path,
                           progress=False)
    checkpointer = Checkpointer(tmp_path / "checkpoints")
    try:
        _, _, meta = checkpointer.restore_latest(result.state)
    finally:
        checkpointer.close()
    assert meta["data"]["num_examples"] == 100  # the batches came from those 100 rows
    with pytest.raises(ConfigError, match="train_split"):
        tiny_config(train_split="test").validate()

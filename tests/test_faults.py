"""Never losing a run: stop requests and preemption signals, storage faults on restore,
library-version changes on resume, and the training loop's host reads.

Every run uses ``TrainConfig.tiny`` on the embedded digits (seconds each).
"""

import glob
import inspect
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading

import jax
import numpy as np
import pytest

from jaxgan import checkpoint as checkpoint_lib
from jaxgan import data as data_lib
from jaxgan import trainer
from jaxgan.checkpoint import Checkpointer
from jaxgan.errors import CheckpointError
from jaxgan.summary import read_metrics
from tests.support import ROOT, TINY_FLAGS, assert_same_state, listing, saved_steps, tiny_config

def metrics_without_timing(workdir):
    return [{k: v for k, v in r.items() if k != "steps_per_s"}
            for r in read_metrics(os.path.join(workdir, "metrics.jsonl"))]


def assert_same_metrics_around_a_stop(stopped_dir, straight_dir, stop_step, next_log_step):
    """The logs agree except for the stop's partial window: the stopped run records its stop
    step (the steps since the last record) and then the rest of that window on its own."""
    stopped, straight = metrics_without_timing(stopped_dir), metrics_without_timing(straight_dir)
    assert stop_step in [r["step"] for r in stopped]
    window = (stop_step, next_log_step)
    assert ([r for r in stopped if r["step"] not in window]
            == [r for r in straight if r["step"] not in window])
    assert [r["step"] for r in stopped if r["step"] not in window] != []


# ---------------------------------------------------------------------------------------------
# Stop requests and signals

CONFIG = tiny_config(steps=12, checkpoint_every=4)


@pytest.mark.parametrize("kind", ["event", "callable"])
def test_a_stop_request_checkpoints_that_step_and_the_resumed_run_is_bit_identical(tmp_path, kind):
    event, reached = threading.Event(), []

    def on_step(step):
        reached.append(step)
        if step == 5:
            event.set()

    stop = event if kind == "event" else (lambda: event.is_set())
    stopped = trainer.train(CONFIG, tmp_path / "a", progress=False, on_step=on_step, stop=stop)
    assert stopped.stopped and stopped.step == 5 and reached == [1, 2, 3, 4, 5]
    assert saved_steps(tmp_path / "a") == ["4", "5"]  # the periodic one and the stop's
    assert metrics_without_timing(tmp_path / "a")[-1]["step"] == 5  # the log is flushed

    resumed = trainer.train(CONFIG, tmp_path / "a", progress=False)
    assert resumed.resumed_from == 5 and not resumed.stopped  # no step lost
    straight = trainer.train(CONFIG, tmp_path / "b", progress=False)
    assert_same_state(resumed.state, straight.state)
    assert_same_metrics_around_a_stop(tmp_path / "a", tmp_path / "b", 5, 6)


def test_a_stop_request_is_read_after_every_step_and_on_the_last_is_a_normal_end(tmp_path):
    early = trainer.train(CONFIG, tmp_path / "a", progress=False, stop=lambda: True)
    assert early.stopped and early.step == 1 and saved_steps(tmp_path / "a") == ["1"]
    last = trainer.train(tiny_config(steps=1), tmp_path / "b", progress=False,
                         stop=lambda: True)
    assert not last.stopped and last.step == 1
    assert os.path.exists(tmp_path / "b" / "samples" / "step_000001.png")  # the final grid


# Runs the command line with a hook that sends the process a signal at one step.
SIGNAL_SCRIPT = textwrap.dedent(
    """
    import os, sys
    from experiments import mnist  # python -c: the checkout (the cwd) is on the path
    from jaxgan import trainer

    number, at_step = int(sys.argv[1]), int(sys.argv[2])
    real_train = trainer.train

    def train(*args, **kwargs):
        kwargs["on_step"] = lambda step: step == at_step and os.kill(os.getpid(), number)
        return real_train(*args, **kwargs)

    trainer.train = train
    mnist.main(sys.argv[3:])
    """
)


@pytest.mark.parametrize("number, status", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_mid_run_checkpoints_exits_with_its_status_and_resumes(tmp_path, number, status):
    workdir = str(tmp_path / "run")
    flags = [*TINY_FLAGS, "--workdir", workdir]
    run = subprocess.run([sys.executable, "-c", SIGNAL_SCRIPT, str(int(number)), "7", *flags],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == status, run.stderr[-2000:]
    last = run.stderr.strip().splitlines()[-1]
    name = signal.Signals(number).name
    assert last.startswith(f"stopped by {name} at step 7 of 12: checkpoint 7 is in"), last
    assert saved_steps(workdir) == ["4", "7"]
    assert metrics_without_timing(workdir)[-1]["step"] == 7
    if number != signal.SIGTERM:
        return
    resumed = subprocess.run([sys.executable, "-m", "experiments.mnist", *flags],
                             cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"resumed {workdir} from step 7" in resumed.stderr
    straight = trainer.train(CONFIG, tmp_path / "straight", progress=False)
    _, _, state, step = trainer.load_trained(workdir)
    assert step == 12
    assert_same_state(state, straight.state)
    assert_same_metrics_around_a_stop(workdir, tmp_path / "straight", 7, 8)


# ---------------------------------------------------------------------------------------------
# Restoring: only a checkpoint shown to be corrupt is set aside, and only by training


@pytest.fixture
def trained(tmp_path):
    """A workdir with checkpoints 3 and 6 (and a copy of its config)."""
    trainer.train(tiny_config(), tmp_path / "run", progress=False)
    return tmp_path / "run"


_ZSTD_FRAME = re.compile(re.escape(b"\x28\xb5\x2f\xfd"))  # the magic number that opens a frame


def flip_bytes(step_dir):
    """Inverts 16 bytes in the middle of the largest array chunk (one zstd frame) of the
    largest array file: Orbax reads it silently. Not the middle of the file: the chunks are
    written in no fixed order, so that can land on a frame's header, which zstd rejects
    before the digest is consulted."""
    files = glob.glob(os.path.join(step_dir, "state", "**", "d", "*"), recursive=True)
    path = max(files, key=os.path.getsize)
    with open(path, "rb") as f:
        data = bytearray(f.read())
    starts = [m.start() for m in _ZSTD_FRAME.finditer(data)] or [0]
    start, end = max(zip(starts, starts[1:] + [len(data)]), key=lambda span: span[1] - span[0])
    middle = (start + end) // 2
    data[middle:middle + 16] = bytes(b ^ 0xFF for b in data[middle:middle + 16])
    with open(path, "wb") as f:
        f.write(bytes(data))


def truncate(step_dir):
    for path in glob.glob(os.path.join(step_dir, "**"), recursive=True):
        if os.path.isfile(path):
            with open(path, "r+b") as f:
                f.truncate(os.path.getsize(path) // 2)


@pytest.fixture
def failing_reads(monkeypatch):
    """``fail(n)``: the next n attempts to restore any checkpoint raise an I/O error."""
    real = Checkpointer.restore
    remaining = {"n": 0}

    def restore(self, step, template):
        if remaining["n"] > 0:
            remaining["n"] -= 1
            raise OSError(5, "Input/output error (injected)")
        return real(self, step, template)

    monkeypatch.setattr(Checkpointer, "restore", restore)
    monkeypatch.setattr(checkpoint_lib.time, "sleep", lambda seconds: None)
    return lambda n: remaining.__setitem__("n", n)


def test_a_one_off_read_error_moves_nothing_and_resumes_from_the_newest(trained, failing_reads):
    failing_reads(1)
    result = trainer.train(tiny_config(steps=9), trained, progress=False)
    assert result.resumed_from == 6
    assert saved_steps(trained) == ["3", "6", "9"]


def test_a_read_error_on_every_attempt_moves_nothing_and_names_the_error(trained, failing_reads):
    failing_reads(10**6)
    before = listing(trained / "checkpoints")
    with pytest.raises(CheckpointError) as error:
        trainer.train(tiny_config(steps=9), trained, progress=False)
    message = str(error.value)
    assert "nothing was moved" in message and "step 6" in message
    assert "Input/output error (injected)" in message and "\n" not in message
    assert listing(trained / "checkpoints") == before


@pytest.mark.parametrize("damage", [flip_bytes, truncate])
def test_a_corrupt_newest_is_set_aside_by_training_and_the_previous_used(trained, damage, caplog):
    damage(trained / "checkpoints" / "6")
    result = trainer.train(tiny_config(steps=9), trained, progress=False)
    assert result.resumed_from == 3 and result.step == 9
    assert "checkpoint 6 fails to restore" in caplog.text
    names = saved_steps(trained)  # 6 and 9 saved anew by the resumed run
    assert "3" in names and "6" in names and "9" in names
    assert any(n.startswith("6.corrupt-") for n in names)  # moved aside, not deleted
    straight = trainer.train(tiny_config(steps=9), trained.parent / "straight", progress=False)
    assert_same_state(result.state, straight.state)


def test_sampling_from_a_workdir_with_a_corrupt_newest_moves_nothing(trained, caplog):
    flip_bytes(trained / "checkpoints" / "6")
    before = listing(trained / "checkpoints")
    digits = trainer.sample(trained, 5)
    assert digits.shape == (5, 28, 28, 1)
    assert listing(trained / "checkpoints") == before
    assert "using the older checkpoint 3 (nothing moved)" in caplog.text


def test_the_digest_catches_what_orbax_does_not(trained):
    """Without the digest the flipped bytes would restore silently as other parameters."""
    flip_bytes(trained / "checkpoints" / "6")
    gan = trainer.make_gan(tiny_config(), num_classes=10)
    checkpointer = Checkpointer(trained / "checkpoints")
    try:
        template = gan.init(jax.random.key(0))
        with pytest.raises(ValueError, match="do not match the digest"):
            checkpointer.restore(6, template)
        state, meta = checkpointer.restore(3, template)
    finally:
        checkpointer.close()
    saveable = state.replace(key=jax.random.key_data(state.key))
    assert meta["state_blake2b"] == checkpoint_lib.state_digest(saveable)


def test_state_digest_depends_on_every_byte_and_name():
    tree = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.zeros(2, np.int32)}
    base = checkpoint_lib.state_digest(tree)
    assert base == checkpoint_lib.state_digest({k: v.copy() for k, v in tree.items()})
    changed = {**tree, "a": tree["a"].copy()}
    changed["a"].reshape(-1).view(np.uint8)[5] ^= 1  # one bit
    renamed = {"c": tree["a"], "b": tree["b"]}
    reshaped = {**tree, "a": tree["a"].reshape(3, 2)}
    assert len({base, *(checkpoint_lib.state_digest(t) for t in (changed, renamed, reshaped))}) == 4


# ---------------------------------------------------------------------------------------------
# Library versions recorded in checkpoints


def test_resuming_under_other_library_versions_warns_or_with_strict_refuses(
    trained, monkeypatch, caplog
):
    other = {**trainer.library_versions(), "jaxlib": "0.0.1"}
    monkeypatch.setattr(trainer, "library_versions", lambda: other)
    before = listing(trained / "checkpoints")
    with pytest.raises(CheckpointError, match="other library versions .*jaxlib .* -> 0.0.1"):
        trainer.train(tiny_config(steps=9, strict_versions=True), trained, progress=False)
    assert listing(trained / "checkpoints") == before
    result = trainer.train(tiny_config(steps=9), trained, progress=False)
    assert result.resumed_from == 6
    warnings = [r.getMessage() for r in caplog.records if "library versions" in r.getMessage()]
    assert len(warnings) == 1 and "not be bitwise identical" in warnings[0]


def test_checkpoints_record_the_library_versions(trained):
    import jaxlib

    checkpointer = Checkpointer(trained / "checkpoints")
    try:
        gan = trainer.make_gan(tiny_config(), num_classes=10)
        _, _, meta = checkpointer.restore_latest(gan.init(jax.random.key(0)))
    finally:
        checkpointer.close()
    assert meta["versions"] == {"jax": jax.__version__, "jaxlib": jaxlib.__version__,
                                "numpy": np.__version__}


# ---------------------------------------------------------------------------------------------
# Host transfers in the training loop


def test_the_loop_reads_the_device_only_at_logs_and_grids(tmp_path, monkeypatch):
    """The trainer reads the device with ``jax.device_get``: once per log and once per grid
    (the calls of other modules, Orbax's at checkpoints, not counted)."""
    calls = []
    real = jax.device_get

    def device_get(tree):
        if inspect.currentframe().f_back.f_globals.get("__name__") == "jaxgan.trainer":
            calls.append(1)
        return real(tree)

    monkeypatch.setattr(jax, "device_get", device_get)
    config = tiny_config(steps=24, log_every=4, sample_every=6, checkpoint_every=8)
    trainer.train(config, tmp_path, progress=False)
    steps = range(1, 25)
    logs = [s for s in steps if s % 4 == 0 or s % 8 == 0 or s == 24]
    grids = [s for s in steps if s % 6 == 0 or s == 24]
    assert len(calls) == len(logs) + len(grids) == 6 + 4


def test_the_training_step_takes_no_host_to_device_copy(tmp_path, monkeypatch):
    """The step runs under jax.transfer_guard: a host batch reaching it is an error."""
    def host_batches(iterator, size, sharding):
        class Stream:
            def __next__(self):
                return next(iterator)  # numpy, not put on the device

            def close(self):
                pass

        return Stream()

    monkeypatch.setattr(data_lib, "prefetch_to_device", host_batches)
    with pytest.raises(Exception, match="[Dd]isallowed host-to-device transfer"):
        trainer.train(tiny_config(steps=2), tmp_path, progress=False)

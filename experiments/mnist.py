"""Train a GAN on MNIST (or any image data: ``--data``), or sample from a trained run.

    python -m experiments.mnist                      # the default DCGAN, offline-capable data
    python -m experiments.mnist --arch mlp --g-loss minimax --steps 5000 --workdir runs/mlp
    python -m experiments.mnist sample --workdir runs/mnist --num 1000 --out digits.npy
    python -m experiments.mnist figures --workdir runs/mnist   # the paper's Figures 2 and 3
    python -m experiments.mnist --data folder:~/photos --workdir runs/photos   # your own images
    python -m experiments.mnist --batch-size 256 --num-devices 8      # data parallel, 8 devices
    python -m experiments.mnist --multihost --workdir /shared/runs/mnist  # on every host

Every field of ``jaxgan.config.TrainConfig`` is a flag (``--help``). Rerunning with the same
``--workdir`` resumes from its newest checkpoint. This module only parses the command line;
the work is done by ``jaxgan.trainer``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import signal
import sys
import threading

from experiments.cli import (
    BUSY_STATUS, STORAGE_FULL_STATUS, Parser, add_config_flags, fail, flag, flag_words,
    given_fields, output_file, writable_directory, writing_or_fail,
)
from jaxgan.config import FIELD_CHOICES, PRESETS, TrainConfig, preset
from jaxgan.errors import ConfigError

DEFAULT_WORKDIR = os.path.join("runs", "mnist")
_FIELDS = tuple(f.name for f in dataclasses.fields(TrainConfig))

# What the command line adds to a field's documentation.
_CLI_HELP = {
    "multihost": "; start the same command on every host (Cloud TPU VMs, SLURM and Open MPI "
    "are detected; elsewhere set JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, JAX_PROCESS_ID); "
    "--workdir must be on a file system all hosts share",
}


def _preset_text(name: str) -> str:
    values = PRESETS[name]
    if not values:
        return "the defaults shown above"
    return ", ".join(
        f"{flag(k)} {','.join(map(str, v)) if isinstance(v, tuple) else v}"
        for k, v in values.items()
    )


def _train_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="python -m experiments.mnist",
        description="Train a GAN (Goodfellow et al. 2014) on MNIST, or on any image data "
        "(--data tfds:NAME, idx:DIR, npz:FILE, folder:DIR). "
        "Subcommands: 'sample' and 'figures' (python -m experiments.mnist sample --help).",
        epilog="Presets (each flag given explicitly overrides the preset's value): "
        + "; ".join(f"{name}: {_preset_text(name)}" for name in PRESETS),
    )
    parser.add_argument("--preset", default="default", choices=tuple(PRESETS),
                        help="a named configuration (listed below); default: %(default)s")
    parser.add_argument("--workdir", default=DEFAULT_WORKDIR,
                        help="run directory (resumed if it has checkpoints); default: %(default)s")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar or lines")
    add_config_flags(
        parser, TrainConfig, defaults=TrainConfig(), choices=FIELD_CHOICES,
        none_words={"num_devices": ("all", "none"), "conditional": ("auto", "none"),
                    "clusters": ("auto", "none"), "r1_gamma": ("auto", "none"),
                    "d_minibatch_std": ("auto", "none")},
        extra_help=lambda name: _CLI_HELP.get(name, ""),
    )
    return parser


def _sample_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="python -m experiments.mnist sample",
        description="Write N generated images as float32 [N, H, W, C] in [0, 1] (.npy) and a grid PNG.",
    )
    parser.add_argument("--workdir", default=DEFAULT_WORKDIR, help="a training run's directory")
    parser.add_argument("--num", type=int, default=64, help="number of images")
    parser.add_argument("--out", default="samples.npy", help="output .npy path (a .png grid is written beside it)")
    parser.add_argument("--seed", type=int, default=0, help="noise seed")
    parser.add_argument("--label", type=int, default=None,
                        help="a conditional run's class to draw (default: every class in turn, "
                        "image i of class i mod the number of classes)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace --out (and its .png) if they exist")
    return parser


def _figures_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="python -m experiments.mnist figures",
        description="The paper's Figures 2 and 3 for a trained run: rows of random samples "
        "whose last column is the nearest training image (Euclidean, in pixels) of the sample "
        "beside it (figure2.png), and linear walks between random points of z (figure3.png). "
        "A conditional run draws row i of each as class i mod the number of classes, and "
        "adds walks from class i to class i + 1 at a fixed z (figure3_classes.png).",
    )
    parser.add_argument("--workdir", default=DEFAULT_WORKDIR, help="a training run's directory")
    parser.add_argument("--out-dir", default=None,
                        help="where the PNGs go; default: WORKDIR/figures")
    parser.add_argument("--rows", type=int, default=6, help="rows of each figure")
    parser.add_argument("--columns", type=int, default=6,
                        help="samples per row of figure 2 (the nearest training image is added)")
    parser.add_argument("--steps", type=int, default=10, help="images per walk of figure 3")
    parser.add_argument("--seed", type=int, default=0, help="noise seed")
    parser.add_argument("--data", default=None,
                        help="the training images to search (a --data source); default: the "
                        "run's own --data and --train-split")
    return parser


# Exit statuses of a run stopped by a signal after writing its checkpoint: the shell's own for
# death by that signal (128 + number), so schedulers that retry preempted jobs still do.
STOPPED_STATUS = {signal.SIGTERM: 128 + signal.SIGTERM, signal.SIGINT: 128 + signal.SIGINT}
# Exit statuses (docs/checkpoints.md): 2 a bad flag or input, 1 a non-finite loss, 74 a full
# disk, 75 a workdir another trainer holds, and 128 + the signal for a stop by signal.


class _StopOnSignal:
    """SIGTERM/SIGINT set a stop request (training checkpoints and returns); a second signal
    gets the default behaviour back (exit now; the last checkpoint on disk stays)."""

    def __init__(self):
        self.event = threading.Event()
        self.received: int | None = None
        self._previous = {}

    def __enter__(self) -> "_StopOnSignal":
        for number in STOPPED_STATUS:
            self._previous[number] = signal.signal(number, self._handle)
        return self

    def _handle(self, number, frame) -> None:
        self.received = number
        self.event.set()
        for restored, handler in self._previous.items():
            signal.signal(restored, handler)
        print(f"{signal.Signals(number).name}: finishing this step and writing a checkpoint "
              "(send it again to stop at once)", file=sys.stderr, flush=True)

    def __exit__(self, *exc_info) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The ``TrainConfig`` of parsed training flags: the preset, with the flags given on top."""
    return preset(args.preset, **given_fields(args, TrainConfig))


def run_train(argv: list[str]) -> None:
    args = _train_parser().parse_args(argv)
    from jaxgan import trainer
    from jaxgan.errors import (
        CheckpointError, DataError, NonFiniteLossError, StorageFullError, WorkdirBusyError,
        WorkdirError,
    )

    try:
        config = config_from_args(args).validate()
        if config.multihost:
            from jaxgan.sharding import initialize_multihost

            initialize_multihost()  # before anything else touches the devices
        with _StopOnSignal() as signals:
            result = trainer.train(
                config, args.workdir, progress=not args.no_progress, stop=signals.event
            )
    except (ConfigError, WorkdirError, DataError, CheckpointError) as error:
        fail(flag_words(error, _FIELDS))
    except NonFiniteLossError as error:
        fail(flag_words(error, _FIELDS), status=1)
    except WorkdirBusyError as error:
        fail(str(error), status=BUSY_STATUS)
    except StorageFullError as error:
        fail(str(error), status=STORAGE_FULL_STATUS)
    summary = {
        "workdir": os.path.abspath(args.workdir),
        "step": result.step,
        "resumed_from": result.resumed_from,
        "stopped": result.stopped,
        "seconds": round(result.seconds, 1),
        "seconds_to_first_grid": None
        if result.seconds_to_first_grid is None
        else round(result.seconds_to_first_grid, 1),
        "final_metrics": {k: round(v, 4) for k, v in result.final_metrics.items()},
    }
    print(json.dumps(summary, indent=2))
    if result.stopped:
        name = signal.Signals(signals.received).name if signals.received else "a stop request"
        print(
            f"stopped by {name} at step {result.step} of {config.steps}: checkpoint "
            f"{result.step} is in {os.path.abspath(args.workdir)}; run the same command to "
            "resume", file=sys.stderr,
        )
        sys.exit(STOPPED_STATUS.get(signals.received, 1))


def run_sample(argv: list[str]) -> None:
    args = _sample_parser().parse_args(argv)
    if args.num < 1:
        fail(f"--num: must be a positive integer, got {args.num}")
    if not args.out.endswith(".npy"):
        fail(f"--out {args.out}: give a .npy file name")
    out = output_file(args.out, "--out", overwrite=args.overwrite)
    grid_path = output_file(out[: -len(".npy")] + ".png", "--out", overwrite=args.overwrite)
    from jaxgan import trainer
    from jaxgan.errors import CheckpointError, WorkdirError
    from jaxgan.images import save_grid
    import numpy as np

    try:
        images = trainer.sample(args.workdir, args.num, seed=args.seed, labels=args.label)
        classes = trainer.load_data_info(args.workdir).get("num_classes") or 0
        conditional = TrainConfig.load(os.path.join(args.workdir, "config.json")).conditional
    except (CheckpointError, WorkdirError) as error:
        fail(str(error))
    except ValueError as error:  # a label the run does not have
        fail(f"--label: {error}")
    with writing_or_fail(out) as tmp:
        np.save(tmp, images)
    # Each class in turn: one column per class, so the grid's column j is class j.
    columns = min(classes, 10) if conditional and args.label is None else None
    with writing_or_fail(grid_path) as tmp:
        save_grid(images[: min(len(images), 100)], tmp, columns=columns)
    print(json.dumps({"samples": out, "shape": list(images.shape), "grid": grid_path}))


def run_figures(argv: list[str]) -> None:
    args = _figures_parser().parse_args(argv)
    for name in ("rows", "columns"):
        if getattr(args, name) < 1:
            fail(f"--{name}: must be a positive integer, got {getattr(args, name)}")
    if args.steps < 2:
        fail(f"--steps: must be at least 2, got {args.steps}")
    if not os.path.isfile(os.path.join(args.workdir, "config.json")):
        fail(f"{os.path.abspath(args.workdir)} is not a training workdir (no config.json)")
    out_dir = writable_directory(args.out_dir or os.path.join(args.workdir, "figures"), "--out-dir")
    import jax

    from jaxgan import data as data_lib
    from jaxgan import figures, trainer
    from jaxgan.errors import CheckpointError, DataError, WorkdirError
    from jaxgan.images import save_grid

    try:
        config, gan, draw = trainer.load_sampler(args.workdir)
        training = data_lib.load_data(args.data or config.data, split=config.train_split)
    except (CheckpointError, WorkdirError, DataError) as error:
        fail(str(error))
    import numpy as np

    key = jax.random.key(args.seed)
    classes = gan.num_classes

    def row_labels(per_row: int):  # a conditional run's row i is class i mod classes
        if not classes:
            return None
        return np.repeat(np.arange(args.rows) % classes, per_row).astype(np.int32)

    z = gan.sample_noise(jax.random.fold_in(key, 0), args.rows * args.columns)
    images = draw(z, row_labels(args.columns))
    samples = images.reshape((args.rows, args.columns) + images.shape[1:])
    if training.image_shape != images.shape[1:]:
        fail(f"--data: {training.source} holds images {list(training.image_shape)}, the run "
             f"draws {list(images.shape[1:])}; give the run's training data")
    rows = figures.nearest_neighbor_rows(samples, data_lib.unit_images(training.images))
    figure2 = os.path.join(out_dir, "figure2.png")
    with writing_or_fail(figure2) as tmp:
        save_grid(rows.reshape((-1,) + images.shape[1:]), tmp, columns=args.columns + 1)
    ends = gan.sample_noise(jax.random.fold_in(key, 1), 2 * args.rows)
    walks = figures.linear_interpolation(ends[: args.rows], ends[args.rows :], args.steps)
    figure3 = os.path.join(out_dir, "figure3.png")
    walk_images = draw(walks.reshape((-1, gan.latent_dim)), row_labels(args.steps))
    with writing_or_fail(figure3) as tmp:
        save_grid(walk_images, tmp, columns=args.steps)
    written = {"figure2": figure2, "figure3": figure3}
    if classes:  # walks between classes: one-hot ends mixed linearly, z fixed per row
        first = np.arange(args.rows) % classes
        ends = np.eye(classes, dtype=np.float32)
        mixtures = figures.linear_interpolation(ends[first], ends[(first + 1) % classes],
                                                args.steps)
        z_rows = np.repeat(np.asarray(gan.sample_noise(jax.random.fold_in(key, 2), args.rows)),
                           args.steps, axis=0)
        written["figure3_classes"] = os.path.join(out_dir, "figure3_classes.png")
        class_walks = draw(z_rows, mixtures.reshape((-1, classes)))
        with writing_or_fail(written["figure3_classes"]) as tmp:
            save_grid(class_walks, tmp, columns=args.steps)
    print(json.dumps({**written, "training_images": training.source}))


def _not_a_full_disk(record: logging.LogRecord) -> bool:
    text = record.getMessage()
    return "No space left on device" not in text and "Disk quota exceeded" not in text


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for noisy in ("absl", "orbax", "jax"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # A full disk is reported in one line (StorageFullError); Orbax's threads would also log
    # it, with tracebacks.
    logging.getLogger("absl").addFilter(_not_a_full_disk)
    if argv and argv[0] == "sample":
        run_sample(argv[1:])
    elif argv and argv[0] == "figures":
        run_figures(argv[1:])
    else:
        run_train(argv[1:] if argv and argv[0] == "train" else argv)


if __name__ == "__main__":
    main()

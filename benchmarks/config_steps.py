"""The trainer's own step for named configs, compiled with and without jaxgan's XLA options.

Run ``python -m benchmarks.config_steps`` (``--help`` for options). For the default config and
each preset asked for, it builds the GAN as ``jaxgan.trainer`` does (``trainer.make_gan``, the
config's batch size and steps per call, 500 batches an epoch as on MNIST's 50,000 training
rows), compiles its step twice, with ``jaxgan.compile.compiler_options()`` (as the trainer compiles
it) and with jaxlib's default options, and times both alternately in one process: medians of
``--repeats`` blocks (the same runner as ``benchmarks.train_step``), ms per training step.
``--without NAME`` adds the step compiled with jaxgan's options less that one. Prints one line
per config and option set, after the CPU model and ISA.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

import jaxgan
import jaxgan.compile
from benchmarks.machine import describe_machine
from benchmarks.train_step import (_alternate, _Runner, _stepping,
                                    check_without, options_without)
from experiments.cli import Parser, add_config_flags, fail, given_fields
from jaxgan import config as config_lib
from jaxgan import multistep, trainer

__all__ = ["time_config", "main"]


def time_config(config: config_lib.TrainConfig, *, repeats: int, block_s: float,
                num_classes: int | None = 10, without: tuple[str, ...] = ()) -> dict[str, float]:
    """ms per training step of ``config``'s step under each option set (``num_classes``: the
    data's classes, for a config that resolves to conditional; ``without``: also jaxgan's
    options less each of these)."""
    gan = trainer.make_gan(config, batches_per_epoch=500, num_classes=num_classes)
    calls = config.steps_per_call
    args = (jnp.zeros((config.d_steps, config.batch_size) + gan.data_shape),)
    if gan.num_classes:
        args += (jnp.zeros((config.d_steps, config.batch_size), jnp.int32),)
    step = jaxgan.train_step
    if calls > 1:
        step = multistep.train_steps
        args = tuple(jnp.broadcast_to(a, (calls,) + a.shape) for a in args)
    runners = []
    options = jaxgan.compile.compiler_options()
    option_sets = [("jaxgan.compile.compiler_options()", options), ("jaxlib's default options", {})]
    option_sets += options_without(options, without, prefix="jaxgan.compile.compiler_options()")
    for name, options in option_sets:
        fn = jax.jit(functools.partial(step, gan), donate_argnums=0, compiler_options=options)
        runners.append(_Runner(name, _stepping(fn, gan.init(jax.random.key(0)), *args), calls))
    for runner in runners:  # warm up (compiling on the first call), then size the blocks
        runner.calibrate(block_s)
    _alternate(runners, repeats)
    return {runner.name: 1e3 * float(np.median(runner.times)) for runner in runners}

@dataclasses.dataclass(frozen=True)
class ConfigStepsOptions:
    """What ``python -m benchmarks.config_steps`` times; every field is a flag.

    Attributes:
      preset: the presets to time besides the default config, comma-separated (none: only
        the default).
      repeats: alternating repeats (the median is reported).
      block_s: seconds of work per timed block.
      without: also time the step compiled with jaxgan.compile.compiler_options() less each of
        these options, comma-separated (what one option is worth, timed in the same run).
    """

    preset: tuple[str, ...] = ("paper",)
    repeats: int = 7
    block_s: float = 1.0
    without: tuple[str, ...] = ()


def main(argv=None) -> dict:
    """Parses the command line, times the configs, prints one line per config and options."""
    parser = Parser(prog="python -m benchmarks.config_steps",
                    description=__doc__.split("\n\n")[0])
    add_config_flags(parser, ConfigStepsOptions, defaults=ConfigStepsOptions())
    args = ConfigStepsOptions(**given_fields(parser.parse_args(argv), ConfigStepsOptions))
    unknown = sorted(set(args.preset) - set(config_lib.PRESETS))
    if unknown:
        fail(f"--preset: choose from {', '.join(sorted(config_lib.PRESETS))}, got "
             f"{','.join(unknown)!r}")
    check_without(args.without)
    if args.repeats < 1 or not args.block_s > 0:
        fail("--repeats must be >= 1 and --block-s > 0")
    machine = describe_machine(None)
    print(f"{machine['cpu']} (family {machine['cpu_family']}, model {machine['cpu_model']}; "
          f"ISA: {', '.join(machine['isa'])}), {machine['cores']} cores; jax {machine['jax']}")
    configs = [("default", config_lib.TrainConfig())]
    configs += [(name, config_lib.preset(name)) for name in args.preset]
    results = {}
    for name, config in configs:
        results[name] = time_config(config, repeats=args.repeats, block_s=args.block_s,
                                    without=args.without)
        for options, ms in results[name].items():
            print(f"{name} (arch {config.arch}, batch {config.batch_size}, "
                  f"{config.steps_per_call} step(s) per call): {options}: {ms:.2f} ms/step",
                  flush=True)
    return results


if __name__ == "__main__":
    main()

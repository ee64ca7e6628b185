"""Each convolution of the reference DCGAN pair alone: jaxgan's layer against PyTorch's.

Run ``python -m benchmarks.layers`` (``--help`` for options). For every convolution of
``jaxgan.make_models("dcgan")`` (the generator's three transposed convolutions, the
discriminator's two convolutions, the latter at twice the batch as in the D update on real and
fake) it times, alternately in one process (the runner of ``benchmarks.train_step``), the
layer's forward pass and its forward pass with both gradients (input and parameters) as
jaxgan computes them on this backend (the classes ``DCGANGenerator`` and
``DCGANDiscriminator`` pick, compiled with ``jaxgan.compile.compiler_options()``), and the
same-shaped PyTorch layer in both memory layouts (NCHW and ``channels_last``; PyTorch's usual
symmetric padding, so its function is jaxgan's mirrored, as in ``benchmarks.torch_reference``).
Prints a markdown table after the CPU model and ISA: where a step's gap to PyTorch lies.
"""

from __future__ import annotations

import dataclasses
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

import jaxgan
import jaxgan.compile
from benchmarks.machine import describe_machine, load_torch
from benchmarks.train_step import _alternate, _Runner, reaching_taps
from experiments.cli import Parser, add_config_flags, fail, given_fields
from jaxgan import layers, models

torch = None  # set by main: the PyTorch reference is optional

__all__ = ["dcgan_convolutions", "time_layer", "main"]


def dcgan_convolutions(batch: int) -> list[dict]:
    """The reference DCGAN's convolutions: name, jaxgan module, input shape (NHWC), PyTorch
    constructor arguments, forward FLOPs (2 per multiply-add, SAME-padding taps included,
    transposed convolutions without inserted zeros) and ``reaching_flops``, the same counting
    only the taps that land inside the image (``benchmarks.train_step.reaching_taps``)."""
    generator, discriminator = jaxgan.make_models("dcgan")
    cpu = models._use_cpu_layers(generator.cpu_layers)
    conv_t = layers.ConvTranspose if cpu else nn.ConvTranspose
    conv = layers.Conv if cpu else nn.Conv
    k = generator.kernel_size
    w0, w1, w2 = generator.widths
    found = []
    # G: stride 1 at 7x7, stride 2 to 14x14, stride 2 to the 28x28 image (with a bias).
    for cin, cout, side, stride, bias in ((w0, w1, 7, 1, False), (w1, w2, 7, 2, False),
                                          (w2, 1, 14, 2, True)):
        found.append(dict(
            name=f"G convT {k}x{k} s{stride} {cin}->{cout}, {side}x{side}",
            module=conv_t(cout, (k, k), strides=(stride, stride), padding="SAME",
                          use_bias=bias),
            shape=(batch, side, side, cin),
            torch=("ConvTranspose2d", dict(in_channels=cin, out_channels=cout, kernel_size=k,
                                           stride=stride, padding=k // 2,
                                           output_padding=stride - 1, bias=bias)),
            flops=2.0 * batch * side * side * k * k * cin * cout,
            reaching_flops=2.0 * batch * reaching_taps(side, k, stride, True) ** 2 * cin * cout))
    k = discriminator.kernel_size
    d1, d2 = discriminator.widths
    # D (the first layer is always Flax's own, see DCGANDiscriminator): on real and fake.
    for cin, cout, side, cls in ((1, d1, 28, nn.Conv), (d1, d2, 14, conv)):
        found.append(dict(
            name=f"D conv {k}x{k} s2 {cin}->{cout}, {side}x{side}",
            module=cls(cout, (k, k), strides=(2, 2), padding="SAME"),
            shape=(2 * batch, side, side, cin),
            torch=("Conv2d", dict(in_channels=cin, out_channels=cout, kernel_size=k, stride=2,
                                  padding=k // 2)),
            flops=2.0 * 2 * batch * (side // 2) ** 2 * k * k * cin * cout,
            reaching_flops=2.0 * 2 * batch * reaching_taps(side, k, 2) ** 2 * cin * cout))
    return found


def _jax_runners(layer: dict) -> list[_Runner]:
    module = layer["module"]
    x = jax.random.normal(jax.random.key(0), layer["shape"])
    params = module.init(jax.random.key(1), x)
    y_bar = jnp.ones(jax.eval_shape(module.apply, params, x).shape)
    options = jaxgan.compile.compiler_options()
    forward = jax.jit(module.apply, compiler_options=options)

    def both(p, x, y_bar):  # the output and both gradients, as a training step needs them
        y, pullback = jax.vjp(module.apply, p, x)
        return y, pullback(y_bar)

    backward = jax.jit(both, compiler_options=options)

    def repeat(fn, *args):
        def run(n):
            for _ in range(n):
                out = fn(*args)
            jax.block_until_ready(out)
        return run

    return [_Runner("jaxgan fwd", repeat(forward, params, x)),
            _Runner("jaxgan fwd+bwd", repeat(backward, params, x, y_bar))]


def _torch_runners(layer: dict, channels_last: bool) -> list[_Runner]:
    cls, kwargs = layer["torch"]
    module = getattr(torch.nn, cls)(**kwargs)
    b, h, w, c = layer["shape"]
    x = torch.randn(b, c, h, w)
    if channels_last:
        module = module.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_(True)
    with torch.no_grad():
        y_bar = torch.ones_like(module(x))
    layout = "channels_last" if channels_last else "NCHW"

    def forward(n):
        with torch.no_grad():
            for _ in range(n):
                y = module(x)
        float(y[0, 0, 0, 0])

    def backward(n):
        for _ in range(n):
            module.zero_grad(set_to_none=True)
            x.grad = None
            module(x).backward(y_bar)
        float(x.grad[0, 0, 0, 0])

    return [_Runner(f"PyTorch {layout} fwd", forward),
            _Runner(f"PyTorch {layout} fwd+bwd", backward)]


def time_layer(layer: dict, *, repeats: int, block_s: float, use_torch: bool) -> dict:
    """ms per call of each runner of ``layer`` (medians of ``repeats`` alternating blocks)."""
    runners = _jax_runners(layer)
    if use_torch:
        runners += _torch_runners(layer, False) + _torch_runners(layer, True)
    for runner in runners:
        runner.calibrate(block_s)
    _alternate(runners, repeats)
    return {runner.name: 1e3 * float(np.median(runner.times)) for runner in runners}


def markdown(rows: list[dict], use_torch: bool) -> str:
    """The table: ms per call, jaxgan's GFLOP/s, the share of the taps that land inside the
    image, and PyTorch's best fwd+bwd: its GFLOP/s on those taps and its time over jaxgan's."""
    impls = ["jaxgan fwd", "jaxgan fwd+bwd"]
    if use_torch:
        impls += [f"PyTorch {layout} {part}" for layout in ("NCHW", "channels_last")
                  for part in ("fwd", "fwd+bwd")]
    extra = (["taps inside the image", "best PyTorch fwd+bwd GFLOP/s on those taps",
              "jaxgan vs best PyTorch (fwd+bwd)"] if use_torch else ["taps inside the image"])
    lines = ["| layer | batch | " + " | ".join(f"{i} ms" for i in impls)
             + " | jaxgan fwd+bwd GFLOP/s | " + " | ".join(extra) + " |",
             "| --- | ---: | " + " | ".join("---:" for _ in impls + extra) + " | ---: |"]
    for row in rows:
        t = row["ms"]
        cells = [f"{t[i]:.1f}" for i in impls]
        gflops = 3 * row["flops"] / (t["jaxgan fwd+bwd"] / 1e3) / 1e9  # fwd + 2 gradients
        reaching = row.get("reaching_flops", row["flops"])
        line = (f"| {row['name']} | {row['batch']} | " + " | ".join(cells) + f" | {gflops:.0f} | "
                f"{100 * reaching / row['flops']:.0f}% |")
        if use_torch:
            best = min(t["PyTorch NCHW fwd+bwd"], t["PyTorch channels_last fwd+bwd"])
            line += (f" {3 * reaching / (best / 1e3) / 1e9:.0f} |"
                     f" {best / t['jaxgan fwd+bwd']:.2f}x |")
        lines.append(line)
    return "\n".join(lines) + "\n"


@dataclasses.dataclass(frozen=True)
class LayersOptions:
    """What ``python -m benchmarks.layers`` times; every field is a flag.

    Attributes:
      batch: the batch sizes (G's batch; D's layers see twice as many), comma-separated.
      repeats: alternating repeats per layer (the median is reported).
      block_s: seconds of work per timed block.
      no_torch: skip PyTorch's layers.
    """

    batch: tuple[int, ...] = (64, 256)
    repeats: int = 5
    block_s: float = 0.3
    no_torch: bool = False


def main(argv=None) -> list[dict]:
    """Parses the command line, times every layer, prints the table."""
    parser = Parser(prog="python -m benchmarks.layers", description=__doc__.split("\n\n")[0])
    add_config_flags(parser, LayersOptions, defaults=LayersOptions())
    args = LayersOptions(**given_fields(parser.parse_args(argv), LayersOptions))
    if not args.batch or min(args.batch) < 1:
        fail(f"--batch: every size must be >= 1, got {','.join(map(str, args.batch))!r}")
    if args.repeats < 1 or not args.block_s > 0:
        fail("--repeats must be >= 1 and --block-s > 0")
    global torch
    torch = None if args.no_torch else load_torch()
    use_torch = torch is not None
    if use_torch:
        torch.set_num_threads(os.cpu_count())
    m = describe_machine(os.cpu_count() if use_torch else None)
    print(f"{m['cpu']} (family {m['cpu_family']}, model {m['cpu_model']}; ISA: "
          f"{', '.join(m['isa']) or 'not recorded'}), {m['cores']} cores; jax {m['jax']}, "
          f"torch {m['torch'] or 'not installed'} (threads {m['torch_threads']}); load average "
          f"{[round(x, 2) for x in os.getloadavg()]}", flush=True)
    rows = []
    for batch in args.batch:
        for layer in dcgan_convolutions(batch):
            print(f"timing {layer['name']} at batch {batch} ...", flush=True)
            rows.append(dict(name=layer["name"], batch=batch, flops=layer["flops"],
                             reaching_flops=layer["reaching_flops"],
                             ms=time_layer(layer, repeats=args.repeats, block_s=args.block_s,
                                           use_torch=use_torch)))
    print(markdown(rows, use_torch))
    return rows


if __name__ == "__main__":
    main()

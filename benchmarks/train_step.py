"""Training-step throughput of jaxgan on this machine, against a PyTorch eager reference.

Run ``python -m benchmarks.train_step`` (``--help`` for options). For each architecture pair
(``jaxgan.make_models("mlp")``, ``jaxgan.make_models("dcgan")``) and batch size it measures one
``jaxgan.train_step`` (k = 1 D update then one G update, non-saturating G loss, Adam(2e-4,
b1=0.5) for both players) compiled as the trainer compiles it,
``jax.jit(functools.partial(jaxgan.train_step, gan), donate_argnums=0,
compiler_options=jaxgan.compile.compiler_options())``, the same step compiled with jaxlib's default
options (``--compare-compiler``, on by default), with those options less one
(``--without NAME``: what that option is worth, in the same run), and the same
iteration of ``benchmarks.torch_reference.TorchGAN`` (same architecture, losses and optimizer,
started from the same parameters, checked to compute the same function before timing), for
the DCGAN pair in both of PyTorch's memory layouts (NCHW and ``channels_last``): the
reference is the faster of them in each run.

Method (docs/performance.md): compile and warm up first; then repeat, alternating within
one process, a block of JAX steps (``jax.block_until_ready`` at its end), a block of PyTorch
steps (a host read of the loss at its end), and a 2048x2048 float32 matmul through XLA that
measures the compute roof on the spot, so that load from other processes hits all of them
alike; report medians over repeats. PyTorch's OpenMP threads sleep while they wait
(``OMP_WAIT_POLICY=PASSIVE`` unless the environment sets it): spinning threads collapse when
other processes share the cores. FLOPs are counted analytically from the architecture
(``step_flops``) and cross-checked against XLA's ``cost_analysis()`` of the compiled step.
The report also says what the roof allows: PyTorch's time over the time of the step's FLOPs
at the roof, the most "vs PyTorch" any step computing them could reach, counting every
convolution tap or only the taps that land inside the image (``reaching_taps``).

On a GPU (JAX's default backend) the PyTorch reference runs on CUDA with cuDNN autotuning
and fused Adam, float32 matmuls and convolutions use TensorFloat-32 on both sides (JAX's
default there; ``--precision highest`` for full float32 on both), the roof is an 8192-sided
matmul, ``--profile`` reads the device's kernel times by HLO op, and KIND is the device kind
(``nvidia-h100``). ``--dtype bfloat16`` times mixed precision on either backend (results in
``KIND-bfloat16.*``). ``benchmarks/gpu.sh`` runs the whole accelerator set in one command.

Writes ``benchmarks/results/KIND.json`` and ``benchmarks/results/KIND.md`` (``--output-dir``),
KIND naming the machine kind (``machine_kind``: the CPU model, its widest vector ISA and
its family and model numbers, e.g. ``amd-epyc-avx2-f25m1``), so that runs on one kind never
overwrite another kind's figures, and prints the markdown tables. Without torch (an optional
dependency: ``pip install torch==2.13.0``) it says so and reports jaxgan's figures alone.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime
import functools
import glob
import json
import os
import re
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxgan
import jaxgan.compile
from experiments.cli import Parser, add_config_flags, fail, given_fields, writable_directory
from jaxgan import losses
from jaxgan.multistep import train_steps
from jaxgan.files import atomic_path
from benchmarks.machine import accelerated, describe_machine, load_torch, machine_kind
from benchmarks.report import DEFAULT_OPTIONS_IMPL, markdown

# torch and benchmarks.torch_reference, set by load_torch_reference (main calls it first):
# the PyTorch reference is optional.
torch = torch_reference = None

__all__ = ["step_flops", "measure_roof", "check_reference", "benchmark", "machine_kind", "main"]

ROOF_SIZE = 2048  # the roof's matmul side on the CPU; on an accelerator ACCELERATOR_ROOF_SIZE
ACCELERATOR_ROOF_SIZE = 8192
LEARNING_RATE, BETA1 = 2e-4, 0.5
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
PRECISIONS = ("default", "highest")


def roof_size() -> int:
    """The side of the roof's square matmul: large enough to saturate the backend."""
    return ACCELERATOR_ROOF_SIZE if accelerated() else ROOF_SIZE


# ---------------------------------------------------------------------------------------------
# FLOP count


def reaching_taps(size: int, kernel: int, stride: int, transposed: bool = False) -> int:
    """How many (pixel, kernel tap) pairs of one spatial dimension of a SAME-padded
    convolution land inside the image: what a convolution that skips the padding taps (as
    PyTorch's oneDNN convolutions on the CPU do) multiplies, against ``size_out x kernel`` for
    a convolution (``size`` the input side) or ``size x kernel`` for a transposed one.

    The padding is XLA's (``lax.conv_general_dilated``/``lax.conv_transpose`` with "SAME",
    as Flax's and jaxgan's layers use it): a convolution pads ``max((out - 1) * stride +
    kernel - size, 0)`` in all, the smaller half first; a transposed convolution places input
    pixel ``i`` at ``low + i * stride`` of its zero-dilated, padded input, ``low = kernel - 1``
    when ``stride > kernel - 1``, else ``ceil((kernel + stride - 2) / 2)``, and reaches the
    ``stride * size`` outputs ``low + i * stride - t`` for taps ``t < kernel``.
    """
    if transposed:
        low = kernel - 1 if stride > kernel - 1 else -(-(kernel + stride - 2) // 2)
        return sum(0 <= low + i * stride - t < size * stride
                   for i in range(size) for t in range(kernel))
    out = -(-size // stride)
    low = max((out - 1) * stride + kernel - size, 0) // 2
    return sum(0 <= o * stride - low + t < size for o in range(out) for t in range(kernel))


def _layer_flops(arch: str, generator, discriminator,
                 padding_taps: bool = True) -> tuple[list[float], list[float]]:
    """Forward FLOPs per sample of each G layer and each D layer, input side first.

    2 FLOPs per multiply-add; convolutions count every kernel tap at every output position
    (SAME-padding taps included, the usual count); a transposed convolution counts
    in_pixels x taps x in x out (each input pixel meets each tap once: no inserted zeros).
    With ``padding_taps=False`` a convolution counts only the taps that land inside the image
    (``reaching_taps``). Activations, normalization, losses and the optimizer are not counted.
    """
    if arch == "mlp":
        widths = (100,) + tuple(generator.hidden) + (784,)
        g = [2.0 * a * b for a, b in zip(widths[:-1], widths[1:])]
        units, pieces = discriminator.units, discriminator.pieces
        d_in = (784,) + (units,) * discriminator.num_layers
        d = [2.0 * a * units * pieces for a in d_in[:-1]] + [2.0 * units]
        return g, d
    if arch == "dcgan":

        def taps(side, kernel, stride, transposed=False):  # pixel-tap pairs of a 2-D layer
            if padding_taps:
                return (side if transposed else -(-side // stride)) ** 2 * kernel**2
            return reaching_taps(side, kernel, stride, transposed) ** 2

        w0, w1, w2 = generator.widths
        k = generator.kernel_size
        g = [
            2.0 * 100 * 7 * 7 * w0,  # Dense to the 7x7 projection
            2.0 * taps(7, k, 1, True) * w0 * w1,  # ConvT stride 1, 7x7
            2.0 * taps(7, k, 2, True) * w1 * w2,  # ConvT stride 2, 7x7 -> 14x14
            2.0 * taps(14, k, 2, True) * w2 * 1,  # ConvT stride 2, 14x14 -> 28x28
        ]
        d1, d2 = discriminator.widths
        k = discriminator.kernel_size
        d = [
            2.0 * taps(28, k, 2) * 1 * d1,  # Conv stride 2, 28x28 -> 14x14
            2.0 * taps(14, k, 2) * d1 * d2,  # Conv stride 2, 14x14 -> 7x7
            2.0 * 7 * 7 * d2,  # Dense to one logit
        ]
        return g, d
    raise ValueError(f"unknown arch {arch!r}")


def step_flops(arch: str, generator, discriminator, batch: int, d_steps: int = 1,
               padding_taps: bool = True) -> dict:
    """Analytic FLOPs of one ``jaxgan.train_step`` (what it must compute, not what XLA runs).

    D update: G forward (batch), D forward and backward on the real+fake concatenation
    (2 x batch): kernel gradients of every D layer, input gradients of all but the first.
    G update: G forward, D forward, D input gradients (every layer, none of D's kernel
    gradients), G kernel gradients and input gradients of all but the first layer. A kernel
    gradient and an input gradient each cost one forward pass of their layer.

    ``padding_taps=False``: the convolutions' taps that land inside the image only (the work
    of a convolution that skips the padding, as PyTorch's CPU convolutions do).

    Returns:
      ``{"d_step": ..., "g_step": ..., "total": ...}`` in FLOPs.
    """
    g, d = _layer_flops(arch, generator, discriminator, padding_taps)
    d_update = batch * (sum(g) + 2 * (sum(d) + sum(d) + sum(d[1:])))
    g_update = batch * (sum(g) + sum(d) + sum(d) + sum(g) + sum(g[1:]))
    return {
        "d_step": d_steps * d_update,
        "g_step": g_update,
        "total": d_steps * d_update + g_update,
    }


def _xla_flops(compiled) -> float | None:
    try:
        analysis = compiled.cost_analysis()
        if isinstance(analysis, (list, tuple)):
            analysis = analysis[0]
        return float(analysis["flops"])
    except Exception:  # noqa: BLE001 - cost analysis is best effort
        return None


# ---------------------------------------------------------------------------------------------
# Timing


def measure_roof(size: int | None = None, dtype=jnp.float32):
    """A callable that runs one ``size`` x ``size`` matmul in ``dtype`` through XLA and waits
    (``size``: ``roof_size()`` where ``None``).

    Returns ``(run, flops)``: ``run()`` does the matmul; ``flops = 2 * size**3``.
    """
    size = size or roof_size()
    a = jax.random.normal(jax.random.key(0), (size, size), dtype)
    b = jax.random.normal(jax.random.key(1), (size, size), dtype)
    matmul = jax.jit(jnp.matmul)
    jax.block_until_ready(matmul(a, b))

    def run():
        jax.block_until_ready(matmul(a, b))

    return run, 2.0 * size**3


def _torch_wait(device) -> None:
    """Waits for the work queued on a torch device (the CPU runs it synchronously)."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def _torch_dtype(name: str):
    """The torch dtype of a ``DTYPES`` name: ``None`` (torch's float32 default) or e.g.
    ``torch.bfloat16``."""
    return None if name == "float32" else getattr(torch, name)


def _torch_roof(size: int | None = None, device=None, dtype=None) -> float:
    size = size or roof_size()
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    torch.mm(a, b)
    _torch_wait(a.device)
    times = []
    for _ in range(5):
        start = time.perf_counter()
        torch.mm(a, b)
        _torch_wait(a.device)
        times.append(time.perf_counter() - start)
    return 2.0 * size**3 / float(np.median(times)) / 1e9


class _Runner:
    """A named block of work: ``run(n)`` does n steps (or calls) and waits for them."""

    def __init__(self, name, run, steps_per_call=1):
        self.name, self.run, self.steps_per_call = name, run, steps_per_call
        self.calls = 1
        self.times: list[float] = []  # seconds per step, one per repeat

    def warm_up(self, min_s: float = 1.0, min_calls: int = 3, max_s: float = 30.0):
        """Runs until the time per call settles (PyTorch needs tens of steps: its allocator
        adapts to the step's buffers) and at least ``min_s`` and ``min_calls`` have passed."""
        start, calls, previous = time.perf_counter(), 0, None
        while True:
            t = time.perf_counter()
            self.run(1)
            once = time.perf_counter() - t
            calls += 1
            settled = previous is not None and abs(once - previous) <= 0.15 * previous
            elapsed = time.perf_counter() - start
            if (calls >= min_calls and elapsed >= min_s and settled) or elapsed >= max_s:
                return once
            previous = once

    def calibrate(self, target_s: float):
        once = self.warm_up()
        self.calls = max(1, int(round(target_s / max(once, 1e-6))))

    def time_block(self):
        start = time.perf_counter()
        self.run(self.calls)
        elapsed = time.perf_counter() - start
        self.times.append(elapsed / (self.calls * self.steps_per_call))


def _alternate(runners, repeats: int):
    for repeat in range(repeats):
        order = runners if repeat % 2 == 0 else runners[::-1]  # cancels drift within a pair
        for runner in order:
            runner.time_block()


# ---------------------------------------------------------------------------------------------
# The PyTorch reference: equivalence check


def _global_norm(tree) -> float:
    return float(np.sqrt(sum(np.sum(np.square(np.asarray(x, np.float64)))
                             for x in jax.tree.leaves(tree))))


def check_reference(arch: str, gan: jaxgan.GAN, state: jaxgan.GANState, batch: int = 4,
                    channels_last: bool = False) -> dict:
    """Checks that ``TorchGAN`` (in the given memory layout) computes jaxgan's function, from
    jaxgan's parameters.

    Compares, on one fixed batch: G(z) in training mode (batch statistics), D's logits,
    the D loss (-V) and the G loss, and the global norms of their gradients (norms do not
    depend on the parameter layout). D runs without dropout (evaluation mode) so that both
    sides draw nothing at random. Both sides compute in full float32 (JAX's matmuls at
    ``"highest"`` precision, PyTorch on the CPU), whatever the timed runs use: this checks
    the function, not the arithmetic.

    Returns:
      the largest relative difference of each compared quantity.
    """
    rng = np.random.default_rng(0)
    z = rng.standard_normal((batch, gan.latent_dim)).astype(np.float32)
    real = np.asarray(gan.from_unit_interval(rng.uniform(0, 1, (batch,) + gan.data_shape)),
                      np.float32)
    batch_stats = state.g_batch_stats

    def fake(g_params):
        images, _ = gan.generate_train(g_params, jnp.asarray(z), batch_stats=batch_stats)
        return images

    def d_loss(d_params):
        logits = gan.discriminate(d_params, jnp.concatenate([jnp.asarray(real),
                                                             fake(state.g_params)]), train=False)
        return losses.cross_entropy_discriminator_loss(
            real_logits=logits[:batch], fake_logits=logits[batch:])

    def g_loss(g_params):
        logits = gan.discriminate(state.d_params, fake(g_params), train=False)
        return losses.nonsaturating_generator_loss(fake_logits=logits)

    with jax.default_matmul_precision("highest"):
        jax_d, jax_d_grads = jax.value_and_grad(d_loss)(state.d_params)
        jax_g, jax_g_grads = jax.value_and_grad(g_loss)(state.g_params)
        jax_images = np.asarray(fake(state.g_params))
        jax_logits = np.asarray(gan.discriminate(state.d_params, jnp.asarray(real),
                                                 train=False))

    reference = torch_reference.TorchGAN(arch, batch_norm="BatchNorm_0" in state.g_params,
                                         channels_last=channels_last)
    reference.load_jax_params(state.g_params, state.d_params, batch_stats)
    reference.discriminator.eval()
    torch_z = torch.from_numpy(z)
    torch_real = torch_reference.jax_images_to_torch(real, channels_last)
    with torch.no_grad():
        torch_images = reference.generator(torch_z).numpy()
        torch_logits = reference.discriminator(torch_real).numpy()
    torch_d = reference.d_loss(torch_real, torch_z)
    torch_d.backward()
    torch_d_norm = _global_norm([p.grad.numpy() for p in reference.discriminator.parameters()])
    reference.discriminator.requires_grad_(False)
    torch_g = reference.g_loss(torch_z)
    torch_g.backward()
    torch_g_norm = _global_norm([p.grad.numpy() for p in reference.generator.parameters()])

    def rel(a, b):
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        return float(np.max(np.abs(a - b)) / max(np.max(np.abs(a)), 1e-12))

    return {
        "g_images": rel(torch_reference.jax_images_to_torch(jax_images).numpy(), torch_images),
        "d_logits": rel(jax_logits, torch_logits),
        "d_loss": rel(jax_d, torch_d.item()),
        "g_loss": rel(jax_g, torch_g.item()),
        "d_grad_norm": rel(_global_norm(jax_d_grads), torch_d_norm),
        "g_grad_norm": rel(_global_norm(jax_g_grads), torch_g_norm),
    }


# ---------------------------------------------------------------------------------------------
# The benchmark


def make_gan(arch: str, dtype=jnp.float32) -> jaxgan.GAN:
    """The benchmarked GAN: ``make_models(arch, dtype=dtype)`` (``jnp.bfloat16``: mixed
    precision, parameters and Adam in float32), Adam(2e-4, b1=0.5) for both, k = 1."""
    generator, discriminator = jaxgan.make_models(arch, dtype=dtype)
    return jaxgan.GAN(
        generator,
        discriminator,
        optax.adam(LEARNING_RATE, b1=BETA1),
        optax.adam(LEARNING_RATE, b1=BETA1),
        g_loss="nonsaturating",
        d_steps=1,
    )




def _stepping(compiled, state, *batch):
    """``run(n)``: n calls of a compiled, donating step from ``state`` on (on ``batch``: the
    images, and a conditional GAN's labels), waiting for the last; each call continues from
    the state the previous one left."""
    holder = {"state": state}

    def run(n):
        s = holder["state"]
        for _ in range(n):
            s, _ = compiled(s, *batch)
        jax.block_until_ready(s)
        holder["state"] = s

    return run


# PyTorch's memory layouts timed per pair (channels_last: the DCGAN's convolutions NHWC); the
# fastest in each run is the reference.
TORCH_LAYOUTS = {"mlp": (False,), "dcgan": (False, True)}


def _torch_impl(arch: str, channels_last: bool) -> str:
    if len(TORCH_LAYOUTS[arch]) == 1:
        return "PyTorch eager"
    return "PyTorch eager, " + ("channels_last" if channels_last else "NCHW")


def _torch_stepping(arch, state, real, channels_last, device=None, dtype=None):
    """``run(n)``: n steps of ``TorchGAN`` from jaxgan's initial parameters, on ``real``, on
    ``device`` in ``dtype`` (see ``TorchGAN``)."""
    reference = torch_reference.TorchGAN(arch, batch_norm="BatchNorm_0" in state.g_params,
                                         channels_last=channels_last, device=device,
                                         dtype=dtype)
    reference.load_jax_params(state.g_params, state.d_params, state.g_batch_stats)
    torch_real = torch_reference.jax_images_to_torch(real, channels_last, device)

    def run(n):
        for _ in range(n):
            d_loss, _ = reference.train_step(torch_real)
        d_loss.item()  # waits for the last step, on any device

    return run


def options_without(options: dict, names, prefix: str = "jaxgan") -> list[tuple[str, dict]]:
    """``(f"{prefix} without NAME", options less NAME)`` for each of ``names`` that
    ``options`` has (``--without``; a name this backend's options lack has nothing to leave
    out)."""
    return [(f"{prefix} without {name}", {k: v for k, v in options.items() if k != name})
            for name in names if name in options]


def check_without(names) -> None:
    """Exits with a one-line error when ``--without`` names an option jaxgan never sets."""
    unknown = sorted(set(names) - set(jaxgan.compile.CPU_OPTIONS))
    if unknown:
        fail(f"--without: not one of jaxgan's compiler options "
             f"({', '.join(jaxgan.compile.CPU_OPTIONS)}), got {','.join(unknown)!r}")


def benchmark(arch: str, batch: int, *, repeats: int, block_s: float, roof, use_torch: bool,
              fused: int = 0, compare_compiler: bool = False, dtype: str = "float32",
              torch_device=None, without: tuple[str, ...] = ()) -> list[dict]:
    """Times jaxgan's step (and PyTorch's, ``fused`` steps per call, with
    ``compare_compiler`` the step compiled without ``jaxgan.compile.compiler_options()``, and for
    each name in ``without`` the step compiled with those options less that one) for one
    config, both in ``dtype`` (a key of ``DTYPES``; PyTorch on ``torch_device``).

    Returns one record per implementation: steps/s, images/s, GFLOP/s, compile time.
    """
    gan = make_gan(arch, DTYPES[dtype])
    state = gan.init(jax.random.key(0))
    rng = np.random.default_rng(0)
    real = jnp.asarray(gan.from_unit_interval(
        rng.uniform(0, 1, (batch,) + gan.data_shape).astype(np.float32)))

    options = jaxgan.compile.compiler_options()
    step = jax.jit(functools.partial(jaxgan.train_step, gan), donate_argnums=0,
                   compiler_options=options)
    start = time.perf_counter()
    compiled = step.lower(state, real).compile()
    compile_s = time.perf_counter() - start
    flops = step_flops(arch, gan.generator, gan.discriminator, batch)
    reaching = step_flops(arch, gan.generator, gan.discriminator, batch, padding_taps=False)
    xla_flops = _xla_flops(compiled)

    runners, records = [], []
    runners.append(_Runner("jaxgan", _stepping(compiled, state, real)))
    compile_times = {"jaxgan": compile_s}
    variants = [(DEFAULT_OPTIONS_IMPL, {})] if compare_compiler and options else []
    variants += options_without(options, without)
    for impl, variant in variants:  # the same step under other option sets
        variant_state = gan.init(jax.random.key(0))
        start = time.perf_counter()
        variant_step = jax.jit(functools.partial(jaxgan.train_step, gan), donate_argnums=0,
                               compiler_options=variant).lower(variant_state, real).compile()
        compile_times[impl] = time.perf_counter() - start
        runners.append(_Runner(impl, _stepping(variant_step, variant_state, real)))
    fused_compile_s = None
    if fused > 1:
        multi = jax.jit(functools.partial(train_steps, gan), donate_argnums=0,
                        compiler_options=options)
        reals = jnp.broadcast_to(real, (fused,) + real.shape)
        fused_state = gan.init(jax.random.key(0))
        start = time.perf_counter()
        multi_compiled = multi.lower(fused_state, reals).compile()
        fused_compile_s = time.perf_counter() - start
        runners.append(_Runner(f"jaxgan, {fused} steps per call (multistep)",
                               _stepping(multi_compiled, fused_state, reals), fused))
    torch_runners = []
    for channels_last in (TORCH_LAYOUTS[arch] if use_torch else ()):
        torch_runners.append(_Runner(_torch_impl(arch, channels_last), _torch_stepping(
            arch, state, np.asarray(real), channels_last, torch_device, _torch_dtype(dtype))))
    runners += torch_runners
    roof_runner = _Runner("roof", lambda n: [roof[0]() for _ in range(n)])
    runners.append(roof_runner)

    for runner in runners:  # warm up, then size each block to about block_s
        runner.calibrate(block_s)
    _alternate(runners, repeats)

    roof_gflops = roof[1] / float(np.median(roof_runner.times)) / 1e9
    # The reference is PyTorch at its best: its fastest layout in this run.
    torch_step_s = min((float(np.median(r.times)) for r in torch_runners), default=None)
    for runner in runners[:-1]:
        step_s = float(np.median(runner.times))
        gflops = flops["total"] / step_s / 1e9
        records.append({
            "arch": arch,
            "batch": batch,
            "dtype": dtype,
            "impl": runner.name,
            "steps_per_s": 1.0 / step_s,
            "ms_per_step": 1e3 * step_s,
            "ms_per_step_min": 1e3 * float(np.min(runner.times)),
            "images_per_s": batch / step_s,
            "vs_pytorch": (torch_step_s / step_s) if torch_step_s else None,
            "gflop_per_step": flops["total"] / 1e9,
            "gflop_per_step_reaching": reaching["total"] / 1e9,
            "pytorch_ms_per_step": 1e3 * torch_step_s if torch_step_s else None,
            "xla_gflop_per_step": (xla_flops / 1e9 if xla_flops is not None
                                   and runner.name == "jaxgan" else None),
            "gflops": gflops,
            "roof_gflops": roof_gflops,
            "roof_fraction": gflops / roof_gflops,
            "compile_s": compile_times.get(
                runner.name, fused_compile_s if "multistep" in runner.name else None),
            "repeats": len(runner.times),
            "steps_per_block": runner.calls * runner.steps_per_call,
        })
    return records


# ---------------------------------------------------------------------------------------------
# Profile: where the time of one compiled step goes


def _describe_hlo(hlo_text: str) -> dict[str, str]:
    """Maps each HLO instruction name to 'conv|dot <shape> <window>' of what it computes."""
    bodies: dict[str, list[str]] = collections.defaultdict(list)
    defs: dict[str, str] = {}
    computation = None
    for line in hlo_text.splitlines():
        header = re.match(r"^\s*(?:ENTRY\s+)?%?([\w.\-]+)\s*\(.*\{\s*$", line)
        if header and "=" not in line.split("(")[0]:
            computation = header.group(1)
            continue
        instruction = re.match(r"^\s*(?:ROOT\s+)?%([\w.\-]+)\s*=\s*(.*)$", line)
        if instruction and computation:
            bodies[computation].append(instruction.group(2))
            defs[instruction.group(1)] = instruction.group(2)
    described = {}
    for name, text in defs.items():
        core = text
        called = re.search(r"calls=%([\w.\-]+)", text)
        if called:
            inner = [t for t in bodies.get(called.group(1), [])
                     if "convolution(" in t or " dot(" in t]
            if inner:
                core = inner[0]
        shape = core.split(" ")[0]
        kind = ("conv" if "convolution(" in core else "dot" if " dot(" in core else "other")
        window = re.search(r"window=\{[^}]*\}", core)
        described[name] = f"{kind} {shape} {window.group(0) if window else ''}".strip()
    return described


def _op_times(data, accelerated: bool, iters: int) -> dict[str, float]:
    """Milliseconds per step of each HLO op in a ``jax.profiler.ProfileData`` trace.

    CPU: the events of XLA:CPU's thunks on the threads of its pool (``tf_XLAEigen``), by op
    name. Accelerator: the device's kernels (the planes named ``/device:GPU:N`` or
    ``/device:TPU:N``), by the HLO op each ran for (the event's ``hlo_op`` statistic, else
    the kernel's name).
    """
    per_op: dict[str, float] = collections.defaultdict(float)
    for plane in data.planes:
        if accelerated:
            if not re.match(r"/device:(GPU|TPU):\d+", plane.name):
                continue
            for line in plane.lines:
                for event in line.events:
                    stats = dict(event.stats)
                    per_op[str(stats.get("hlo_op") or event.name)] += (
                        event.duration_ns / 1e6 / iters)
            continue
        for line in plane.lines:
            if not line.name.startswith("tf_XLAEigen"):
                continue
            for event in line.events:
                if event.name.startswith(("ThunkExecutor", "Slinky", "ThreadpoolListener")):
                    continue
                per_op[event.name] += event.duration_ns / 1e6 / iters
    return per_op


def profile_step(arch: str, batch: int, *, iters: int = 5, top: int = 15,
                 dtype: str = "float32") -> dict:
    """Per-HLO-op time of one compiled ``train_step`` (a jax.profiler trace).

    On the CPU, times are the wall time of each op on the thread that ran it (XLA:CPU's
    thunks), summed over threads and averaged over ``iters`` steps; ops that run
    concurrently on the two cores both count. Work that XLA hands to Eigen's own kernels
    (its convolutions, with the YNNPACK library kept to single dots) runs as unnamed tasks
    of the thread pool: the trace does not attribute it to an op, so ``wall_ms`` (the step's
    wall time during the trace) is reported beside the named ops' total. On a GPU or TPU
    they are the device's kernel times, by the HLO op each kernel ran for; the gap to
    ``wall_ms`` is then time the device sat idle (host work, dispatch, synchronization).
    """
    gan = make_gan(arch, DTYPES[dtype])
    state = gan.init(jax.random.key(0))
    real = jnp.zeros((batch,) + gan.data_shape, jnp.float32)
    # Compiled as the trainer and the timed rows compile it: the state donated, so that the
    # profile shows the copies that donation's in-place updates may cost.
    step = jax.jit(functools.partial(jaxgan.train_step, gan), donate_argnums=0,
                   compiler_options=jaxgan.compile.compiler_options())
    compiled = step.lower(state, real).compile()
    described = _describe_hlo(compiled.as_text())
    for _ in range(2):
        state = jax.block_until_ready(compiled(state, real))[0]
    directory = tempfile.mkdtemp(prefix="jaxgan-profile-")
    jax.profiler.start_trace(directory)
    start = time.perf_counter()
    for _ in range(iters):
        state = jax.block_until_ready(compiled(state, real))[0]
    wall_ms = 1e3 * (time.perf_counter() - start) / iters
    jax.profiler.stop_trace()
    path = glob.glob(os.path.join(directory, "**", "*.xplane.pb"), recursive=True)[0]
    data = jax.profiler.ProfileData.from_file(path)
    per_op = _op_times(data, accelerated(), iters)
    total = sum(per_op.values())
    by_kind: dict[str, float] = collections.defaultdict(float)
    for name, ms in per_op.items():
        by_kind[described.get(name, "other").split(" ")[0]] += ms
    ops = sorted(per_op.items(), key=lambda item: -item[1])[:top]
    return {
        "arch": arch,
        "batch": batch,
        "dtype": dtype,
        "backend": jax.default_backend(),
        "total_ms": total,
        "wall_ms": wall_ms,
        "by_kind_ms": dict(by_kind),
        "top_ops": [{"op": name, "ms": ms, "what": described.get(name, "")} for name, ms in ops],
    }


@dataclasses.dataclass(frozen=True)
class BenchmarkOptions:
    """What ``python -m benchmarks.train_step`` measures; every field is a flag
    (``--kebab-case``), through the same mapping as the training config's.

    Attributes:
      arch: the architecture pairs to time, comma-separated: mlp, dcgan.
      batch: the batch sizes, comma-separated.
      repeats: alternating repeats per configuration (the median is reported).
      block_s: seconds of work per timed block.
      quick: batch 64 only, 3 repeats of short blocks.
      fused: also time jaxgan.multistep.train_steps with this many steps per call for the MLP pair
        (0: off).
      torch_threads: torch.set_num_threads (none: all cores, like XLA).
      no_torch: skip the PyTorch reference.
      compare_compiler: also time the step compiled with jaxlib's default XLA options
        instead of jaxgan.compile.compiler_options() (where those are not empty).
      without: also time the step compiled with jaxgan.compile.compiler_options() less each of
        these options, comma-separated (what one option is worth, timed in the same run).
      profile: add a per-op profile of each jaxgan step to the report.
      dtype: the computation dtype of both sides: float32, or bfloat16 (mixed precision:
        jaxgan's models with dtype=bfloat16, PyTorch under torch.autocast; parameters and
        Adam in float32 on both). A bfloat16 run writes KIND-bfloat16.json/md.
      precision: float32 matmuls and convolutions on both sides: "default" (each library's
        fast mode, made the same: on NVIDIA GPUs both use TensorFloat-32, JAX's default,
        which PyTorch is set to; on the CPU there is none) or "highest" (full float32 on both).
      output_dir: where KIND.json and KIND.md go (none: benchmarks/results).
    """

    arch: tuple[str, ...] = ("mlp", "dcgan")
    batch: tuple[int, ...] = (64, 256)
    repeats: int = 9
    block_s: float = 0.5
    quick: bool = False
    fused: int = 10
    torch_threads: int | None = None
    no_torch: bool = False
    compare_compiler: bool = True
    without: tuple[str, ...] = ()
    profile: bool = False
    dtype: str = "float32"
    precision: str = "default"
    output_dir: str | None = None


def load_torch_reference() -> None:
    """Imports torch (``benchmarks.machine.load_torch``) and the PyTorch reference into this
    module, where torch is installed."""
    global torch, torch_reference
    torch = load_torch()
    if torch is not None:
        from benchmarks import torch_reference as reference

        torch_reference = reference


def main(argv=None) -> dict:
    """Parses the command line, runs the benchmark, prints and writes the results."""
    load_torch_reference()
    parser = Parser(prog="python -m benchmarks.train_step", description=__doc__.split("\n\n")[0])
    add_config_flags(parser, BenchmarkOptions, defaults=BenchmarkOptions(),
                     choices={"dtype": tuple(DTYPES), "precision": PRECISIONS})
    args = BenchmarkOptions(**given_fields(parser.parse_args(argv), BenchmarkOptions))
    unknown = sorted(set(args.arch) - {"mlp", "dcgan"})
    if unknown or not args.arch:
        fail(f"--arch: choose from mlp, dcgan (comma-separated), got {','.join(args.arch)!r}")
    check_without(args.without)
    threads = args.torch_threads if args.torch_threads is not None else os.cpu_count()
    for flag, values, low in (("--batch", args.batch or (0,), 1), ("--repeats", [args.repeats], 1),
                              ("--fused", [args.fused], 0), ("--torch-threads", [threads], 1)):
        if min(values) < low:
            fail(f"{flag}: must be >= {low}, got {min(values)}")
    if not args.block_s > 0:
        fail(f"--block-s: must be > 0, got {args.block_s}")
    output_dir = writable_directory(
        args.output_dir or os.path.join(os.path.dirname(os.path.abspath(__file__)), "results"),
        "--output-dir",
    )
    args = dataclasses.replace(args, output_dir=output_dir, torch_threads=threads)
    if args.quick:
        args = dataclasses.replace(args, batch=(64,), repeats=3, block_s=0.2)

    use_torch = torch is not None and not args.no_torch
    if torch is None and not args.no_torch:
        print("torch is not installed (pip install torch==2.13.0): "
              "reporting jaxgan's figures only.")
    torch_device = None
    if use_torch and accelerated():
        if jax.default_backend() == "gpu" and torch.cuda.is_available():
            torch_device = torch.device("cuda", 0)
        else:
            print(f"JAX runs on {jax.default_backend()} but this torch has no such device "
                  f"(torch {torch.__version__}): reporting jaxgan's figures only.")
            use_torch = False
    if args.precision == "highest":
        jax.config.update("jax_default_matmul_precision", "highest")
    if use_torch:
        torch.set_num_threads(args.torch_threads)
        if torch_device is not None:
            torch.backends.cudnn.benchmark = True  # PyTorch at its best: tuned conv kernels
            fast = args.precision == "default"  # TF32 as JAX's default on these GPUs
            torch.backends.cuda.matmul.allow_tf32 = fast
            torch.backends.cudnn.allow_tf32 = fast
    machine = describe_machine(args.torch_threads if use_torch else None)
    machine["load_before"] = [round(x, 2) for x in os.getloadavg()]
    machine["precision"] = {
        "option": args.precision,
        "jax_default_matmul_precision": jax.config.jax_default_matmul_precision,
    }
    if torch_device is not None:
        machine["torch_device"] = torch.cuda.get_device_name(torch_device)
        machine["precision"].update(
            torch_matmul_tf32=torch.backends.cuda.matmul.allow_tf32,
            torch_cudnn_tf32=torch.backends.cudnn.allow_tf32,
            torch_cudnn_benchmark=torch.backends.cudnn.benchmark)

    roof = measure_roof(dtype=DTYPES[args.dtype])
    results = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": machine,
        "settings": dataclasses.asdict(args),
        "roof_size": roof_size(),
        "records": [],
        "reference_check": {},
    }
    for arch in args.arch:
        if use_torch:
            gan = make_gan(arch)
            for channels_last in TORCH_LAYOUTS[arch]:
                check = check_reference(arch, gan, gan.init(jax.random.key(0)),
                                        channels_last=channels_last)
                name = _torch_impl(arch, channels_last).replace("PyTorch eager", arch)
                results["reference_check"][name] = check
                if max(check.values()) > 1e-3:
                    raise RuntimeError(f"the PyTorch reference ({name}) does not compute "
                                       f"jaxgan's {arch} function: {check}")
        for batch in args.batch:
            print(f"benchmarking {arch} at batch {batch} ...", flush=True)
            results["records"] += benchmark(
                arch, batch, repeats=args.repeats, block_s=args.block_s, roof=roof,
                use_torch=use_torch, fused=args.fused if arch == "mlp" else 0,
                compare_compiler=args.compare_compiler, dtype=args.dtype,
                without=args.without,
                torch_device=torch_device,
            )
    results["roof_gflops"] = float(np.median([r["roof_gflops"] for r in results["records"]]))
    for r in results["records"]:  # one roof for the whole run: the median of all its blocks
        r["roof_fraction"] = r["gflops"] / results["roof_gflops"]
    if use_torch:
        results["torch_roof_gflops"] = _torch_roof(device=torch_device,
                                                   dtype=_torch_dtype(args.dtype))
    if args.profile:
        results["profiles"] = [profile_step(arch, batch, dtype=args.dtype)
                               for arch in args.arch for batch in args.batch[:1]]
    machine["load_after"] = [round(x, 2) for x in os.getloadavg()]

    text = markdown(results)
    print(text)
    os.makedirs(args.output_dir, exist_ok=True)
    kind = machine["kind"] + ("" if args.dtype == "float32" else f"-{args.dtype}")
    with atomic_path(os.path.join(args.output_dir, f"{kind}.json")) as tmp, open(tmp, "w") as f:
        json.dump(results, f, indent=1)
    with atomic_path(os.path.join(args.output_dir, f"{kind}.md")) as tmp, open(tmp, "w") as f:
        f.write(f"# Training-step benchmark on `{kind}`\n\nWritten by "
                "`python -m benchmarks.train_step`.\n\nTable 1: one training step, jaxgan "
                "against PyTorch eager, side by side in one process.\n\n")
        f.write(text)
    return results


if __name__ == "__main__":
    main()

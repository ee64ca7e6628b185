"""Figure 1 of Goodfellow et al. 2014 in one dimension, trained with the library's steps.

The paper's Figure 1 shows a GAN near convergence on 1-D data, in four panels: the data
distribution p_data (black, dotted), the generator's distribution p_g (green, solid), the
discriminator's output D(x) (blue, dashed) and, below them, how G maps the noise z (lower line)
onto x (upper line). This module reproduces the four panels:

  (a) a start near convergence: G pretrained so that p_g is close to p_data but offset, D
      trained a little (partially accurate);
  (b) D trained to convergence with G fixed (``d_step`` only): D approaches
      D*(x) = p_data(x) / (p_data(x) + p_g(x)) (Proposition 1);
  (c) a few G updates with D fixed (``g_step`` only): G(z) flows along D's gradient towards
      the region more likely to be classified as data;
  (d) Algorithm 1 (``train_step``: k D updates, then one G update) run to convergence:
      p_g ~ p_data and D(x) ~ 1/2 (Theorem 1).

The game is all ``jaxgan``: a ``GAN`` spec with ``data_shape=(1,)``, its ``init``, and the pure
``d_step``/``g_step``/``train_step``, compiled once here with donation. Data minibatches come
from a seeded numpy generator outside the steps; every random number inside a step comes from
the state's key (``step_keys``), and ``state.step`` counts every iteration of every phase, so
no key is used twice.

The noise prior defaults to N(0, 1), not the paper's U(-1, 1): a continuous G maps a bounded
interval onto a bounded interval, so with uniform noise p_g has hard edges, D* jumps there,
and no finite MLP reaches p_g = p_data. ``--noise uniform`` runs the paper's prior. The z line
of the figure marks equally spaced quantiles of p_z, as the paper's marks equally spaced z.

The numbers (printed as JSON and written to ``summary.json``) are quadratures on a grid, not
Monte-Carlo estimates: p_g is the push-forward of a fine grid of noise quantiles through G,
binned on the grid where p_data's bin masses come from its CDF, so the Jensen-Shannon
divergence is a sum over bins, in nats (at most log 2).

Run ``python -m experiments.toy1d [--quick] [--out-dir DIR] [--<config field> VALUE ...]``.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import sys
import time
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import scipy.special
from matplotlib.figure import Figure

import jaxgan
import jaxgan.steps
from experiments.cli import (
    Parser, add_config_flags, fail, flag, given_fields, writable_directory,
)

__all__ = [
    "Config",
    "QUICK",
    "ToyGenerator",
    "ToyDiscriminator",
    "make_gan",
    "jensen_shannon",
    "run",
    "main",
]


@dataclasses.dataclass(frozen=True)
class Config:
    """Settings of the 1-D experiment; each field is the command-line flag of the same name.

    Attributes:
      seed: seeds the GAN's keys (``GAN.init``) and, separately, the numpy data generator.
      out_dir: where ``toy1d.png`` and ``summary.json`` are written.
      data_mean, data_std: p_data = N(data_mean, data_std^2).
      g_start_mean, g_start_std: G is pretrained to push p_z onto
        N(g_start_mean, g_start_std^2): the offset start of panel (a).
      noise: the noise prior p_z: ``"normal"`` (N(0, 1)) or ``"uniform"`` (U(-1, 1), the
        paper's figure; see the module docstring).
      hidden: width of the two hidden layers of both G and D.
      net_scale: both networks see and produce x in units of ``(x - window center) /
        net_scale``, a fixed rescaling that keeps their inputs and outputs O(1).
      batch_size: minibatch size m of every D and G update.
      d_steps: k of Algorithm 1 in phase (d).
      d_learning_rate, g_learning_rate: Adam step sizes (b1 = 0.5).
      final_lr_fraction: both step sizes decay linearly to this fraction of their value over
        the second half of phase (d); 1.0 keeps them constant.
      g_loss: ``"minimax"`` (Eq. 1, the game of the paper's figure) or ``"nonsaturating"``.
      pretrain_steps: Adam steps of G's pretraining (before panel (a); not part of the game).
      partial_d_steps: D updates, G fixed, before panel (a).
      optimal_d_steps: further D updates, G fixed, before panel (b).
      g_move_steps: G updates, D fixed, before panel (c).
      train_iterations: iterations of Algorithm 1 before panel (d).
      x_min, x_max: the plotted window, also the measurement grid (mass outside it is kept
        in two overflow bins).
      grid_bins: bins of the measurement grid on [x_min, x_max].
      noise_quantiles: how many quantiles of p_z are pushed through G to get p_g.
    """

    seed: int = 0
    out_dir: str = "runs/toy1d"
    data_mean: float = 4.0
    data_std: float = 0.5
    g_start_mean: float = 3.2
    g_start_std: float = 0.6
    noise: str = "normal"
    hidden: int = 32
    net_scale: float = 1.0
    batch_size: int = 256
    d_steps: int = 3
    d_learning_rate: float = 1e-3
    g_learning_rate: float = 3e-4
    final_lr_fraction: float = 0.1
    g_loss: str = "minimax"
    pretrain_steps: int = 1000
    partial_d_steps: int = 40
    optimal_d_steps: int = 2000
    g_move_steps: int = 10
    train_iterations: int = 6000
    x_min: float = 0.0
    x_max: float = 7.0
    grid_bins: int = 1400
    noise_quantiles: int = 1 << 19

    def replace(self, **changes) -> "Config":
        """A copy with ``changes`` applied."""
        return dataclasses.replace(self, **changes)

    def validate(self) -> "Config":
        """Raises ``ValueError`` (one line naming the flag) for the first invalid field."""
        if self.noise not in ("normal", "uniform"):
            raise ValueError(f"--noise: choose normal or uniform, got {self.noise!r}")
        if self.g_loss not in jaxgan.losses.GENERATOR_LOSSES:
            raise ValueError(f"--g-loss: choose one of {', '.join(jaxgan.losses.GENERATOR_LOSSES)}, "
                             f"got {self.g_loss!r}")
        for field in ("hidden", "batch_size", "d_steps", "pretrain_steps", "optimal_d_steps",
                      "g_move_steps", "train_iterations", "grid_bins", "noise_quantiles"):
            if getattr(self, field) < 1:
                raise ValueError(f"{flag(field)}: must be a positive integer, got {getattr(self, field)}")
        if self.partial_d_steps < 0:
            raise ValueError(f"--partial-d-steps: must be >= 0, got {self.partial_d_steps}")
        for field in ("data_std", "g_start_std", "net_scale", "d_learning_rate",
                      "g_learning_rate", "final_lr_fraction"):
            if not getattr(self, field) > 0:
                raise ValueError(f"{flag(field)}: must be > 0, got {getattr(self, field)}")
        if not self.x_min < self.x_max:
            raise ValueError(f"--x-min {self.x_min} must be below --x-max {self.x_max}")
        return self


# The preset for tests: the same code path with fewer updates and a coarser grid.
QUICK = Config(
    pretrain_steps=500,
    optimal_d_steps=500,
    train_iterations=2000,
    grid_bins=700,
    noise_quantiles=1 << 16,
)


# ---------------------------------------------------------------------------------------------
# Networks.


class ToyGenerator(nn.Module):
    """G: noise ``[batch, 1]`` -> samples ``[batch, 1]``; an MLP with two tanh layers.

    Attributes:
      hidden: width of the hidden layers.
      center, scale: the network's output u is mapped to x = center + scale * u.
      output_range: unbounded (``GAN`` asks every generator for one).
    """

    hidden: int = 32
    center: float = 0.0
    scale: float = 1.0
    output_range: tuple[float, float] = (-math.inf, math.inf)

    @nn.compact
    def __call__(self, z, *, train: bool):  # z: [batch, 1]
        del train  # no dropout or normalization: training and evaluation are the same function
        h = z
        for _ in range(2):
            h = nn.tanh(nn.Dense(self.hidden)(h))
        return self.center + self.scale * nn.Dense(1)(h)  # [batch, 1]


class ToyDiscriminator(nn.Module):
    """D: samples ``[batch, 1]`` -> logits ``[batch]``; an MLP with two tanh layers.

    Attributes:
      hidden: width of the hidden layers.
      center, scale: the network sees u = (x - center) / scale.
    """

    hidden: int = 32
    center: float = 0.0
    scale: float = 1.0

    @nn.compact
    def __call__(self, x, *, train: bool):  # x: [batch, 1]
        del train  # no dropout: training and evaluation are the same function
        h = (x - self.center) / self.scale
        for _ in range(2):
            h = nn.tanh(nn.Dense(self.hidden)(h))
        return nn.Dense(1)(h)[:, 0]  # [batch] logits


def make_gan(config: Config) -> jaxgan.GAN:
    """The ``jaxgan.GAN`` of the experiment: 1-D noise and data, Adam(b1 = 0.5) for both.

    The step sizes are constant until the second half of phase (d), then decay linearly to
    ``final_lr_fraction`` of their value: with constant steps stochastic Algorithm 1 keeps
    hovering around the equilibrium; decaying steps let it settle. Each optimizer counts its
    own updates, so the boundaries are counted in D updates and in G updates.
    """
    half = config.train_iterations // 2
    d_before_decay = config.partial_d_steps + config.optimal_d_steps + config.d_steps * half
    d_learning_rate = _decay_after(
        config.d_learning_rate, d_before_decay, config.d_steps * half, config.final_lr_fraction
    )
    g_learning_rate = _decay_after(
        config.g_learning_rate, config.g_move_steps + half, half, config.final_lr_fraction
    )
    center = 0.5 * (config.x_min + config.x_max)
    return jaxgan.GAN(
        generator=ToyGenerator(config.hidden, center, config.net_scale),
        discriminator=ToyDiscriminator(config.hidden, center, config.net_scale),
        g_optimizer=optax.adam(g_learning_rate, b1=0.5),
        d_optimizer=optax.adam(d_learning_rate, b1=0.5),
        latent_dim=1,
        noise=config.noise,
        g_loss=config.g_loss,
        d_steps=config.d_steps,
        data_shape=(1,),
    )


def _decay_after(value: float, constant_updates: int, decay_updates: int, fraction: float):
    return optax.join_schedules(
        [
            optax.constant_schedule(value),
            optax.linear_schedule(value, value * fraction, max(decay_updates, 1)),
        ],
        [constant_updates],
    )


# ---------------------------------------------------------------------------------------------
# One-player iterations for phases (a) to (c). They draw their keys as ``train_step`` does,
# from ``fold_in(state.key, state.step)``, and advance ``step``: every iteration of every phase
# has its own step number, so no key is reused across phases.


def _d_only_iteration(gan: jaxgan.GAN, state: jaxgan.GANState, real: jax.Array):
    """One D update with G fixed; ``real`` is a data minibatch ``[batch, 1]``."""
    d_keys, _ = jaxgan.steps.step_keys(state, 1)
    state, metrics = jaxgan.d_step(gan, state, real, d_keys[0])
    return state.replace(step=state.step + 1), metrics


def _g_only_iteration(gan: jaxgan.GAN, state: jaxgan.GANState, *, batch_size: int):
    """One G update with D fixed."""
    _, g_key = jaxgan.steps.step_keys(state, gan.d_steps)
    state, metrics = jaxgan.g_step(gan, state, g_key, batch_size=batch_size)
    return state.replace(step=state.step + 1), metrics


def _pretrain_generator(gan: jaxgan.GAN, g_params, config: Config):
    """Fits G to the map that pushes p_z onto N(g_start_mean, g_start_std^2).

    The target is t(z) = g_start_mean + g_start_std * Phi^-1(F(z)), F the noise CDF. The loss
    matches t and its slope t' on a fixed grid of noise quantiles: p_g depends on G' (change
    of variables, p_g(G(z)) = p_z(z) / G'(z)), and fitting values alone leaves bumps in p_g.
    Deterministic (no randomness); it only places the start of panel (a).
    """
    z = _noise_quantiles(config.noise, 512)  # [512, 1]
    normal_quantile = scipy.special.ndtri(_noise_cdf(config.noise, z))
    target = config.g_start_mean + config.g_start_std * normal_quantile
    target_slope = config.g_start_std * _noise_pdf(config.noise, z) / _normal_pdf(normal_quantile)
    z, target, target_slope = (jnp.asarray(a, jnp.float32) for a in (z, target, target_slope))
    optimizer = optax.adam(optax.cosine_decay_schedule(1e-2, config.pretrain_steps))

    def loss_fn(params):
        x, slope = jax.jvp(lambda z: gan.generate(params, z), (z,), (jnp.ones_like(z),))
        return jnp.mean(jnp.square(x - target)) + jnp.mean(jnp.square(slope - target_slope))

    def update(carry, _):
        params, opt_state = carry
        updates, opt_state = optimizer.update(jax.grad(loss_fn)(params), opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), None

    (g_params, _), _ = jax.lax.scan(
        update, (g_params, optimizer.init(g_params)), None, length=config.pretrain_steps
    )
    return g_params


# ---------------------------------------------------------------------------------------------
# Measurements on a grid.


def _normal_pdf(x: np.ndarray) -> np.ndarray:
    return np.exp(-0.5 * x**2) / math.sqrt(2.0 * math.pi)


def _noise_pdf(noise: str, z: np.ndarray) -> np.ndarray:
    return np.full_like(z, 0.5) if noise == "uniform" else _normal_pdf(z)


def _noise_cdf(noise: str, z: np.ndarray) -> np.ndarray:
    return (z + 1.0) / 2.0 if noise == "uniform" else scipy.special.ndtr(z)


def _noise_quantiles(noise: str, count: int) -> np.ndarray:
    """The ``count`` midpoint quantiles of p_z, ``[count, 1]`` float64, increasing."""
    u = (np.arange(count) + 0.5) / count
    z = 2.0 * u - 1.0 if noise == "uniform" else scipy.special.ndtri(u)
    return z[:, None]


def jensen_shannon(p_mass: np.ndarray, q_mass: np.ndarray) -> float:
    """JSD(p || q) in nats between two discrete distributions given as bin masses.

    JSD = KL(p || m) / 2 + KL(q || m) / 2 with m = (p + q) / 2, the divergence of Goodfellow
    et al. 2014, Theorem 1; 0 log 0 = 0. It lies in [0, log 2].

    Args:
      p_mass, q_mass: nonnegative masses on the same bins (normalized here).
    """
    p = np.asarray(p_mass, np.float64) / np.sum(p_mass)
    q = np.asarray(q_mass, np.float64) / np.sum(q_mass)
    m = 0.5 * (p + q)

    def kl_to_m(a):
        mask = a > 0
        return float(np.sum(a[mask] * np.log(a[mask] / m[mask])))

    return 0.5 * kl_to_m(p) + 0.5 * kl_to_m(q)


@dataclasses.dataclass(frozen=True)
class _Grid:
    edges: np.ndarray  # [bins + 1] on [x_min, x_max]
    centers: np.ndarray  # [bins]
    data_mass: np.ndarray  # [bins + 2]: below x_min, the bins, above x_max
    data_support: np.ndarray  # [bins] bool: within 2 std of the data mean

    @property
    def width(self) -> float:
        return float(self.edges[1] - self.edges[0])


def _make_grid(config: Config) -> _Grid:
    edges = np.linspace(config.x_min, config.x_max, config.grid_bins + 1)
    cdf = scipy.special.ndtr((edges - config.data_mean) / config.data_std)
    data_mass = np.concatenate([[cdf[0]], np.diff(cdf), [1.0 - cdf[-1]]])
    centers = 0.5 * (edges[1:] + edges[:-1])
    data_support = np.abs(centers - config.data_mean) <= 2.0 * config.data_std
    return _Grid(edges, centers, data_mass, data_support)


@functools.partial(jax.jit, static_argnums=0)
def _generate(gan, g_params, z):
    return gan.generate(g_params, z)


@functools.partial(jax.jit, static_argnums=0)
def _discriminate(gan, d_params, x):
    return jax.nn.sigmoid(gan.discriminate(d_params, x, train=False))


def _measure(gan: jaxgan.GAN, state: jaxgan.GANState, grid: _Grid, config: Config) -> dict:
    """p_g, D and D* on the grid, and the panel's numbers (host copies: states are donated)."""
    z = _noise_quantiles(config.noise, config.noise_quantiles)  # [n, 1]
    samples = np.asarray(_generate(gan, state.g_params, jnp.asarray(z, jnp.float32)))[:, 0]
    samples = samples.astype(np.float64)  # [n], G(z) at increasing z
    # Index 0 is "below x_min", i in 1..bins is bin i - 1, bins + 1 is "above x_max".
    index = np.searchsorted(grid.edges, samples, side="right")
    g_mass = np.bincount(index, minlength=grid.edges.size + 1) / samples.size  # [bins + 2]
    p_data = grid.data_mass[1:-1] / grid.width  # densities on the bins
    p_g = g_mass[1:-1] / grid.width
    centers = jnp.asarray(grid.centers[:, None], jnp.float32)  # [bins, 1]
    d = np.asarray(_discriminate(gan, state.d_params, centers)).astype(np.float64)
    with np.errstate(invalid="ignore"):
        d_star = p_data / (p_data + p_g)  # Proposition 1; NaN where both vanish
    mixture = 0.5 * (p_data + p_g)
    d_star_region = mixture >= 0.1 * mixture.max()
    data_mass = grid.data_mass[1:-1]
    every = max(1, z.shape[0] // 2048)
    return {
        "curves": {"p_data": p_data, "p_g": p_g, "d": d, "d_star": d_star},
        "mapping": {"z": z[::every, 0], "x": samples[::every]},
        "numbers": {
            "step": int(state.step),
            "jsd_nats": jensen_shannon(grid.data_mass, g_mass),
            "d_mean_on_data": float(np.sum(data_mass * d) / np.sum(data_mass)),
            "d_max_dev_from_half_on_data": float(np.max(np.abs(d[grid.data_support] - 0.5))),
            "max_abs_d_minus_d_star": float(np.max(np.abs(d - d_star)[d_star_region])),
            "p_g_mean": float(np.mean(samples)),
            "p_g_std": float(np.std(samples)),
            "p_g_mass_outside_window": float(g_mass[0] + g_mass[-1]),
        },
    }


# ---------------------------------------------------------------------------------------------
# The figure.

_PANEL_TITLES = {
    "a": "(a) start: p_g offset, D partially accurate",
    "b": "(b) D trained with G fixed: D -> D*",
    "c": "(c) G follows the gradient of D",
    "d": "(d) Algorithm 1 converged: D = 1/2",
}


def _plot(panels: dict, grid: _Grid, config: Config, path: str) -> None:
    fig = Figure(figsize=(16, 3.8), layout="constrained")
    axes = fig.subplots(1, 4, sharey=True)
    center = 0.5 * (config.x_max + config.x_min)
    half_width = 0.45 * (config.x_max - config.x_min)
    marks = _noise_quantiles(config.noise, 16)[:, 0]  # equally spaced quantiles of p_z
    z_extent = 1.0 if config.noise == "uniform" else 3.0
    y_x, y_z = -0.12, -0.42
    previous = None
    for ax, (name, panel) in zip(axes, panels.items()):
        curves = panel["curves"]
        if name == "c":  # where G was before its updates
            ax.plot(grid.centers, previous["p_g"], "-", color="#9c9", lw=1.0, label="p_g before")
        ax.plot(grid.centers, curves["p_data"], "k:", lw=2.0, label="p_data")
        ax.plot(grid.centers, curves["p_g"], "g-", lw=1.8, label="p_g")
        ax.plot(grid.centers, curves["d"], "b--", lw=1.5, label="D(x)")
        if name == "b":  # the optimal discriminator for this G (Proposition 1)
            # Drawn where the densities are resolved (at least ~10 samples of G per bin in
            # the default setting); in the far tails the binned ratio is 0/0-like noise.
            mixture = curves["p_data"] + curves["p_g"]
            d_star = np.where(mixture >= 0.01 * mixture.max(), curves["d_star"], np.nan)
            ax.plot(grid.centers, d_star, "-", color="#99f", lw=1.0, label="D*(x)")
        previous = curves
        # The mapping x = G(z), as at the bottom of the paper's figure: z on the lower line
        # (placed linearly, |z| <= z_extent across the window), each joined to G(z) above.
        z_positions = center + half_width * marks / z_extent
        x_positions = np.interp(marks, panel["mapping"]["z"], panel["mapping"]["x"])
        ax.axhline(y_x, color="0.3", lw=0.8)
        ax.hlines(y_z, center - half_width, center + half_width, color="0.3", lw=0.8)
        for z_position, x_position in zip(z_positions, x_positions):
            ax.annotate(
                "", xy=(x_position, y_x), xytext=(z_position, y_z),
                arrowprops=dict(arrowstyle="->", lw=0.7, color="0.35"),
            )
        ax.text(config.x_min + 0.05, y_x + 0.03, "x", fontsize=9)
        ax.text(config.x_min + 0.05, y_z + 0.03, "z", fontsize=9)
        jsd = panel["numbers"]["jsd_nats"]
        ax.set_title(f"{_PANEL_TITLES[name]}\nJSD(p_data, p_g) = {jsd:.4f} nats", fontsize=10)
        ax.set_xlim(config.x_min, config.x_max)
        ax.set_ylim(y_z - 0.08, 1.1)
        ax.set_xlabel("x")
        if name in ("a", "b", "c"):
            ax.legend(loc="upper left", fontsize=8, frameon=False)
    fig.savefig(path, dpi=110)


# ---------------------------------------------------------------------------------------------
# The experiment.

_DEFINITIONS = {
    "jsd_nats": "Jensen-Shannon divergence JSD(p_data || p_g) in nats (at most log 2): a sum "
    "over the bins of [x_min, x_max] plus two overflow bins; p_g is the push-forward of "
    "noise_quantiles quantiles of p_z through G, p_data's bin masses come from its CDF",
    "d_mean_on_data": "E_{x ~ p_data}[D(x)], a sum over the bins",
    "d_max_dev_from_half_on_data": "max |D(x) - 1/2| over the data's support, taken as "
    "data_mean +- 2 data_std (95% of p_data)",
    "max_abs_d_minus_d_star": "max |D(x) - D*(x)|, D* = p_data / (p_data + p_g) "
    "(Proposition 1), over the bins where (p_data + p_g) / 2 is at least 10% of its peak",
    "step": "state.step: iterations of all phases so far (one per D-only, G-only or "
    "Algorithm 1 iteration)",
}


def run(config: Config) -> dict[str, Any]:
    """Trains through the four phases, writes ``toy1d.png`` and ``summary.json``.

    Returns:
      The summary: per panel the numbers of ``_DEFINITIONS``, ``max_abs_d_minus_d_star_at_b``,
      the definitions, the config, the PNG's path and the wall time.
    """
    start = time.perf_counter()
    os.makedirs(config.out_dir, exist_ok=True)
    gan = make_gan(config)
    # One compiled call instead of one small compilation per initializer op.
    state = jax.jit(gan.init)(jax.random.key(config.seed))
    g_params = _pretrain_generator(gan, state.g_params, config)
    state = state.replace(g_params=g_params, g_opt_state=gan.g_optimizer.init(g_params))
    data_rng = np.random.default_rng(config.seed)  # data order: outside the steps

    def data(*shape):  # a minibatch [*shape, 1] of p_data
        return data_rng.normal(config.data_mean, config.data_std, shape + (1,)).astype(np.float32)

    # Compiled once each, with the state donated.
    d_update = jax.jit(functools.partial(_d_only_iteration, gan), donate_argnums=0)
    g_update = jax.jit(
        functools.partial(_g_only_iteration, gan, batch_size=config.batch_size), donate_argnums=0
    )
    train_update = jax.jit(functools.partial(jaxgan.train_step, gan), donate_argnums=0)

    grid = _make_grid(config)
    panels: dict[str, dict] = {}
    for _ in range(config.partial_d_steps):
        state, _ = d_update(state, data(config.batch_size))
    panels["a"] = _measure(gan, state, grid, config)
    for _ in range(config.optimal_d_steps):
        state, _ = d_update(state, data(config.batch_size))
    panels["b"] = _measure(gan, state, grid, config)
    for _ in range(config.g_move_steps):
        state, _ = g_update(state)
    panels["c"] = _measure(gan, state, grid, config)
    for _ in range(config.train_iterations):
        # [k, batch, 1]: one minibatch per D update.
        state, _ = train_update(state, data(config.d_steps, config.batch_size))
    panels["d"] = _measure(gan, state, grid, config)

    png_path = os.path.join(config.out_dir, "toy1d.png")
    _plot(panels, grid, config, png_path)
    summary = {
        "panels": {name: panel["numbers"] for name, panel in panels.items()},
        "max_abs_d_minus_d_star_at_b": panels["b"]["numbers"]["max_abs_d_minus_d_star"],
        "definitions": _DEFINITIONS,
        "config": dataclasses.asdict(config),
        "png": png_path,
        "wall_time_s": round(time.perf_counter() - start, 2),
    }
    with open(os.path.join(config.out_dir, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    return summary


def _parse_flags(argv: Sequence[str] | None) -> Config:
    parser = Parser(
        prog="python -m experiments.toy1d",
        description="Goodfellow et al. 2014, Figure 1, in 1-D (see experiments/toy1d.py).",
    )
    parser.add_argument("--quick", action="store_true", help="start from the small QUICK preset")
    add_config_flags(
        parser, Config, defaults=Config(),
        extra_help=lambda name: f"; with --quick {getattr(QUICK, name)!r}",
    )
    args = parser.parse_args(argv)
    base = QUICK if args.quick else Config()
    changes = given_fields(args, Config)
    try:
        config = base.replace(**changes).validate()
    except ValueError as error:
        fail(str(error))
    writable_directory(config.out_dir, "--out-dir")
    return config


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Command line: flags -> ``Config`` -> ``run``; prints the summary as JSON and returns it."""
    summary = run(_parse_flags(argv))
    json.dump(summary, sys.stdout, indent=2)
    print()
    return summary


if __name__ == "__main__":
    main()

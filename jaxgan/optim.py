"""The optimizer of Goodfellow et al. 2014's released MNIST code, as Optax pieces.

pylearn2's SGD with momentum keeps the learning rate inside the velocity
(``v <- m v - lr g; theta <- theta + v``, v starting at 0), unlike ``optax.sgd(momentum=...)``,
which scales the velocity afterwards; the two differ whenever the learning rate changes. The
released code decays the learning rate after every update (``ExponentialDecay(1.000004,
min_lr=1e-6)``) and ramps the momentum once per epoch (``MomentumAdjustor(start=1,
saturate=250, final=0.7)``): see ``paper_sgd``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

__all__ = [
    "paper_sgd",
]


class Pylearn2MomentumState(NamedTuple):
    count: jax.Array  # int32: updates applied so far
    velocity: optax.Updates


def pylearn2_momentum(
    learning_rate: optax.ScalarOrSchedule, momentum: optax.ScalarOrSchedule
) -> optax.GradientTransformation:
    """SGD with the learning rate inside the velocity: ``v <- m_t v - lr_t g``, update ``v``.

    Args:
      learning_rate: a float, or a schedule of the update count t (0 for the first update).
      momentum: a float, or a schedule of t.
    """

    def value(schedule, count):
        return schedule(count) if callable(schedule) else schedule

    def init(params):
        return Pylearn2MomentumState(
            count=jnp.zeros((), jnp.int32), velocity=jax.tree.map(jnp.zeros_like, params)
        )

    def update(updates, state, params=None):
        del params
        lr = value(learning_rate, state.count)
        m = value(momentum, state.count)
        velocity = jax.tree.map(lambda v, g: m * v - lr * g, state.velocity, updates)
        return velocity, Pylearn2MomentumState(count=state.count + 1, velocity=velocity)

    return optax.GradientTransformation(init, update)


def per_update_decay(initial: float, factor: float, floor: float) -> optax.Schedule:
    """``max(initial / factor**t, floor)`` for update t (pylearn2's ``ExponentialDecay``,
    applied after every minibatch: the first update uses ``initial``)."""

    # factor**-t as exp(-t log factor), log taken in float64: float32 holds 1.000004 only to
    # 1e-7, which would be a 2.5% error in log(factor).
    log_factor = math.log(factor)

    def schedule(count):
        lr = initial * jnp.exp(-jnp.asarray(count, jnp.float32) * log_factor)
        return jnp.maximum(lr, floor)

    return schedule


def epoch_momentum_ramp(
    start: float, final: float, saturate_epoch: int, steps_per_epoch: int
) -> optax.Schedule:
    """Momentum of update t under pylearn2's ``MomentumAdjustor(start=1, saturate, final)``.

    Epoch e = t // steps_per_epoch + 1 (counting from 1) uses
    ``start + (final - start) * clip((e - 1) / (saturate_epoch - 1), 0, 1)``: ``start`` in
    epoch 1, ``final`` from epoch ``saturate_epoch`` on.
    """
    if saturate_epoch < 2:
        raise ValueError(f"saturate_epoch must be >= 2, got {saturate_epoch}")

    def schedule(count):
        epoch = count // steps_per_epoch + 1
        fraction = jnp.clip((epoch - 1) / (saturate_epoch - 1), 0.0, 1.0)
        return start + (final - start) * fraction

    return schedule


def paper_sgd(
    learning_rate: float = 0.1, steps_per_epoch: int = 500
) -> optax.GradientTransformation:
    """The released MNIST code's optimizer, for D and G alike: pylearn2 momentum with the
    learning rate ``learning_rate / 1.000004**t`` (floor 1e-6; the code's rate is 0.1) and the
    momentum ramped 0.5 -> 0.7 over epochs 1-250 (``steps_per_epoch`` updates each: 500 for
    50,000 rows in batches of 100)."""
    return pylearn2_momentum(
        per_update_decay(learning_rate, 1.000004, 1e-6),
        epoch_momentum_ramp(0.5, 0.7, 250, steps_per_epoch),
    )

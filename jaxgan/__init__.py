"""jaxgan: generative adversarial networks (Goodfellow et al. 2014) as pure JAX/Flax functions.

The public surface:

* ``GAN``: the static description (networks, optimizers, loss, k) and ``GAN.init``.
* ``GANState``: the one training-state pytree.
* ``d_step``, ``g_step``, ``train_step``: pure update steps; compile them with ``jax.jit``.
* ``losses``: V(D, G) and the D and G losses; ``models``: the networks.
* ``optim``: the paper code's optimizer (pylearn2 momentum, per-update decay, momentum ramp).
"""

from jaxgan import losses, models, optim
from jaxgan.gan import GAN
from jaxgan.models import make_models
from jaxgan.state import GANState
from jaxgan.steps import d_step, g_step, simultaneous_step, step_keys, train_step

__version__ = "0.1.0"

__all__ = [
    "GAN",
    "GANState",
    "d_step",
    "g_step",
    "simultaneous_step",
    "train_step",
    "step_keys",
    "make_models",
    "losses",
    "models",
    "optim",
]

"""jaxgan: generative adversarial networks (Goodfellow et al. 2014) as pure JAX/Flax functions.

The public surface:

* ``GAN``: the static description (networks, optimizers, loss, k) and ``GAN.init``.
* ``GANState``: the one training-state pytree.
* ``d_step``, ``g_step``, ``simultaneous_step``, ``train_step``: pure update steps; compile
  them with ``jax.jit``.
* ``make_models``: a G and D pair by name.
* ``losses``: V(D, G) and the D and G losses; ``models``: the networks.
* ``optim``: the paper code's optimizer (pylearn2 momentum, per-update decay, momentum ramp).

The other public modules (``jaxgan.data``, ``config``, ``trainer``, ``errors``, ``sharding``,
``eval``) are listed with their names in the API table of docs/api.md, which a test keeps
equal to their ``__all__``; the other modules are internal.
"""

from jaxgan import losses, models, optim
from jaxgan.gan import GAN
from jaxgan.models import make_models
from jaxgan.state import GANState
from jaxgan.steps import d_step, g_step, simultaneous_step, train_step

__version__ = "0.1.0"

__all__ = [
    "GAN",
    "GANState",
    "d_step",
    "g_step",
    "simultaneous_step",
    "train_step",
    "make_models",
    "losses",
    "models",
    "optim",
]

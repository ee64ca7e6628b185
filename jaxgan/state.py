"""The one training state of a GAN: both players' parameters and optimizer states, step, key.

A plain pytree (``flax.struct.dataclass``) of arrays, so it can be jitted, donated, sharded and
checkpointed as a whole. Update it only through ``.replace``.
"""

from __future__ import annotations

from typing import Any

import flax.struct
import jax

PyTree = Any


@flax.struct.dataclass
class GANState:
    """Training state of Algorithm 1 (Goodfellow et al. 2014).

    Attributes:
      step: int32 scalar, the number of completed iterations of Algorithm 1 (each is
        ``d_steps`` discriminator updates and one generator update).
      key: the typed PRNG key of the training stream. It never changes: iteration ``step``
        draws all its randomness from ``fold_in(key, step)``, so a resumed run draws the same
        numbers as an uninterrupted one.
      g_params: generator parameters.
      d_params: discriminator parameters.
      g_opt_state: the generator optimizer's state.
      d_opt_state: the discriminator optimizer's state.
      g_batch_stats: the generator's batch-normalization running averages (an empty dict for
        a generator without batch normalization).
      g_ema_params: exponential moving average of ``g_params`` (for sampling), or ``None`` when
        the GAN has no EMA.
    """

    step: jax.Array
    key: jax.Array
    g_params: PyTree
    d_params: PyTree
    g_opt_state: PyTree
    d_opt_state: PyTree
    g_batch_stats: PyTree = flax.struct.field(default_factory=dict)
    g_ema_params: PyTree = None

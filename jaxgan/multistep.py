"""Several iterations of Algorithm 1 in one compiled call (``lax.scan`` over ``train_step``).

A jitted call has a fixed cost on the host (argument handling, dispatch, synchronization)
and is a barrier: XLA cannot overlap the end of one step with the start of the next. For
small networks both matter: ``train_steps`` runs ``n`` iterations in one call.

It computes what ``n`` sequential ``jaxgan.train_step`` calls compute, with the same keys
(iteration ``state.step`` still draws from ``fold_in(state.key, state.step)``), so results
agree with the sequential loop to float rounding; they are not bit-identical in general
because XLA may fuse and order the arithmetic inside the loop differently.

On XLA:CPU a loop body with two iterations (``unroll=2``, the default) lets XLA overlap the
end of one iteration with the start of the next, which pays for small networks such as the
paper's MLP pair; for convolutional models a rolled loop is a trap (XLA:CPU compiles
convolutions in a loop body much worse): use ``train_step`` for those, or ``unroll=True``
(compile time grows with ``n``). ``benchmarks.config_steps`` times the trainer's steps
(docs/performance.md).
"""

from __future__ import annotations

import jax
from jax import lax

from jaxgan.gan import GAN
from jaxgan.state import GANState
from jaxgan.steps import train_step


def train_steps(gan: GAN, state: GANState, real_images: jax.Array,
                real_labels: jax.Array | None = None, *, unroll: int | bool = 2):
    """``n`` iterations of Algorithm 1: ``n`` sequential ``train_step`` calls in one scan.

    Compile it like ``train_step``::

        train_steps = jax.jit(functools.partial(jaxgan.multistep.train_steps, gan),
                              donate_argnums=0)

    Args:
      gan: the GAN description.
      state: the training state.
      real_images: ``[n, d_steps, batch, *data_shape]``: the minibatches of ``n`` iterations
        (``[n, batch, *data_shape]`` is accepted when ``gan.d_steps == 1``), in
        ``gan.output_range``.
      real_labels: a conditional GAN's labels, int ``[n, d_steps, batch]`` (or
        ``[n, batch]``); ``None`` for an unconditional one.
      unroll: ``lax.scan``'s ``unroll``: iterations per loop body. 2 measured best for the
        MLP pair on CPU; ``True`` unrolls all ``n`` iterations (no loop: for conv models).

    Returns:
      ``(new_state, metrics)``: the state after ``n`` iterations (``step`` advanced by ``n``)
      and each metric of ``train_step`` stacked over the iterations (``[n]``).
    """
    if real_images.ndim == len(gan.data_shape) + 2:  # [n, batch, ...] with d_steps == 1
        real_images = real_images[:, None]
        real_labels = None if real_labels is None else real_labels[:, None]
    if real_images.ndim != len(gan.data_shape) + 3:
        raise ValueError(
            "train_steps needs real_images of shape [n, d_steps, batch, *data_shape], got "
            f"{real_images.shape}"
        )

    def body(state, minibatches):
        return train_step(gan, state, *minibatches)

    inputs = (real_images,) if real_labels is None else (real_images, real_labels)
    return lax.scan(body, state, inputs, unroll=unroll)

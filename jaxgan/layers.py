"""Layers shared by the models.

``ConvTranspose`` is the transposed convolution the DCGAN generator uses. It has the parameter
names and shapes of ``flax.linen.ConvTranspose`` so checkpoints and user code depend only on
those.
"""

from flax.linen import ConvTranspose

__all__ = ["ConvTranspose"]

"""The tiny GANs the tests train: the real code paths at shapes that compile in seconds.

Test modules import it directly (``from tiny import tiny_gan``; pytest puts ``tests/`` on
the path, as does running a test file as a script).
"""

import jax.numpy as jnp
import optax

import jaxgan
from jaxgan import models


def tiny_gan(arch: str = "dcgan", *, dtype=jnp.float32, **kwargs) -> jaxgan.GAN:
    """``arch="dcgan"``: DCGAN widths (8, 4, 4) / (4, 8), batch normalization in G;
    ``"mlp"``: a 32-32 MLP generator and a 16 x 3 maxout D (dropout). Adam(1e-3, b1=0.5)
    for both players unless ``kwargs`` give optimizers; other ``kwargs`` go to ``GAN``."""
    if arch == "dcgan":
        g, d = jaxgan.make_models("dcgan", dtype=dtype, g_widths=(8, 4, 4), d_widths=(4, 8))
    else:
        g = models.MLPGenerator(hidden=(32, 32), dtype=dtype)
        d = models.MaxoutDiscriminator(units=16, pieces=3, dtype=dtype)
    adam = optax.adam(1e-3, b1=0.5)
    return jaxgan.GAN(g, d, **{"g_optimizer": adam, "d_optimizer": adam, **kwargs})

"""A PyTorch eager reference of jaxgan's training step, for benchmarks only.

The same two architecture pairs as ``jaxgan.models`` (same layer sizes, maxout, dropout, SAME
padding), the same Algorithm 1 iteration as ``jaxgan.train_step`` with ``d_steps=1`` (one D
update on the concatenation of the real and a fresh fake batch, then one G update on another
fresh batch; G is not differentiated in the D update and D's weights are not differentiated in
the G update), BCE-with-logits losses (the same numbers as ``jaxgan.losses``:
BCE(l, 1) = -log_sigmoid(l) and BCE(l, 0) = -log_sigmoid(-l)) and ``torch.optim.Adam(2e-4,
betas=(0.5, 0.999))`` for both players.

Layout: PyTorch images are NCHW, and mirrored (see below) for both pairs. Flax's ``SAME``
padding is asymmetric (more zeros after than before for the stride-2 layers) and Flax's
transposed convolution does not flip its kernel, so the PyTorch layers with their usual
symmetric ``padding=2`` (and ``output_padding=1``) compute the Flax function mirrored in both
image axes. ``load_jax_params`` maps a jaxgan parameter
tree onto these modules accordingly (kernel flips for ``Conv2d``, a permutation of the units
that meet the image reshapes), so that for every input ``torch_net(flip(x)) ==
flip(jax_net(x))``: the same function, with the same FLOPs and parameter count.
``benchmarks.train_step`` checks that numerically before it times anything.

``TorchGAN`` runs on any torch device (``device="cuda"`` for a GPU) and in mixed precision
(``dtype=torch.bfloat16``: the forward passes under ``torch.autocast``, parameters and Adam
in float32, as jaxgan's ``dtype=jnp.bfloat16`` models keep them).

torch is an optional dependency (``pip install torch==2.13.0``, a CPU wheel).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "MLPGenerator",
    "MaxoutDiscriminator",
    "DCGANGenerator",
    "DCGANDiscriminator",
    "make_models",
    "load_jax_params",
    "TorchGAN",
]

LATENT_DIM = 100


class Maxout(nn.Module):
    """Maxout: the max over ``pieces`` affine maps per unit, unit-major like ``jaxgan.Maxout``."""

    def __init__(self, in_features: int, units: int, pieces: int):
        super().__init__()
        self.units, self.pieces = units, pieces
        self.linear = nn.Linear(in_features, units * pieces)

    def forward(self, x):
        return self.linear(x).view(x.shape[0], self.units, self.pieces).amax(dim=-1)


class MLPGenerator(nn.Module):
    """100 -> 1200 ReLU -> 1200 ReLU -> 784 sigmoid, images ``[batch, 1, 28, 28]``."""

    def __init__(self, hidden=(1200, 1200)):
        super().__init__()
        widths = (LATENT_DIM,) + tuple(hidden)
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.out = nn.Linear(widths[-1], 784)

    def forward(self, z):
        x = z
        for layer in self.hidden:
            x = F.relu(layer(x))
        return torch.sigmoid(self.out(x)).view(z.shape[0], 1, 28, 28)


class MaxoutDiscriminator(nn.Module):
    """Dropout 0.2 -> maxout(240 x 5) -> dropout 0.5 -> maxout(240 x 5) -> dropout 0.5 -> 1."""

    def __init__(self, units=240, pieces=5, num_layers=2, input_dropout=0.2, hidden_dropout=0.5):
        super().__init__()
        widths = (784,) + (units,) * num_layers
        self.maxouts = nn.ModuleList(Maxout(a, units, pieces) for a in widths[:-1])
        self.input_dropout = nn.Dropout(input_dropout)
        self.hidden_dropout = nn.Dropout(hidden_dropout)
        self.out = nn.Linear(units, 1)

    def forward(self, x):
        x = self.input_dropout(x.reshape(x.shape[0], -1))
        for layer in self.maxouts:
            x = self.hidden_dropout(layer(x))
        return self.out(x)[:, 0]  # [batch] logits


class DCGANGenerator(nn.Module):
    """Dense(no bias) -> 7x7 -> ConvT 5x5 s1 -> ConvT 5x5 s2 -> ConvT 5x5 s2 tanh.

    With ``batch_norm`` (jaxgan's current generator) every hidden layer is followed by batch
    normalization (eps 1e-5, running-average momentum 0.9 in Flax's convention) and ReLU, and
    the layers before it have no bias; without it, by ReLU alone.
    """

    def __init__(self, widths=(256, 128, 64), kernel_size=5, batch_norm=True):
        super().__init__()
        w0, w1, w2 = widths
        k, p = kernel_size, kernel_size // 2
        self.w0 = w0
        bias = not batch_norm
        self.project = nn.Linear(LATENT_DIM, 7 * 7 * w0, bias=False)
        self.conv1 = nn.ConvTranspose2d(w0, w1, k, stride=1, padding=p, bias=bias)
        self.conv2 = nn.ConvTranspose2d(w1, w2, k, stride=2, padding=p, output_padding=1,
                                        bias=bias)
        self.conv3 = nn.ConvTranspose2d(w2, 1, k, stride=2, padding=p, output_padding=1)
        if batch_norm:
            # PyTorch's momentum is the weight of the new batch: 1 - Flax's momentum.
            self.norms = nn.ModuleList(
                nn.BatchNorm2d(w, eps=1e-5, momentum=0.1) for w in (w0, w1, w2))
        else:
            self.norms = nn.ModuleList(nn.Identity() for _ in range(3))

    def forward(self, z):
        x = self.project(z).view(z.shape[0], self.w0, 7, 7)
        x = F.relu(self.norms[0](x))
        x = F.relu(self.norms[1](self.conv1(x)))  # [batch, w1, 7, 7]
        x = F.relu(self.norms[2](self.conv2(x)))  # [batch, w2, 14, 14]
        return torch.tanh(self.conv3(x))  # [batch, 1, 28, 28]


class DCGANDiscriminator(nn.Module):
    """Conv 5x5 s2 leaky ReLU(0.2) -> Conv 5x5 s2 leaky ReLU(0.2) -> Dense 1."""

    def __init__(self, widths=(64, 128), kernel_size=5, negative_slope=0.2):
        super().__init__()
        w1, w2 = widths
        k, p = kernel_size, kernel_size // 2
        self.negative_slope = negative_slope
        self.conv1 = nn.Conv2d(1, w1, k, stride=2, padding=p)
        self.conv2 = nn.Conv2d(w1, w2, k, stride=2, padding=p)
        self.out = nn.Linear(7 * 7 * w2, 1)

    def forward(self, x):
        x = F.leaky_relu(self.conv1(x), self.negative_slope)
        x = F.leaky_relu(self.conv2(x), self.negative_slope)
        return self.out(x.flatten(1))[:, 0]  # [batch] logits


def make_models(arch: str, *, batch_norm: bool = True) -> tuple[nn.Module, nn.Module]:
    """``(generator, discriminator)`` for ``arch`` in ``("mlp", "dcgan")``, default widths.

    ``batch_norm`` selects the DCGAN generator with or without batch normalization.
    """
    if arch == "mlp":
        return MLPGenerator(), MaxoutDiscriminator()
    if arch == "dcgan":
        return DCGANGenerator(batch_norm=batch_norm), DCGANDiscriminator()
    raise ValueError(f"unknown arch {arch!r}")


def _hwc_to_flipped_chw(hwc_index_major: np.ndarray, height: int, width: int) -> np.ndarray:
    """Reorders an axis of ``height * width * channels`` HWC units into mirrored CHW order."""
    c = hwc_index_major.shape[0] // (height * width)
    units = hwc_index_major.reshape((height, width, c) + hwc_index_major.shape[1:])
    units = units[::-1, ::-1]  # the PyTorch net sees both image axes mirrored
    return np.moveaxis(units, 2, 0).reshape(hwc_index_major.shape)


def load_jax_params(arch: str, generator: nn.Module, discriminator: nn.Module,
                    g_params, d_params, g_batch_stats=None) -> None:
    """Copies jaxgan parameters into the PyTorch modules, in place (see the module docstring).

    Args:
      arch: ``"mlp"`` or ``"dcgan"``.
      generator, discriminator: modules from ``make_models(arch)``.
      g_params, d_params: the matching jaxgan parameter trees (arrays convertible to numpy).
      g_batch_stats: the generator's batch-normalization running averages, if it has any.
    """
    def put(param, value):
        with torch.no_grad():
            param.copy_(torch.from_numpy(np.array(value, dtype=np.float32)))

    def dense(linear, tree):
        put(linear.weight, np.asarray(tree["kernel"]).T)
        if linear.bias is not None:
            put(linear.bias, tree["bias"])

    if arch == "mlp":
        dense(generator.hidden[0], g_params["Dense_0"])
        dense(generator.hidden[1], g_params["Dense_1"])
        # G's 784 outputs and D's 784 inputs are image pixels: mirrored like the conv nets'.
        out = g_params["Dense_2"]
        put(generator.out.weight, _hwc_to_flipped_chw(np.asarray(out["kernel"]).T, 28, 28))
        put(generator.out.bias, _hwc_to_flipped_chw(np.asarray(out["bias"]), 28, 28))
        first = d_params["Maxout_0"]["Dense_0"]
        put(discriminator.maxouts[0].linear.weight,
            _hwc_to_flipped_chw(np.asarray(first["kernel"]), 28, 28).T)
        put(discriminator.maxouts[0].linear.bias, first["bias"])
        for i, maxout in enumerate(discriminator.maxouts[1:], start=1):
            dense(maxout.linear, d_params[f"Maxout_{i}"]["Dense_0"])
        dense(discriminator.out, d_params["Dense_0"])
        return
    if arch != "dcgan":
        raise ValueError(f"unknown arch {arch!r}")
    # G's projection: its 7*7*w0 output units meet a reshape to an image.
    kernel = np.asarray(g_params["Dense_0"]["kernel"])  # [latent, 7*7*w0], HWC
    put(generator.project.weight, _hwc_to_flipped_chw(kernel.T, 7, 7))
    # Transposed convolutions: mirrored input and output with the same, unflipped taps
    # (Flax does not flip; PyTorch's transposed conv does, and the mirror flips once more).
    for i, conv in enumerate((generator.conv1, generator.conv2, generator.conv3)):
        tree = g_params[f"ConvTranspose_{i}"]
        put(conv.weight, np.asarray(tree["kernel"]).transpose(2, 3, 0, 1))  # [in, out, kh, kw]
        if conv.bias is not None:
            put(conv.bias, tree["bias"])
    for i, norm in enumerate(generator.norms):
        if isinstance(norm, nn.BatchNorm2d):  # per channel: untouched by the mirror
            put(norm.weight, g_params[f"BatchNorm_{i}"]["scale"])
            put(norm.bias, g_params[f"BatchNorm_{i}"]["bias"])
            if g_batch_stats:
                put(norm.running_mean, g_batch_stats[f"BatchNorm_{i}"]["mean"])
                put(norm.running_var, g_batch_stats[f"BatchNorm_{i}"]["var"])
    # Convolutions: mirrored input and output need the mirrored kernel.
    for i, conv in enumerate((discriminator.conv1, discriminator.conv2)):
        tree = d_params[f"Conv_{i}"]
        kernel = np.asarray(tree["kernel"])[::-1, ::-1]  # [kh, kw, in, out]
        put(conv.weight, kernel.transpose(3, 2, 0, 1))  # [out, in, kh, kw]
        put(conv.bias, tree["bias"])
    kernel = np.asarray(d_params["Dense_0"]["kernel"])  # [7*7*w2, 1], HWC
    put(discriminator.out.weight, _hwc_to_flipped_chw(kernel, 7, 7).T)
    put(discriminator.out.bias, d_params["Dense_0"]["bias"])


def jax_images_to_torch(images: np.ndarray, channels_last: bool = False,
                        device=None) -> torch.Tensor:
    """``[batch, 28, 28, 1]`` NHWC images -> the mirrored NCHW tensor the PyTorch nets take
    (stored ``torch.channels_last`` with ``channels_last``: the same values), on ``device``
    (``None``: the CPU)."""
    images = np.asarray(images, np.float32)[:, ::-1, ::-1, :]
    tensor = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))
    if device is not None:
        tensor = tensor.to(device)
    return tensor.contiguous(memory_format=torch.channels_last) if channels_last else tensor


class TorchGAN:
    """One Algorithm 1 iteration (k = 1), non-saturating G loss, Adam for both players.

    Args:
      arch: ``"mlp"`` or ``"dcgan"``.
      batch_norm: the DCGAN generator with batch normalization (see ``DCGANGenerator``).
      seed: seeds PyTorch's generator (noise, dropout, default initialization).
      channels_last: the DCGAN pair's weights in ``torch.channels_last`` memory format, so
        that its convolutions and their activations run NHWC (give it images from
        ``jax_images_to_torch(..., channels_last=True)``); the same function.
      device: where the modules, the noise and the labels live (``None``: the CPU); give it
        images on the same device.
      dtype: ``None`` (float32) or ``torch.bfloat16``/``torch.float16``: the forward passes
        run under ``torch.autocast`` in that dtype; parameters, gradients and Adam's state
        stay float32. On CUDA, Adam is PyTorch's fused implementation (the same update).
    """

    def __init__(self, arch: str, *, batch_norm: bool = True, seed: int = 0,
                 lr: float = 2e-4, b1: float = 0.5, channels_last: bool = False,
                 device=None, dtype=None):
        if channels_last and arch != "dcgan":
            raise ValueError(
                f"channels_last is a layout of the dcgan pair's images, not {arch!r}'s")
        if dtype not in (None, torch.float32, torch.bfloat16, torch.float16):
            raise ValueError(f"dtype: None, torch.float32, torch.bfloat16 or torch.float16, "
                             f"got {dtype!r}")
        torch.manual_seed(seed)
        self.arch = arch
        self.device = torch.device(device if device is not None else "cpu")
        self.dtype = None if dtype == torch.float32 else dtype
        self.generator, self.discriminator = make_models(arch, batch_norm=batch_norm)
        self.generator.to(self.device)
        self.discriminator.to(self.device)
        if channels_last:
            self.generator.to(memory_format=torch.channels_last)
            self.discriminator.to(memory_format=torch.channels_last)
        self.generator.train()
        self.discriminator.train()  # dropout on in both updates, as in jaxgan's steps
        fused = {"fused": True} if self.device.type == "cuda" else {}
        self.g_optimizer = torch.optim.Adam(self.generator.parameters(), lr=lr,
                                            betas=(b1, 0.999), **fused)
        self.d_optimizer = torch.optim.Adam(self.discriminator.parameters(), lr=lr,
                                            betas=(b1, 0.999), **fused)

    def _autocast(self):
        """The forward passes' precision context: autocast to ``dtype``, or nothing."""
        return torch.autocast(self.device.type, dtype=self.dtype, enabled=self.dtype is not None)

    def _noise(self, batch: int) -> torch.Tensor:
        return torch.randn(batch, LATENT_DIM, device=self.device)

    def load_jax_params(self, g_params, d_params, g_batch_stats=None) -> None:
        """Starts from jaxgan's parameters (see ``load_jax_params``)."""
        load_jax_params(self.arch, self.generator, self.discriminator, g_params, d_params,
                        g_batch_stats)

    def d_loss(self, real: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """-V(D, G) on ``real`` and G(z); G is not differentiated.

        G runs in training mode (batch statistics), but, as in ``jaxgan.d_step``, its running
        averages are left alone: momentum 0 keeps them (one multiply-add per channel).
        """
        batch = real.shape[0]
        norms = [m for m in self.generator.modules() if isinstance(m, nn.BatchNorm2d)]
        momenta = [m.momentum for m in norms]
        for m in norms:
            m.momentum = 0.0
        try:
            with torch.no_grad(), self._autocast():
                fake = self.generator(z)
        finally:
            for m, momentum in zip(norms, momenta):
                m.momentum = momentum
        with self._autocast():
            logits = self.discriminator(torch.cat([real, fake.to(real.dtype)], dim=0))
        logits = logits.float()  # the losses in float32, as jaxgan's logits are
        ones = torch.ones(batch, device=logits.device)
        zeros = torch.zeros(batch, device=logits.device)
        return (F.binary_cross_entropy_with_logits(logits[:batch], ones)
                + F.binary_cross_entropy_with_logits(logits[batch:], zeros))

    def g_loss(self, z: torch.Tensor) -> torch.Tensor:
        """-E_z[log D(G(z))] (non-saturating)."""
        with self._autocast():
            logits = self.discriminator(self.generator(z))
        logits = logits.float()
        return F.binary_cross_entropy_with_logits(
            logits, torch.ones(z.shape[0], device=logits.device))

    def train_step(self, real: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One D update on ``real`` ``[batch, 1, 28, 28]`` then one G update; returns the losses.

        The losses are returned as tensors (no host sync); call ``float`` on them to wait.
        """
        batch = real.shape[0]
        d_loss = self.d_loss(real, self._noise(batch))
        self.d_optimizer.zero_grad(set_to_none=True)
        d_loss.backward()
        self.d_optimizer.step()

        # D's weights are constants of the G update: no gradient is computed for them.
        self.discriminator.requires_grad_(False)
        g_loss = self.g_loss(self._noise(batch))
        self.g_optimizer.zero_grad(set_to_none=True)
        g_loss.backward()
        self.g_optimizer.step()
        self.discriminator.requires_grad_(True)
        return d_loss.detach(), g_loss.detach()

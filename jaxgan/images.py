"""Sample grids: tiling generated images into one image and writing it as a PNG."""

from __future__ import annotations

import math
import os

import numpy as np
from PIL import Image

from jaxgan.files import atomic_path


def make_grid(images: np.ndarray, *, columns: int | None = None, padding: int = 2) -> np.ndarray:
    """Tiles images ``[n, h, w]``, ``[n, h, w, 1]`` or ``[n, h, w, 3]`` in [0, 1] into one
    uint8 ``[H, W]`` (grayscale) or ``[H, W, 3]`` (color).

    Args:
      images: the images, values in [0, 1] (clipped).
      columns: images per row; default ``ceil(sqrt(n))``.
      padding: pixels of black between and around the images.
    """
    images = np.asarray(images, np.float32)
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    if images.ndim not in (3, 4) or len(images) == 0 or images.ndim == 4 and images.shape[-1] != 3:
        raise ValueError(f"make_grid needs images [n, h, w] or [n, h, w, 3], got shape {images.shape}")
    n, h, w = images.shape[:3]
    columns = columns or math.ceil(math.sqrt(n))
    rows = math.ceil(n / columns)
    size = (rows * (h + padding) + padding, columns * (w + padding) + padding)
    grid = np.zeros(size + images.shape[3:], np.uint8)
    pixels = np.round(np.clip(images, 0.0, 1.0) * 255.0).astype(np.uint8)
    for i in range(n):
        top = padding + (i // columns) * (h + padding)
        left = padding + (i % columns) * (w + padding)
        grid[top : top + h, left : left + w] = pixels[i]
    return grid


def save_grid(images: np.ndarray, path: str | os.PathLike, *, scale: int = 2, **kwargs) -> None:
    """Writes ``make_grid(images)`` as a PNG, each pixel ``scale`` x ``scale``, atomically."""
    grid = Image.fromarray(make_grid(images, **kwargs))
    if scale != 1:
        grid = grid.resize((grid.width * scale, grid.height * scale), Image.NEAREST)
    with atomic_path(path) as tmp:
        grid.save(tmp, format="PNG")

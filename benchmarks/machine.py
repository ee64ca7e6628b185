"""What machine a benchmark ran on (the CPU model, its vector ISA, the accelerator, the
library versions), and torch, loaded as the benchmarks compare against it."""

from __future__ import annotations

import os
import platform
import re

import jax
import numpy as np
import optax

import jaxgan.compile


def accelerated() -> bool:
    """Whether JAX's default backend is an accelerator (GPU or TPU), not the CPU."""
    return jax.default_backend() != "cpu"


def load_torch():
    """``torch``, or ``None`` where it is not installed (an optional benchmark dependency:
    ``pip install torch==2.13.0``).

    PyTorch's OpenMP threads spin-wait by default. Where other processes share the cores, a
    spinning thread that waits for a descheduled one stalls every parallel region (the
    reference's MLP step measured 40x slower at load average 7), so OpenMP's waits are made
    passive (``OMP_WAIT_POLICY=PASSIVE``) unless the environment sets them. OpenMP reads the
    variable once, as torch loads it: the benchmarks call this before anything imports torch.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        import torch
    except ImportError:  # pragma: no cover - depends on the environment
        return None
    return torch


# The vector extensions that decide XLA:CPU's and PyTorch's kernels, widest first.
ISA_FLAGS = ("avx512f", "avx512_bf16", "avx512_vnni", "amx_tile", "avx2", "fma", "avx")


def _cpuinfo() -> dict[str, str]:
    """The first processor's fields of /proc/cpuinfo (empty where there is none)."""
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if not line.strip():
                    break
                key, _, value = line.partition(":")
                fields[key.strip()] = value.strip()
    except OSError:
        pass
    return fields


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def machine_kind(cpu: str, flags: set[str], accelerator: str | None = None,
                 family: str | None = None, model: str | None = None) -> str:
    """A file-name-safe name of the machine kind: the CPU model, its widest vector ISA and,
    where ``/proc/cpuinfo`` gives them, the CPU family and model numbers (``AMD EPYC`` with
    avx512f, family 25, model 17 -> ``amd-epyc-avx512-f25m17``; without avx512f, with avx2
    -> ``amd-epyc-avx2-f25m1``), or, where the benchmark ran on an accelerator, its device
    kind (``NVIDIA H200`` -> ``nvidia-h200``). The numbers matter: virtual machines name
    every AMD EPYC alike, and two generations with AVX-512 (family 25 model 17 and family 26
    model 2) are different machines to compare against."""
    if accelerator:
        return _slug(accelerator) or "accelerator"
    isa = "avx512" if "avx512f" in flags else "avx2" if "avx2" in flags else "no-avx2"
    name = re.sub(r"\(.*?\)|\b(processor|cpu)\b|@.*", " ", cpu, flags=re.I)
    kind = f"{_slug(name) or platform.machine()}-{isa}"
    if all(str(n).strip().isdigit() for n in (family, model)):
        kind += f"-f{int(family)}m{int(model)}"
    return kind


def describe_machine(torch_threads) -> dict:
    """The machine and library versions a results file records; ``torch_threads``: the
    PyTorch reference's threads (``None``: no reference ran)."""
    torch = load_torch() if torch_threads is not None else None
    info = _cpuinfo()
    cpu = info.get("model name") or platform.processor() or platform.machine()
    flags = set(info.get("flags", "").split())
    import flax
    import jaxlib

    accelerator = jax.devices()[0].device_kind if accelerated() else None
    return {
        "kind": machine_kind(cpu, flags, accelerator, info.get("cpu family"), info.get("model")),
        "backend": jax.default_backend(),
        "device": accelerator,
        "device_count": jax.device_count(),
        "cpu": cpu,
        "cpu_family": info.get("cpu family"),
        "cpu_model": info.get("model"),
        "isa": [name for name in ISA_FLAGS if name in flags],
        "cores": os.cpu_count(),
        "numpy": np.__version__,
        "jaxlib": jaxlib.__version__,
        "jax": jax.__version__,
        "flax": flax.__version__,
        "optax": optax.__version__,
        "torch": torch.__version__ if torch is not None else None,
        "torch_threads": torch_threads,
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "compiler_options": jaxgan.compile.compiler_options(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", ""),
        "load_before": None,
        "load_after": None,
    }

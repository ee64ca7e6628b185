"""The XLA compiler options jaxgan compiles its update steps with, per backend.

On the CPU, XLA (jaxlib 0.10) hands dots, convolutions and dots fused with elementwise work
to the YNNPACK library by default; for this project's convolutions and fused layers XLA's own
emitters and Eigen kernels are faster (``python -m benchmarks.train_step`` and
``python -m benchmarks.config_steps`` time the steps compiled both ways in one process), so
jaxgan's compiled steps keep YNNPACK for single dots only
(``xla_cpu_experimental_ynn_fusion_type`` = individual dots). And they place copies by
region analysis (``xla_cpu_copy_insertion_use_region_analysis``): with the state donated,
XLA's default copy insertion copies parameters and Adam moments that an in-place update
still reads; region analysis finds that none of those copies is needed, with the same results
bit for bit (``tests/test_backend_choice.py`` checks both). The options apply to the functions compiled with them,
never to the process: ``XLA_FLAGS`` and every other ``jax.jit`` are left as they are. Other
backends get no options.

Pass them to your own ``jax.jit`` to compile a step as the trainer does (``import
jaxgan.compile``; internal: the options may change with jaxlib)::

    step = jax.jit(functools.partial(jaxgan.train_step, gan), donate_argnums=0,
                   compiler_options=jaxgan.compile.compiler_options())
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

CPU_OPTIONS = {
    "xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT",
    "xla_cpu_copy_insertion_use_region_analysis": True,
}


@functools.cache
def _cpu_options_known() -> bool:
    """Whether this jaxlib's CPU compiler accepts ``CPU_OPTIONS`` (a jaxlib that renamed or
    dropped the option then compiles with its defaults instead of failing)."""
    try:
        x = jax.device_put(jnp.zeros((), jnp.float32), jax.local_devices(backend="cpu")[0])
        jax.jit(lambda x: x + 1, compiler_options=CPU_OPTIONS).lower(x).compile()
    except Exception:  # noqa: BLE001 - any refusal means: do not pass the option
        return False
    return True


def compiler_options(backend: str | None = None) -> dict:
    """The compiler options for jaxgan's steps on ``backend`` (default: JAX's default
    backend): ``CPU_OPTIONS`` on ``"cpu"`` when this jaxlib knows them, else ``{}``.

    A new dict each call, for ``jax.jit(..., compiler_options=...)``.
    """
    backend = jax.default_backend() if backend is None else backend
    if backend != "cpu" or not _cpu_options_known():
        return {}
    return dict(CPU_OPTIONS)

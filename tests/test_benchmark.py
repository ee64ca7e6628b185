"""The benchmark's report: results kept per machine kind, tables that say what they are."""

import glob
import os

from benchmarks import train_step as benchmark
from tests.support import tiny_config


def test_machine_kind_names_the_cpu_model_and_its_widest_isa():
    assert benchmark.machine_kind("AMD EPYC", {"avx2", "fma"}) == "amd-epyc-avx2"
    # the family and model numbers tell apart the AVX-512 generations that VMs name alike
    assert benchmark.machine_kind("AMD EPYC", {"avx512f"}, None, "25", "17") == "amd-epyc-avx512-f25m17"
    assert benchmark.machine_kind("AMD EPYC", {"avx512f"}, None, "26", "2") == "amd-epyc-avx512-f26m2"
    assert benchmark.machine_kind("AMD EPYC", {"avx2"}, None, "25", "1") == "amd-epyc-avx2-f25m1"
    assert benchmark.machine_kind("AMD EPYC", {"avx2"}, None, "", "1") == "amd-epyc-avx2"
    assert benchmark.machine_kind("AMD EPYC", {"avx512f"}, "NVIDIA H200", "26", "2") == "nvidia-h200"
    assert benchmark.machine_kind("AMD EPYC", {"avx2", "avx512f"}) == "amd-epyc-avx512"
    assert benchmark.machine_kind("Intel(R) Xeon(R) CPU @ 2.20GHz", {"avx2"}) == "intel-xeon-avx2"
    assert benchmark.machine_kind("ARM", set()) == "arm-no-avx2"


def test_report_names_the_kind_and_captions_the_profile_as_its_own_table():
    record = dict(arch="mlp", batch=64, impl="jaxgan", steps_per_s=10.0, images_per_s=640.0,
                  ms_per_step=100.0, vs_pytorch=None, gflop_per_step=2.0, gflops=20.0,
                  roof_fraction=0.1, compile_s=1.0, xla_gflop_per_step=None)
    machine = dict(kind="amd-epyc-avx2", cpu="AMD EPYC", cpu_family="25", cpu_model="1",
                   isa=["avx2", "fma"], cores=2, jax="x", jaxlib="x", flax="x", optax="x",
                   torch=None, torch_threads=None, omp_wait_policy="", xla_flags="",
                   load_before=[0.0], load_after=[0.0])
    profile = dict(arch="mlp", batch=64, total_ms=5.0, by_kind_ms={"dot": 4.0, "other": 1.0},
                   top_ops=[dict(ms=4.0, op="dot.1", what="dot f32[64,1200]")])
    text = benchmark.markdown(dict(records=[record], machine=machine, date="today",
                                   roof_gflops=200.0, settings={"repeats": 3},
                                   profiles=[profile]))
    assert "Machine kind `amd-epyc-avx2`: AMD EPYC (family 25, model 1; ISA: avx2, fma)" in text
    assert "Table 2: where the time of one jaxgan step goes, mlp at batch 64" in text
    lines = text.splitlines()
    caption = next(i for i, line in enumerate(lines) if line.startswith("Table 2:"))
    assert lines[caption + 1] == "" and lines[caption + 2] == "| ms | share | op | computes |"
    assert "| 4.00 | 80.0% | dot.1 | dot f32[64,1200] |" in text


def test_report_names_the_compiler_options_and_the_profiled_wall_time():
    record = dict(arch="dcgan", batch=64, impl="jaxgan", steps_per_s=4.0, images_per_s=256.0,
                  ms_per_step=250.0, vs_pytorch=None, gflop_per_step=36.0, gflops=144.0,
                  roof_fraction=0.8, compile_s=1.0, xla_gflop_per_step=None)
    machine = dict(kind="amd-epyc-avx512", cpu="AMD EPYC", cpu_family="25", cpu_model="17",
                   isa=["avx512f"], cores=2, jax="x", jaxlib="x", flax="x", optax="x",
                   torch=None, torch_threads=None, omp_wait_policy="", xla_flags="",
                   compiler_options={"xla_cpu_experimental_ynn_fusion_type": ""},
                   load_before=[0.0], load_after=[0.0])
    profile = dict(arch="dcgan", batch=64, total_ms=40.0, wall_ms=250.0, by_kind_ms={"other": 40.0},
                   top_ops=[dict(ms=40.0, op="fusion.1", what="other f32[64]")])
    text = benchmark.markdown(dict(records=[record], machine=machine, date="today",
                                   roof_gflops=180.0, settings={"repeats": 3},
                                   profiles=[profile]))
    assert "compiler_options={'xla_cpu_experimental_ynn_fusion_type': ''}" in text
    assert "40.0 ms of named op time per step" in text and "the step took 250.0 ms" in text
    assert "What this run's roof allows" not in text  # no PyTorch time, no bound

    # 36 GFLOP at 180 GFLOP/s take 200 ms: PyTorch's 220 ms is 1.10x that; 27 GFLOP 150 ms
    record.update(vs_pytorch=0.88, pytorch_ms_per_step=220.0, gflop_per_step_reaching=27.0)
    text = benchmark.markdown(dict(records=[record], machine=machine, date="today",
                                   roof_gflops=180.0, settings={"repeats": 3}))
    assert ("dcgan/64: 36.00 GFLOP in 200.0 ms, at most 1.10x or 27.00 GFLOP in 150.0 ms, "
            "at most 1.47x.") in text


def test_config_steps_times_the_option_sets_and_refuses_unknown_names(capsys):
    import pytest

    from benchmarks import config_steps

    times = config_steps.time_config(tiny_config(), repeats=1, block_s=0.01,
                                     without=("xla_cpu_copy_insertion_use_region_analysis",))
    assert set(times) == {"jaxgan.compile.compiler_options()", "jaxlib's default options",
                          "jaxgan.compile.compiler_options() without "
                          "xla_cpu_copy_insertion_use_region_analysis"}
    assert all(ms > 0 for ms in times.values())
    for flags, message in ((["--preset", "nope"], "--preset: choose from"),
                           (["--without", "nope"], "--without: not one of jaxgan's")):
        with pytest.raises(SystemExit) as exit_info:
            config_steps.main(flags)
        assert exit_info.value.code != 0
        assert message in capsys.readouterr().err


def test_pytorch_reference_computes_jaxgan_s_dcgan_in_both_layouts():
    """The reference is timed NCHW and channels_last: both must be jaxgan's function (torch is
    an optional dependency, ``.[bench]``)."""
    import jax
    import pytest

    pytest.importorskip("torch")

    benchmark.load_torch_reference()  # torch and the reference, as main loads them
    gan = benchmark.make_gan("dcgan")
    state = gan.init(jax.random.key(0))
    checks = [benchmark.check_reference("dcgan", gan, state, batch=2, channels_last=layout)
              for layout in benchmark.TORCH_LAYOUTS["dcgan"]]
    assert len(checks) == 2
    for check in checks:
        assert set(check) == {"g_images", "d_logits", "d_loss", "g_loss", "d_grad_norm",
                              "g_grad_norm"}
        assert max(check.values()) < 1e-4, check
    torch = pytest.importorskip("torch")
    benchmark.load_torch_reference()  # torch and the reference, as main loads them
    conv = benchmark.torch_reference.TorchGAN("dcgan", channels_last=True).discriminator.conv2
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert not conv.weight.is_contiguous()  # the premise: NCHW and NHWC strides differ
    with pytest.raises(ValueError, match="channels_last"):
        benchmark.torch_reference.TorchGAN("mlp", channels_last=True)


def test_layer_benchmark_covers_the_step_s_convolutions(capsys):
    """Its layers are the DCGAN step's convolutions: the same FLOPs as the step's count (G at
    the batch, D at twice it), and a run prints one row per layer."""
    import jaxgan
    from benchmarks import layers as layer_benchmark

    generator, discriminator = jaxgan.make_models("dcgan")
    g, d = benchmark._layer_flops("dcgan", generator, discriminator)
    found = layer_benchmark.dcgan_convolutions(3)
    assert [layer["flops"] for layer in found] == [3 * f for f in g[1:]] + [6 * f for f in d[:2]]
    g, d = benchmark._layer_flops("dcgan", generator, discriminator, padding_taps=False)
    assert ([layer["reaching_flops"] for layer in found]
            == [3 * f for f in g[1:]] + [6 * f for f in d[:2]])
    assert [layer["shape"] for layer in found] == [
        (3, 7, 7, 256), (3, 7, 7, 128), (3, 14, 14, 64), (6, 28, 28, 1), (6, 14, 14, 64)]
    rows = layer_benchmark.main(["--batch", "2", "--repeats", "1", "--block-s", "0.01",
                                 "--no-torch"])
    assert len(rows) == 5 and all(t > 0 for row in rows for t in row["ms"].values())
    out = capsys.readouterr().out
    assert out.count("| G convT 5x5 s1 256->128, 7x7 | 2 |") == 1
    assert "| 69% |" in out  # 29 x 29 of the 35 x 35 pixel-tap pairs reach the 7x7 image


def test_reaching_taps_counts_the_pixel_tap_pairs_inside_the_image():
    """By hand: 5 taps over 7 pixels at stride 1 reach 3,4,5,5,5,4,3 = 29 of 35; the DCGAN's
    stride-2 layers lose one tap at the low edge and two at the high one. And as Flax pads:
    a convolution of an all-ones image with an all-ones kernel sums, over its outputs, the
    pairs that land inside the image (both dimensions: the square of one's count)."""
    import flax.linen as nn
    import jax.numpy as jnp

    assert benchmark.reaching_taps(7, 5, 1, transposed=True) == 3 + 4 + 5 + 5 + 5 + 4 + 3
    assert benchmark.reaching_taps(7, 5, 2, transposed=True) == 4 + 5 * 5 + 3
    assert benchmark.reaching_taps(14, 5, 2) == 4 + 5 * 5 + 3
    assert benchmark.reaching_taps(28, 5, 2) == 4 + 12 * 5 + 3
    assert benchmark.reaching_taps(4, 3, 1) == 2 + 3 + 3 + 2
    for side, kernel, stride, transposed in ((7, 5, 1, True), (7, 5, 2, True), (14, 5, 2, True),
                                             (28, 5, 2, False), (14, 5, 2, False),
                                             (6, 3, 2, True), (9, 4, 3, False)):
        cls = nn.ConvTranspose if transposed else nn.Conv
        layer = cls(1, (kernel, kernel), strides=(stride, stride), padding="SAME",
                    use_bias=False)
        ones = jnp.ones((1, side, side, 1))
        params = {"params": {"kernel": jnp.ones((kernel, kernel, 1, 1))}}
        assert int(layer.apply(params, ones).sum()) == benchmark.reaching_taps(
            side, kernel, stride, transposed) ** 2, (side, kernel, stride, transposed)


def test_step_flops_without_padding_taps_is_the_count_of_taps_that_reach_the_image():
    import jaxgan

    generator, discriminator = jaxgan.make_models("dcgan")
    full = benchmark.step_flops("dcgan", generator, discriminator, 1)["total"]
    reaching = benchmark.step_flops("dcgan", generator, discriminator, 1,
                                    padding_taps=False)["total"]
    g, d = benchmark._layer_flops("dcgan", generator, discriminator, padding_taps=False)
    assert g[1] == 2.0 * 29**2 * 256 * 128 and d[1] == 2.0 * 32**2 * 64 * 128
    assert g[0] == 2.0 * 100 * 49 * 256 and d[2] == 2.0 * 49 * 128  # dense layers: no taps
    assert 0.7 < reaching / full < 0.8
    mlp = jaxgan.make_models("mlp")
    assert (benchmark.step_flops("mlp", *mlp, 64, padding_taps=False)
            == benchmark.step_flops("mlp", *mlp, 64))


def test_machine_kind_on_an_accelerator_is_its_device_kind():
    assert benchmark.machine_kind("AMD EPYC", {"avx512f"}, "NVIDIA H200") == "nvidia-h200"
    assert benchmark.machine_kind("AMD EPYC", {"avx512f"}, "TPU v5 lite") == "tpu-v5-lite"
    assert benchmark.machine_kind("AMD EPYC", {"avx512f"}, None) == "amd-epyc-avx512"


def test_op_times_reads_cpu_threads_and_accelerator_kernels_by_hlo_op():
    """Per-op milliseconds per step from a trace: on the CPU the pool threads' thunks (the
    executor's own events skipped), on an accelerator the device planes' kernels grouped by
    the HLO op they ran for. A hand-made trace of known durations."""
    from types import SimpleNamespace as NS

    def event(name, ns, **stats):
        return NS(name=name, duration_ns=ns, stats=list(stats.items()))

    cpu = NS(name="/host:CPU", lines=[
        NS(name="tf_XLAEigen/1", events=[event("fusion.1", 4e6), event("ThunkExecutor", 9e6),
                                         event("dot.2", 2e6)]),
        NS(name="tf_XLAEigen/2", events=[event("fusion.1", 2e6)]),
        NS(name="python", events=[event("fusion.1", 7e6)]),
    ])
    gpu = NS(name="/device:GPU:0", lines=[
        NS(name="Stream #13", events=[event("loop_fusion_kernel", 3e6, hlo_op="fusion.1"),
                                      event("sm90_gemm", 5e6, hlo_op="dot.2"),
                                      event("memcpy", 1e6)]),
        NS(name="Stream #14", events=[event("loop_fusion_kernel", 1e6, hlo_op="fusion.1")]),
    ])
    data = NS(planes=[cpu, gpu])
    assert dict(benchmark._op_times(data, accelerated=False, iters=2)) == {
        "fusion.1": 3.0, "dot.2": 1.0}
    assert dict(benchmark._op_times(data, accelerated=True, iters=2)) == {
        "fusion.1": 2.0, "dot.2": 2.5, "memcpy": 0.5}


def test_report_says_dtype_device_and_precision():
    record = dict(arch="dcgan", batch=1024, impl="jaxgan", steps_per_s=100.0,
                  images_per_s=102400.0, ms_per_step=10.0, vs_pytorch=1.2, gflop_per_step=580.0,
                  gflops=58000.0, roof_fraction=0.1, compile_s=1.0, xla_gflop_per_step=None)
    machine = dict(kind="nvidia-h200", backend="gpu", device="NVIDIA H200", device_count=1,
                   torch_device="NVIDIA H200", cpu="AMD EPYC", cpu_family="25", cpu_model="17",
                   isa=["avx512f"], cores=16, jax="x", jaxlib="x", flax="x", optax="x",
                   torch="x", torch_threads=16, omp_wait_policy="", xla_flags="",
                   precision={"option": "default", "torch_matmul_tf32": True},
                   load_before=[0.0], load_after=[0.0])
    profile = dict(arch="dcgan", batch=1024, backend="gpu", total_ms=8.0, wall_ms=10.0,
                   by_kind_ms={"conv": 8.0}, top_ops=[dict(ms=8.0, op="conv.1", what="conv")])
    text = benchmark.markdown(dict(records=[record], machine=machine, date="today",
                                   roof_gflops=580000.0, roof_size=8192,
                                   settings={"repeats": 3, "dtype": "bfloat16"},
                                   profiles=[profile]))
    assert "JAX on gpu (NVIDIA H200, 1 device(s)), PyTorch on NVIDIA H200" in text
    assert ("Computation dtype bfloat16; float32 precision 'default' "
            "(torch_matmul_tf32=True)") in text
    assert "a 8192x8192 bfloat16 matmul" in text
    assert "the device's kernel time; the step took 10.0 ms" in text


def test_pytorch_reference_in_bfloat16_is_the_same_step_at_lower_precision():
    """``TorchGAN(dtype=torch.bfloat16)``: forward passes under autocast (bf16 convolutions),
    float32 parameters and losses; its losses from the same parameters and noise agree with
    float32's to bfloat16's precision (8 bits of mantissa), not exactly."""
    import jax
    import numpy as np
    import pytest

    torch = pytest.importorskip("torch")

    benchmark.load_torch_reference()  # torch and the reference, as main loads them
    gan = benchmark.make_gan("dcgan")
    state = gan.init(jax.random.key(0))
    rng = np.random.default_rng(0)
    real = benchmark.torch_reference.jax_images_to_torch(
        np.asarray(gan.from_unit_interval(rng.uniform(0, 1, (4, 28, 28, 1))), np.float32))
    z = torch.from_numpy(rng.standard_normal((4, 100)).astype(np.float32))
    losses = {}
    for dtype in (None, torch.bfloat16):
        reference = benchmark.torch_reference.TorchGAN("dcgan", dtype=dtype)
        reference.load_jax_params(state.g_params, state.d_params, state.g_batch_stats)
        reference.discriminator.eval()
        d_loss, g_loss = reference.d_loss(real, z), reference.g_loss(z)
        assert d_loss.dtype == g_loss.dtype == torch.float32
        assert all(p.dtype == torch.float32 for p in reference.generator.parameters())
        losses[dtype] = (d_loss.item(), g_loss.item())
    for full, low in zip(losses[None], losses[torch.bfloat16]):
        assert low != full and abs(low - full) < 2e-2 * abs(full), losses
    d_loss, g_loss = benchmark.torch_reference.TorchGAN("mlp", dtype=torch.bfloat16).train_step(
        torch.zeros(4, 1, 28, 28))
    assert np.isfinite(d_loss.item()) and np.isfinite(g_loss.item())
    with pytest.raises(ValueError, match="dtype"):
        benchmark.torch_reference.TorchGAN("mlp", dtype=torch.int8)


def test_benchmark_runs_in_bfloat16_and_keeps_its_own_results_file(tmp_path):
    """A ``--dtype bfloat16`` run times the mixed-precision step and writes KIND-bfloat16.*
    only, never a float32 run's KIND.* files."""
    import json

    results = benchmark.main(["--arch", "mlp", "--batch", "8", "--repeats", "1",
                              "--block-s", "0.01", "--fused", "0", "--no-torch",
                              "--compare-compiler", "false", "--dtype", "bfloat16",
                              "--output-dir", str(tmp_path)])
    kind = results["machine"]["kind"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{kind}-bfloat16.json",
                                                          f"{kind}-bfloat16.md"]
    saved = json.loads((tmp_path / f"{kind}-bfloat16.json").read_text())
    assert [r["dtype"] for r in saved["records"]] == ["bfloat16"]
    assert saved["records"][0]["steps_per_s"] > 0
    assert "Computation dtype bfloat16" in (tmp_path / f"{kind}-bfloat16.md").read_text()


def test_without_times_the_step_less_one_compiler_option_and_refuses_unknown_names(tmp_path):
    import pytest

    results = benchmark.main(["--arch", "mlp", "--batch", "8", "--repeats", "1",
                              "--block-s", "0.01", "--fused", "0", "--no-torch",
                              "--compare-compiler", "false", "--without",
                              "xla_cpu_copy_insertion_use_region_analysis",
                              "--output-dir", str(tmp_path)])
    assert [r["impl"] for r in results["records"]] == [
        "jaxgan", "jaxgan without xla_cpu_copy_insertion_use_region_analysis"]
    assert all(r["steps_per_s"] > 0 for r in results["records"])
    with pytest.raises(SystemExit) as exit_info:
        benchmark.main(["--without", "xla_cpu_no_such_option", "--output-dir", str(tmp_path)])
    assert exit_info.value.code != 0


def test_profile_times_the_donated_step_by_hlo_op():
    """The profile of a step reads named XLA ops, each with a time and a description from the
    compiled HLO, within the step's wall time summed over the cores."""
    import os

    prof = benchmark.profile_step("mlp", 4, iters=2, top=3)
    assert len(prof["top_ops"]) == 3 and prof["wall_ms"] > 0
    assert all(op["ms"] > 0 and op["what"] for op in prof["top_ops"])
    assert prof["total_ms"] <= prof["wall_ms"] * os.cpu_count() * 1.5


def test_performance_page_tables_are_rendered_from_the_results_files(tmp_path):
    """docs/performance.md's tables are what ``python -m benchmarks.report`` renders from
    benchmarks/results/*.json (no figure typed by hand), and a results file's figure reaches
    the page."""
    import json
    import shutil

    from benchmarks import report

    with open(report.PAGE) as f:
        page = f.read()
    assert report.render_page(page) == page, "stale: run python -m benchmarks.report"
    source = sorted(glob.glob(os.path.join(report.RESULTS, "*.json")))[0]
    with open(source) as f:
        results = json.load(f)
    results["records"][0]["steps_per_s"] = 12345.678
    with open(tmp_path / "some-kind.json", "w") as f:
        json.dump(results, f)
    shutil.copy(source, tmp_path / "other-kind.json")
    tables = report.rendered_tables(str(tmp_path))
    assert tables.index("### `other-kind`") < tables.index("### `some-kind`")
    assert tables.count("| 12345.68 |") == 1

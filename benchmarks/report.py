"""The training-step benchmark's report: its results (``benchmarks/results/KIND.json``) as
markdown, and docs/performance.md's tables rendered from them.

``python -m benchmarks.report`` rewrites the part of docs/performance.md between ``BEGIN``
and ``END``: for each results file, its machine kind, a link to its full report and its
Table 1 with the roof, so that no figure of the page is typed by hand. ``--check`` only
says whether the page is up to date (exit 1 if not).
"""

from __future__ import annotations

import glob
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "benchmarks", "results")
PAGE = os.path.join(ROOT, "docs", "performance.md")
BEGIN = "<!-- rendered from benchmarks/results/*.json by python -m benchmarks.report -->"
END = "<!-- end of the rendered tables -->"


# The row of the jaxgan step compiled with jaxlib's default options (``--compare-compiler``).
DEFAULT_OPTIONS_IMPL = "jaxgan, jaxlib's default XLA options"


def _fmt(value, spec):
    return "-" if value is None else format(value, spec)


def _roof_bound(record: dict, roof_gflops: float) -> str:
    """One record's "what the roof allows" clause (``markdown``)."""
    torch_ms = record["pytorch_ms_per_step"]
    every_tap = record["gflop_per_step"]
    parts = []
    for gflop in dict.fromkeys((every_tap, record.get("gflop_per_step_reaching") or every_tap)):
        ms = 1e3 * gflop / roof_gflops
        parts.append(f"{gflop:.2f} GFLOP in {ms:.1f} ms, at most {torch_ms / ms:.2f}x")
    return f"{record['arch']}/{record['batch']}: " + " or ".join(parts)


def markdown(results: dict) -> str:
    """The results as a markdown document (table first)."""
    lines = [
        "| arch | batch | implementation | steps/s | images/s | ms/step | vs PyTorch | "
        "GFLOP/step | GFLOP/s | % of roof | compile s |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results["records"]:
        lines.append(
            f"| {r['arch']} | {r['batch']} | {r['impl']} | {r['steps_per_s']:.2f} | "
            f"{r['images_per_s']:.0f} | {r['ms_per_step']:.1f} | "
            f"{_fmt(r['vs_pytorch'], '.2f')}{'x' if r['vs_pytorch'] else ''} | "
            f"{r['gflop_per_step']:.2f} | {r['gflops']:.0f} | {100 * r['roof_fraction']:.0f}% | "
            f"{_fmt(r['compile_s'], '.1f')} |"
        )
    m = results["machine"]
    settings = results["settings"]
    roof_side = results.get("roof_size", 2048)  # the CPU roof's side, where a file omits it
    dtype = settings.get("dtype", "float32")
    device = ""
    if m.get("device"):
        device = (f"JAX on {m.get('backend')} ({m['device']}, {m.get('device_count')} "
                  f"device(s)), PyTorch on {m.get('torch_device') or 'no device (not timed)'}; "
                  "host CPU ")
    precision = m.get("precision", {})
    notes = [
        "",
        f"Machine kind `{m.get('kind', '?')}`: {device}{m['cpu']} (family {m.get('cpu_family')}, "
        f"model {m.get('cpu_model')}; ISA: {', '.join(m.get('isa', [])) or 'not recorded'}), "
        f"{m['cores']} cores; jax {m['jax']}, jaxlib {m.get('jaxlib')}, flax {m['flax']}, "
        f"optax {m['optax']}, torch {m['torch'] or 'not installed'} "
        f"(torch threads: {m['torch_threads']}, OMP_WAIT_POLICY={m['omp_wait_policy']}; "
        f"XLA uses all cores; XLA_FLAGS={m['xla_flags']!r}; jaxgan's steps compiled with "
        f"compiler_options={m.get('compiler_options', {})!r}). "
        f"Run {results['date']}; load average {m['load_before']} before, "
        f"{m['load_after']} after (other processes share these cores). Computation dtype "
        f"{dtype}; float32 precision {precision.get('option', 'default')!r} "
        f"({', '.join(f'{k}={v}' for k, v in precision.items() if k != 'option')}).",
        "",
        f"Roof: {results['roof_gflops']:.0f} GFLOP/s, a {roof_side}x{roof_side} {dtype} matmul "
        "through XLA timed between the steps (median); PyTorch's matmul: "
        f"{_fmt(results.get('torch_roof_gflops'), '.0f')} GFLOP/s.",
        "",
        "One step = one `jaxgan.train_step` (one D update on real+fake, one G update), "
        "compiled as the trainer compiles it (`jaxgan.compile.compiler_options()`; the row "
        f"\"{DEFAULT_OPTIONS_IMPL}\" is the same step compiled without them; a row "
        "\"jaxgan without NAME\", `--without NAME`, with them less that one), "
        "non-saturating loss, Adam(2e-4, b1=0.5). images/s = real images consumed per "
        "second (batch x steps/s). Medians of "
        f"{results['settings']['repeats']} alternating repeats after warm-up; "
        "vs PyTorch = the time per step of PyTorch's fastest layout in this run (for the "
        "DCGAN pair both NCHW and channels_last are timed) / ours.",
        "",
        "GFLOP/step is analytic (`benchmarks.train_step.step_flops`): 2 FLOPs per "
        "multiply-add of the dense and convolution layers that the step must compute (SAME "
        "padding taps included; transposed convolutions without inserted zeros; kernel and "
        "input gradients each one forward pass; elementwise work, normalization and Adam not "
        "counted). XLA's `cost_analysis()` of the compiled step: "
        + ", ".join(f"{r['arch']}/{r['batch']}: {r['xla_gflop_per_step']:.2f} GFLOP"
                    for r in results["records"] if r["xla_gflop_per_step"] is not None)
        + " (it counts what XLA runs, elementwise work included).",
    ]
    bounds = [_roof_bound(r, results["roof_gflops"]) for r in results["records"]
              if r["impl"] == "jaxgan" and r.get("pytorch_ms_per_step")]
    if bounds:
        notes += ["", "What this run's roof allows: the time of the step's GFLOP at the roof, "
                  "and PyTorch's time over it, the most \"vs PyTorch\" that a step computing "
                  "those FLOPs could reach; the second figure counts only the convolution taps "
                  "that land inside the image (`step_flops(..., padding_taps=False)`: what "
                  "PyTorch's CPU convolutions multiply), the bound for a formulation that "
                  "skips the padding taps: " + "; ".join(bounds) + "."]
    if results.get("reference_check"):
        notes += ["", "PyTorch reference check (largest relative difference, same parameters): "
                  + "; ".join(f"{arch}: " + ", ".join(f"{k} {v:.1e}" for k, v in check.items())
                              for arch, check in results["reference_check"].items()) + "."]
    if not results["machine"]["torch"]:
        notes += ["", "torch is not installed (`pip install torch==2.13.0`): no PyTorch "
                  "comparison in this run."]
    for number, prof in enumerate(results.get("profiles", []), start=2):
        if prof.get("backend", "cpu") == "cpu":
            where = (f"summed over threads; the step took {_fmt(prof.get('wall_ms'), '.1f')} "
                     f"ms of wall time on {m['cores']} cores, the rest is work the trace "
                     "leaves unnamed, such as Eigen's convolution tasks")
        else:
            where = (f"the device's kernel time; the step took "
                     f"{_fmt(prof.get('wall_ms'), '.1f')} ms of wall time, the rest is time "
                     "the device waited: dispatch, host work, synchronization")
        notes += [
            "",
            f"Table {number}: where the time of one jaxgan step goes, {prof['arch']} at batch "
            f"{prof['batch']} (`--profile`): the {len(prof['top_ops'])} costliest XLA ops of "
            f"{prof['total_ms']:.1f} ms of named op time per step ({where}); by kind: "
            + ", ".join(f"{k} {v:.1f} ms" for k, v in sorted(prof["by_kind_ms"].items(),
                                                              key=lambda kv: -kv[1])) + ".",
            "",
            "| ms | share | op | computes |",
            "| ---: | ---: | --- | --- |",
        ] + [f"| {op['ms']:.2f} | {100 * op['ms'] / prof['total_ms']:.1f}% | {op['op']} | "
             f"{op['what']} |" for op in prof["top_ops"]]
    return "\n".join(lines + notes) + "\n"


def rendered_tables(results_dir: str = RESULTS) -> str:
    """docs/performance.md's tables: for each ``KIND.json`` in ``results_dir`` (sorted), a
    heading, the link to ``KIND.md`` and the first paragraphs of ``markdown`` (Table 1, the
    machine, the roof)."""
    parts = []
    for path in sorted(glob.glob(os.path.join(results_dir, "*.json"))):
        with open(path) as f:
            results = json.load(f)
        kind = os.path.splitext(os.path.basename(path))[0]
        table, machine, roof = markdown(results).split("\n\n")[:3]
        parts.append(f"### `{kind}`\n\nFull report: [`benchmarks/results/{kind}.md`]"
                     f"(../benchmarks/results/{kind}.md).\n\n{table}\n\n{machine}\n\n{roof}")
    return "\n\n".join(parts)


def render_page(text: str, results_dir: str = RESULTS) -> str:
    """``text`` (docs/performance.md) with the part between ``BEGIN`` and ``END`` rendered."""
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    return text[:start] + "\n\n" + rendered_tables(results_dir) + "\n\n" + text[end:]


def main(argv=None) -> int:
    """Rewrites docs/performance.md's tables (``--check``: exit 1 where they are stale)."""
    argv = sys.argv[1:] if argv is None else argv
    if argv not in ([], ["--check"]):
        print("usage: python -m benchmarks.report [--check]", file=sys.stderr)
        return 2
    with open(PAGE) as f:
        text = f.read()
    new = render_page(text)
    if argv == ["--check"]:
        if new != text:
            print(f"{PAGE} is stale: run python -m benchmarks.report", file=sys.stderr)
            return 1
        return 0
    with open(PAGE, "w") as f:
        f.write(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())

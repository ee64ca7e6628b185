"""The quality-per-minute sweep behind the default run: train candidates, evaluate, tabulate.

    python -m experiments.sweep train --root runs/sweep --jobs 2            # every candidate
    python -m experiments.sweep train --root runs/sweep --only tiny_k5 --seeds 1 2 3
    python -m experiments.sweep eval  --root runs/sweep -- --test-data idx:DIR --reference-data idx:DIR
    python -m experiments.sweep table --root runs/sweep                      # sweep.md + sweep.json

Each candidate is a set of ``python -m experiments.mnist`` flags; its run for seed S lives in
``ROOT/NAME/seedS`` and is trained by that command, so a candidate is reproduced by the command
the table prints. ``--jobs 2`` trains two candidates at once, each pinned to its own core with
XLA:CPU limited to one thread (``taskset`` and ``XLA_FLAGS``): the small convolutional steps of
these candidates barely use a second core, so the sweep finishes about twice as fast and the
quality of a run does not depend on how many ran beside it (a run is a fixed number of steps).
The steps/s of a sweep run is that of one core under a neighbour's load: wall time of a
candidate on its own is measured by running its command alone.

``eval`` runs ``python -m experiments.evaluate --workdir RUN`` on every trained run (the flags
after ``--`` are passed on), writing ``RUN/eval.json``; ``table`` collects the results.
Candidates are selected on seed 0; the chosen one is then run on seeds 1-3.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

# name -> (what it tests, flags of python -m experiments.mnist), in the order they were run.
# Step counts come from each model's steps/s measured alone on the 2-core AVX2 kind, for about
# 250 s of training (the first waves used estimates; the default uses its measured speed).
CANDIDATES: dict[str, tuple[str, list[str]]] = {
    "default": (
        "the default of rounds 1-3 (TrainConfig's defaults, unconditional): widths "
        "(64,32,32)/(16,32), kernel 5, batch 32, Adam 2e-3, 5,500 steps",
        [],
    ),
    "default_9000": (
        "the default trained for 9,000 steps (too long for the 300 s budget)",
        ["--steps", "9000"],
    ),
    "tiny_k5": (
        "widths (64,32,16)/(16,32), kernel 5, Adam 2e-4",
        ["--g-widths", "64,32,16", "--d-widths", "16,32", "--steps", "3600"],
    ),
    "tiny_k5_lr5e-4": (
        "tiny_k5 with Adam 5e-4 for both players",
        ["--g-widths", "64,32,16", "--d-widths", "16,32", "--steps", "3600",
         "--g-lr", "5e-4", "--d-lr", "5e-4"],
    ),
    "small_k3": (
        "widths (128,64,32)/(32,64), kernel 3, Adam 2e-4",
        ["--g-widths", "128,64,32", "--d-widths", "32,64", "--kernel-size", "3",
         "--steps", "2600"],
    ),
    "tiny_k5_b32": (
        "tiny_k5 with batch 32 and twice the steps",
        ["--g-widths", "64,32,16", "--d-widths", "16,32", "--steps", "6000",
         "--batch-size", "32"],
    ),
    "tiny_k5_lr1e-3": (
        "tiny_k5 with Adam 1e-3",
        ["--g-widths", "64,32,16", "--d-widths", "16,32", "--steps", "3600",
         "--g-lr", "1e-3", "--d-lr", "1e-3"],
    ),
    "tiny_k5_lr2e-3": (
        "tiny_k5 with Adam 2e-3",
        ["--g-widths", "64,32,16", "--d-widths", "16,32", "--steps", "3600",
         "--g-lr", "2e-3", "--d-lr", "2e-3"],
    ),
    "tiny_k5_b32_lr1e-3": (
        "tiny_k5 with batch 32 (twice the steps) and Adam 1e-3",
        ["--g-widths", "64,32,16", "--d-widths", "16,32", "--steps", "6000", "--batch-size", "32",
         "--g-lr", "1e-3", "--d-lr", "1e-3"],
    ),
    "tiny_k5_b32_lr2e-3": (
        "tiny_k5 with batch 32 (twice the steps) and Adam 2e-3",
        ["--g-widths", "64,32,16", "--d-widths", "16,32", "--steps", "6000", "--batch-size", "32",
         "--g-lr", "2e-3", "--d-lr", "2e-3"],
    ),
    "tiny_k5_ttur": (
        "tiny_k5 with Adam 1e-3 for G and 2e-3 for D (two time scales)",
        ["--g-widths", "64,32,16", "--d-widths", "16,32", "--steps", "3600",
         "--g-lr", "1e-3", "--d-lr", "2e-3"],
    ),
    "g32_b32_lr2e-3": (
        "widths (64,32,32)/(16,32): G twice as wide at 14x14; batch 32, Adam 2e-3",
        ["--g-widths", "64,32,32", "--d-widths", "16,32", "--steps", "6000", "--batch-size", "32",
         "--g-lr", "2e-3", "--d-lr", "2e-3"],
    ),
    "dd256_lr2e-3": (
        "tiny_k5_lr2e-3 with a 256-wide dense hidden layer in D (global shape)",
        ["--g-widths", "64,32,16", "--d-widths", "16,32", "--d-dense", "256", "--steps", "3600",
         "--g-lr", "2e-3", "--d-lr", "2e-3"],
    ),
    "d64_lr2e-3": (
        "tiny G, D widths (32,64), batch 64, Adam 2e-3, steps cut to match the cost",
        ["--g-widths", "64,32,16", "--d-widths", "32,64", "--steps", "2600",
         "--g-lr", "2e-3", "--d-lr", "2e-3"],
    ),
    "g64w_b32_lr2e-3": (
        "widths (64,32,64)/(16,32): G four times as wide at 14x14; batch 32, Adam 2e-3",
        ["--g-widths", "64,32,64", "--d-widths", "16,32", "--steps", "6000", "--batch-size", "32",
         "--g-lr", "2e-3", "--d-lr", "2e-3"],
    ),
    "g64_b32_lr1e-3": (
        "widths (64,32)/(32,64) (no stride-1 layer), kernel 5, batch 32, Adam 1e-3",
        ["--g-widths", "64,32", "--d-widths", "32,64", "--batch-size", "32", "--steps", "4400",
         "--g-lr", "1e-3", "--d-lr", "1e-3"],
    ),
    # Second round (after the default was set): training changes on top of the default.
    "default_linear": (
        "the default with both learning rates decayed linearly to 0 over the run",
        ["--lr-schedule", "linear"],
    ),
    "default_shift2": (
        "the default with DiffAugment translation: D sees digits shifted by up to 2 pixels",
        ["--augment-shift", "2"],
    ),
    "default_shift2_linear": (
        "default_shift2 with the linear learning-rate decay",
        ["--augment-shift", "2", "--lr-schedule", "linear"],
    ),
    "default_lr3e-3_linear": (
        "the default with Adam 3e-3 decayed linearly to 0",
        ["--g-lr", "3e-3", "--d-lr", "3e-3", "--lr-schedule", "linear"],
    ),
    "mlp_adam": (
        "the paper's MLP/maxout pair with Adam 2e-4 and the default loop",
        ["--arch", "mlp", "--steps", "5000"],
    ),
    # Third round: other games and D regularizers on top of the default (same step count).
    "default_r1_0.1": (
        "the default with R1 gamma 0.1 on D (Mescheder et al. 2018; a step costs ~1.5x)",
        ["--r1-gamma", "0.1"],
    ),
    "default_r1_1": (
        "the default with R1 gamma 1 on D",
        ["--r1-gamma", "1"],
    ),
    "default_hinge": (
        "the default with the hinge game (SNGAN's D and G losses)",
        ["--d-loss", "hinge", "--g-loss", "hinge"],
    ),
    "default_lsgan": (
        "the default with the least-squares game (LSGAN)",
        ["--d-loss", "least_squares", "--g-loss", "least_squares"],
    ),
    # Fourth round: the same model, class-conditional (G(z, y) with conditional batch norm, a
    # projection D), on the labels of the same digits, sampled for each class in turn.
    "conditional_5500": (
        "the round-3 default made class-conditional (conditional batch norm in G, projection "
        "D), 5,500 steps",
        ["--conditional", "true", "--steps", "5500"],
    ),
    "conditional": (
        "the new default (TrainConfig's defaults): conditional_5500 cut to 4,000 steps to fit "
        "300 s on the slowest AVX2 machine measured",
        ["--conditional", "true"],
    ),
}

# The candidates of the first three rounds ran before conditional GANs existed and while the
# default ran 5,500 steps: they stay plain unconditional GANs (no self-conditioning) at that
# length, whatever the default is now.
FOURTH_ROUND = ("conditional_5500", "conditional")
UNCONDITIONAL_ROUNDS = tuple(name for name in CANDIDATES if name not in FOURTH_ROUND)
_ROUNDS_1_3 = ["--conditional", "false", "--clusters", "0", "--steps", "5500"]

# The settings every candidate of the first round starts from (the defaults when the sweep
# began); a candidate's own flags come after these and override them. The candidates named
# "default*" and those of the fourth round start from the chosen default instead.
BASE_FLAGS = ["--batch-size", "64", "--g-lr", "2e-4", "--d-lr", "2e-4"]

_ONE_THREAD = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"


def _run_dir(root: str, name: str, seed: int) -> str:
    return os.path.join(root, name, f"seed{seed}")


def train_command(name: str, seed: int, workdir: str) -> list[str]:
    """The ``python -m experiments.mnist`` command of candidate ``name`` for ``seed``."""
    base = [] if name.startswith("default") or name not in UNCONDITIONAL_ROUNDS else BASE_FLAGS
    if name in UNCONDITIONAL_ROUNDS:
        base = [*base, *_ROUNDS_1_3]
    return [sys.executable, "-m", "experiments.mnist", "--workdir", workdir, "--seed",
            str(seed), "--no-progress", *base, *CANDIDATES[name][1]]


def _launch(command: list[str], log_path: str, core: int | None) -> subprocess.Popen:
    env = dict(os.environ)
    if core is not None:
        env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} {_ONE_THREAD}".strip()
        if shutil.which("taskset"):
            command = ["taskset", "-c", str(core), *command]
    log = open(log_path, "w")
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)


def _run_all(jobs: list[tuple[list[str], str]], parallel: int) -> list[int]:
    """Runs ``(command, log_path)`` jobs, ``parallel`` at a time, each on its own core."""
    pending, running, codes = list(jobs), {}, []
    free = list(range(parallel))
    while pending or running:
        while pending and free:
            command, log_path = pending.pop(0)
            core = free.pop(0)
            print(f"[core {core}] {' '.join(command)}", flush=True)
            running[_launch(command, log_path, core if parallel > 1 else None)] = (core, log_path)
        time.sleep(1)
        for process in [p for p in running if p.poll() is not None]:
            core, log_path = running.pop(process)
            free.append(core)
            codes.append(process.returncode)
            status = "ok" if process.returncode == 0 else f"FAILED ({process.returncode})"
            print(f"[core {core}] {status}: {log_path}", flush=True)
    return codes


def _summary(log_path: str) -> dict:
    """The JSON summary that ``python -m experiments.mnist`` prints last."""
    with open(log_path) as f:
        text = f.read()
    start = text.rfind("\n{")
    return json.JSONDecoder().raw_decode(text[start + 1:])[0] if start >= 0 else {}


def table(root: str, names: list[str], seeds: list[int]) -> str:
    """A markdown table of every evaluated run, and ``ROOT/sweep.json`` beside it."""
    rows, records = [], []
    header = ("| candidate | seed | steps | train s | FID | rarest class | confidence "
              "| Parzen (nats) | what it tests |")
    rows += [header, "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for name in names:
        for seed in seeds:
            run = _run_dir(root, name, seed)
            eval_path = os.path.join(run, "eval.json")
            train_log = os.path.join(run, "train.log")
            if not os.path.exists(eval_path) or not os.path.exists(train_log):
                continue
            with open(eval_path) as f:
                row = json.load(f)["rows"]["generator"]
            summary = _summary(train_log)
            record = {
                "candidate": name, "seed": seed, "flags": CANDIDATES[name][1],
                "steps": summary.get("step"), "train_seconds": summary.get("seconds"),
                "fid": row["fid_features"], "rarest_class_share": row["rarest_class_share"],
                "mean_confidence": row["mean_confidence"], "parzen": row["parzen"]["mean"],
            }
            records.append(record)
            rows.append(
                f"| {name} | {seed} | {record['steps']} | {record['train_seconds']} | "
                f"{record['fid']:.1f} | {record['rarest_class_share']:.3f} | "
                f"{record['mean_confidence']:.3f} | {record['parzen']:.1f} | "
                f"{CANDIDATES[name][0]} |"
            )
    with open(os.path.join(root, "sweep.json"), "w") as f:
        json.dump(records, f, indent=2)
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    eval_flags: list[str] = []
    if "--" in argv:
        eval_flags = argv[argv.index("--") + 1:]
        argv = argv[: argv.index("--")]
    parser = argparse.ArgumentParser(prog="python -m experiments.sweep",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("phase", choices=("train", "eval", "table", "list"))
    parser.add_argument("--root", default=os.path.join("runs", "sweep"))
    parser.add_argument("--only", nargs="*", default=None, choices=sorted(CANDIDATES),
                        metavar="NAME", help="candidates to run (default: all)")
    parser.add_argument("--seeds", nargs="*", type=int, default=[0])
    parser.add_argument("--jobs", type=int, default=2, help="runs at once, one core each")
    args = parser.parse_args(argv)
    names = args.only or list(CANDIDATES)
    if args.phase == "list":
        for name in names:
            print(f"{name}: {CANDIDATES[name][0]}\n  {' '.join(train_command(name, 0, 'W'))}")
        return
    jobs = []
    for name in names:
        for seed in args.seeds:
            run = _run_dir(args.root, name, seed)
            os.makedirs(run, exist_ok=True)
            if args.phase == "train":
                jobs.append((train_command(name, seed, run), os.path.join(run, "train.log")))
            elif args.phase == "eval" and os.path.exists(os.path.join(run, "checkpoints")):
                jobs.append(([sys.executable, "-m", "experiments.evaluate", "--workdir", run,
                              *eval_flags], os.path.join(run, "eval.log")))
    if args.phase in ("train", "eval"):
        codes = _run_all(jobs, max(1, args.jobs))
        if any(codes):
            sys.exit(1)
    markdown = table(args.root, names, args.seeds)
    with open(os.path.join(args.root, "sweep.md"), "w") as f:
        f.write(markdown + "\n")
    print(markdown)


if __name__ == "__main__":
    main()

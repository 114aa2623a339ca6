"""Regenerate results/mnist/: the shared networks as MNIST / Fashion-MNIST classifiers.

    python benchmarks/mnist.py                        # MNIST from the user cache (downloaded once)
    python benchmarks/mnist.py --mnist DIR --fashion DIR --seeds 3 --accuracy-epochs 15

Measures, on this machine's CPU (or the GPU with --device cuda):
  - the classic 784-64-10 MLP (card `nets.mlp`): final test accuracy;
  - the CNN speed recipe (card `nets.cnn`): training seconds until test accuracy first reaches 99.0%
    (test accuracy measured every 50 steps, measurement time excluded) and its final accuracy;
  - the CNN accuracy recipe (card `nets.cnn` + ±2 px shifts, more epochs): final test accuracy;
  - Fashion-MNIST with the CNN (card `datasets.fashion-mnist.cnn`).
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import time
from functools import partial
from pathlib import Path

from rlsuite.config.schema import to_data
from rlsuite.experiments.report import report_folder
from rlsuite.run.rundir import hardware, versions
from rlsuite.runs import reuse_or_train
from rlsuite.supervised.classifier import resolve_config, run_supervised


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mnist", default=None, help="a folder with the four MNIST IDX files (default: the cache)")
    parser.add_argument("--fashion", default="/usr/share/datasets/fashion-mnist")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default="results")
    parser.add_argument("--accuracy-epochs", type=int, default=12)
    parser.add_argument("--force", action="store_true", help="retrain runs that already finished")
    args = parser.parse_args()
    out = Path(args.out)
    runs_root = out / "runs" / "bench-mnist"  # finished runs are reused while their settings match
    seeds = list(range(args.seeds))
    started = time.time()
    common = dict(out=runs_root, progress=False, allow_download=False, device=args.device)

    experiments = [
        ("MLP 784-64-10", "mnist", args.mnist, "mlp", {}),
        ("CNN speed recipe", "mnist", args.mnist, "cnn", {"eval_every": "50"}),
        ("CNN accuracy recipe (±2 px shifts)", "mnist", args.mnist, "cnn",
         {"augment_shift": "2", "epochs": str(args.accuracy_epochs)}),
        ("CNN on Fashion-MNIST", "fashion-mnist", args.fashion, "cnn", {}),
    ]
    results = {}
    for name, dataset, data_dir, net, overrides in experiments:
        if not Path(data_dir).is_dir():
            results[name] = None
            print(f"skip {name}: {data_dir} missing", flush=True)
            continue
        results[name] = []
        stamp = {"dataset": dataset, "net": net, "device": args.device,
                 "config": to_data(resolve_config(net, dataset, dict(overrides)))}
        slug = name.split(" (")[0].lower().replace(" ", "-")
        for seed in seeds:
            job = partial(run_supervised, dataset, net, seed=seed, data_dir=data_dir, overrides=dict(overrides), **common)
            s = reuse_or_train(runs_root, f"{slug}-s{seed}", job, args.force, stamp)
            results[name].append(s)
            print(name, seed, f"{s['test_acc']:.4f}", f"{s['wall_s']:.1f}s", s.get("wall_to_99"), flush=True)

    lines = [
        "# MNIST and Fashion-MNIST with the shared networks",
        "",
        f"Regenerate: `python {' '.join(['benchmarks/mnist.py'] + sys.argv[1:])}`  ",
        f"Date: {dt.date.today().isoformat()} · Hardware: {hardware()} · device: {args.device}  ",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in versions().items()) + f"  \nSeeds: {seeds}",
        "",
        "Models are `rlsuite.learn.nets` classes (the ones the agents use): MLP trunk or CNN trunk + "
        "`ClassifierHead`; hyperparameters from `cards/agents/supervised.yaml`. Accuracy is on the 10,000 official "
        "test images, with the weights of the best validation epoch (5,000 training images held out). "
        "Seconds are training time; evaluation is excluded.",
        "",
        "| experiment | test accuracy (mean over seeds) | min – max | epochs | training s (median) | s to 99.0% test (median) |",
        "|---|---|---|---|---|---|",
    ]
    for name, summaries in results.items():
        if not summaries:
            lines.append(f"| {name} | data not found | | | | |")
            continue
        accs = [s["test_acc"] for s in summaries]
        to99 = [s["wall_to_99"] for s in summaries]
        reached = [t for t in to99 if t is not None]
        to99_text = (f"{statistics.median(reached):.1f} ({len(reached)}/{len(to99)} runs reached it)"
                     if reached else f"not reached (0/{len(to99)})")
        lines.append(f"| {name} | {statistics.mean(accs):.2%} | {min(accs):.2%} – {max(accs):.2%} | "
                     f"{summaries[0]['epochs']} | {statistics.median(s['wall_s'] for s in summaries):.1f} | {to99_text} |")
    mlp = results.get("MLP 784-64-10")
    if mlp:
        lines += ["", f"**The 99.1% claimed elsewhere for a 784-64-10 MLP is not reproducible**: with a tuned recipe "
                      f"(AdamW, one-cycle, {mlp[0]['epochs']} epochs) it reaches "
                      f"{statistics.mean(s['test_acc'] for s in mlp):.2%} here."]
    lines += ["", "Targets: MLP ≥ 97.5%, CNN ≥ 99.3%, CNN to 99.0% in ≤ 45 s of training "
                  "on the 2 CPU cores. The GPU targets were not measured: this task had no GPU machine.",
              "", "Per-class test accuracy of the first seed of each experiment:", ""]
    for name, summaries in results.items():
        if summaries:
            per = summaries[0]["per_class_acc"]
            lines.append(f"- {name}: " + ", ".join(f"{k} {v:.1%}" for k, v in per.items()))
    lines += ["", f"Total benchmark time: {(time.time() - started) / 60:.1f} min."]
    (report_folder(out, "mnist") / "README.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {out / 'mnist' / 'README.md'}")


if __name__ == "__main__":
    main()

"""Regenerate results/tuning/: what `rlsuite tune` costs on this machine.

    python benchmarks/tuning.py                  # DQN CartPole-v1, 3 seeds per trial, 12 trials per study
    python benchmarks/tuning.py --trials 6 --studies pruned,unpruned

Three studies of the DQN card's search space on CartPole-v1 (each trial: seeds 10-12, the card's
50,000 steps), timed end to end:
  unpruned     1 worker, no pruner
  pruned       1 worker, the median pruner on the periodic evaluations (same sampler seed)
  unpruned-2w  2 worker processes, no pruner, running exactly the unpruned study's trials (enqueued in
               the same order), so that its speed-up is the parallel efficiency on the same work
Trials per hour depend on which values TPE proposes (a trial with 2 updates per step costs ~10× one
with 0.1), so the pruned/unpruned ratio is one measurement of one search, not a constant. Finished
studies are reused (their timing is stored), interrupted ones continue. The 2-worker study needs the
machine's two cores to itself; the 1-worker studies are timed as they ran, so a process sharing the
machine with them (a benchmark, a test run) slows them and lifts the 2-worker "efficiency". The
report therefore also gives two load-independent figures: the env steps pruning saved, and how busy
the 2 workers were (trial time summed / (2 × wall)), with the per-trial slowdown under 2 workers.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch

from rlsuite.experiments.report import header, report_folder
from rlsuite.tune.search import tune
from rlsuite.tune.study import counts, load_settings, open_study

AGENT, ENV = "dqn", "CartPole-v1"
STUDIES = {"unpruned": ("none", 1), "pruned": ("median", 1), "unpruned-2w": ("none", 2)}


def steps_trained(tune_dir: Path, trial) -> int:
    """Environment steps a trial's runs actually trained (a pruned run stops early)."""
    total = 0
    for run in trial.user_attrs.get("runs", []):
        status = Path(tune_dir) / "runs" / Path(run).name / "status.json"
        if status.exists():
            total += json.loads(status.read_text()).get("step", 0)
    return total


def trial_seconds(trial) -> float:
    if trial.datetime_start is None or trial.datetime_complete is None:
        return 0.0
    return (trial.datetime_complete - trial.datetime_start).total_seconds()


def run_study(root: Path, name: str, trials: int, enqueue: list[dict] | None, steps: int | None) -> dict:
    pruner, workers = STUDIES[name]
    tune_dir = root / "tune" / name
    timing_path = root / f"timing-{name}.json"
    timing = json.loads(timing_path.read_text()) if timing_path.exists() else {"wall_s": 0.0, "invocations": 0}
    settings = load_settings(tune_dir) if (tune_dir / "tune.json").exists() else None
    done = settings is not None and counts(open_study(settings)).done >= trials and timing.get("finished")
    if not done:
        start = time.perf_counter()
        result = tune(AGENT, ENV, trials, seeds=3, first_seed=10, steps=steps, workers=workers, pruner=pruner, out=root,
                      name=name, reference=False, enqueue=enqueue, echo=lambda line: print(name, line, flush=True),
                      cost="none")  # the objective these studies were measured with (before the cost term)
        timing["wall_s"] += time.perf_counter() - start
        timing["invocations"] += 1
        timing["finished"] = result["exit_code"] == 0
        timing_path.write_text(json.dumps(timing))
        if result["exit_code"]:
            sys.exit(result["exit_code"])
    settings = load_settings(tune_dir)
    study = open_study(settings)
    all_trials = study.get_trials(deepcopy=False)
    c = counts(study)
    steps = sum(steps_trained(tune_dir, t) for t in all_trials)
    return {"name": name, "pruner": pruner, "workers": workers, "wall_s": timing["wall_s"], "counts": c,
            "trials_per_hour": c.done / (timing["wall_s"] / 3600), "steps": steps,
            "steps_per_s": steps / timing["wall_s"], "invocations": timing["invocations"],
            "params": [t.params for t in sorted(all_trials, key=lambda t: t.number)],
            "durations": {json.dumps(t.params, sort_keys=True): trial_seconds(t) for t in all_trials},
            "best": c.best, "tune_dir": tune_dir}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--studies", default=",".join(STUDIES))
    parser.add_argument("--steps", type=int, default=None, help="per seed (default: the card's 50,000); for a smoke test")
    parser.add_argument("--out", default="results")
    parser.add_argument("--conditions", default=None,
                        help="how the studies were timed (what else ran beside them), stated in the report")
    args = parser.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    root = out / "runs" / "bench-tuning"
    names = args.studies.split(",")
    if unknown := [n for n in names if n not in STUDIES]:
        sys.exit(f"unknown studies {unknown}; choose from {', '.join(STUDIES)}")
    res = {}
    for name in names:
        enqueue = None
        if name == "unpruned-2w":  # the same work as the 1-worker study, in the same order
            if "unpruned" not in res:
                res["unpruned"] = run_study(root, "unpruned", args.trials, None, args.steps)
            enqueue = res["unpruned"]["params"][:args.trials]
        res[name] = run_study(root, name, args.trials, enqueue, args.steps)
    report = header("What tuning costs: rlsuite tune on DQN CartPole-v1",
                    f"python {shlex.join(['benchmarks/tuning.py'] + sys.argv[1:])}", [10, 11, 12])
    budget = f"{args.steps:,}" if args.steps else "50,000"
    report += [f"Each trial: the DQN card's `tune:` space on CartPole-v1, 3 seeds (10-12) × {budget} steps, scored by "
               "rlsuite.tune.space.objective; TPE with sampler seed 0. Wall-clock is the whole `tune` call (trials, "
               "evaluations, storage), the current card's reference runs excluded." +
               (f" Conditions: {args.conditions}" if args.conditions else ""), "",
               "| study | pruner | workers | trials done | complete / pruned / failed | wall (min) | trials per hour | "
               "env steps trained | env steps/s | best objective |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in res.values():
        c = r["counts"]
        best = f"{r['best'][0]:.3f} (trial {r['best'][1]})" if r["best"] else "—"
        report.append(f"| {r['name']} | {r['pruner']} | {r['workers']} | {c.done} | {c.complete} / {c.pruned} / {c.failed} | "
                      f"{r['wall_s'] / 60:.1f} | {r['trials_per_hour']:.1f} | {r['steps']:,} | {r['steps_per_s']:,.0f} | {best} |")
    report.append("")
    if "pruned" in res and "unpruned" in res:
        a, b = res["pruned"], res["unpruned"]
        report.append(f"- Pruning: {a['trials_per_hour'] / b['trials_per_hour']:.2f}× the trials per hour of the unpruned "
                      f"study ({a['counts'].pruned} of {a['counts'].done} trials pruned; {a['steps']:,} vs {b['steps']:,} "
                      "env steps trained). " + ("Both studies tried the same values in the same order, so the difference "
                      "is pruning alone." if a["params"] == b["params"] else "The two studies' TPE proposals diverged after "
                      "the first pruned trial, so part of the difference is which values were tried."))
    if "unpruned-2w" in res and "unpruned" in res:
        a, b = res["unpruned-2w"], res["unpruned"]
        speedup = b["wall_s"] / a["wall_s"]
        busy = sum(a["durations"].values()) / (2 * a["wall_s"])
        slow = [a["durations"][k] / b["durations"][k] for k in a["durations"] if b["durations"].get(k)]
        report.append(f"- 2 workers on the same {a['counts'].done} trials: {speedup:.2f}× faster than the 1-worker study "
                      f"as it was timed (a parallel efficiency of {speedup / 2:.0%} against that baseline). The 2 workers "
                      f"were busy **{busy:.0%}** of the wall-clock (trial time summed / (2 × wall); the rest is worker "
                      "start-up, the study storage and the last trial running alone), and each trial took a median "
                      f"{float(np.median(slow)):.2f}× its 1-worker time" + (" (two trainings sharing the 2 cores and "
                      "memory bandwidth)." if np.median(slow) >= 1 else ": less than 1×, so the 1-worker study was "
                      "slowed by something else sharing the machine, and the efficiency above is overstated; the busy "
                      "fraction is the figure to use."))
    report += ["", "Studies: " + ", ".join(f"`{r['tune_dir']}`" for r in res.values()) +
               " (`rlsuite tune show DIR` for each one's report)."]
    (report_folder(out, "tuning") / "README.md").write_text("\n".join(report) + "\n")
    print(f"wrote {out / 'tuning' / 'README.md'}")


if __name__ == "__main__":
    main()

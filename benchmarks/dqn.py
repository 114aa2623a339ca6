"""Regenerate results/dqn.md: rlsuite DQN vs Stable-Baselines3 DQN (PROTOCOL.md).

    python benchmarks/dqn.py                 # 5 seeds, CartPole-v1 side by side + Acrobot/MountainCar
    python benchmarks/dqn.py --seeds 2 --envs CartPole-v1   # a quicker look

CartPole-v1, per seed and alternating in this one process (same threads, same device):
  rlsuite   rlsuite DQN with its tuned card (agents/dqn.yaml)
  sb3       SB3 DQN with rl-baselines3-zoo's hyperparameters (recorded in the card's baseline section)
  rlsuite@zoo  rlsuite DQN run with SB3's zoo hyperparameters (vanilla DQN): the speed comparison
Acrobot-v1 and MountainCar-v0: rlsuite's card, against the zoo's published figures.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path

import torch

from rlsuite import runs
from rlsuite.baselines import baseline_hyperparameters, dqn_overrides_from_sb3, train_baseline
from rlsuite.engine import hardware, versions
from rlsuite.plots import plot_curves
from rlsuite.stats import aggregate

ZOO_FIGURES = {
    "Acrobot-v1": "zoo DQN: -76.6 ± 11.8 at 100k steps, first ≥ -100 at 20k (ANCHORS.md); CleanRL DQN -91.5 ± 7.2 at 500k",
    "MountainCar-v0": "ANCHORS.md lists no zoo DQN figure for MountainCar-v0; the zoo's budget is 120k steps",
}


def fmt(x, digits=1):
    return "—" if x is None else f"{x:,.{digits}f}"


def row(name: str, agg: dict, threshold_max: bool) -> str:
    lo, hi = agg["final_ci"]
    cells = [name, f"{agg['solved']}/{agg['n']}", f"{agg['stays_solved']}/{agg['n']}"]
    if threshold_max:
        cells.append(f"{agg['final_max_fraction']:.0%}")
    cells += [f"{agg['final_iqm']:.1f} [{lo:.1f}, {hi:.1f}]",
              fmt(agg["median_steps_to_solve"], 0) + (" *" if agg["unsolved_marked"] else ""),
              fmt(agg["median_wall_to_solve"]) + (" *" if agg["unsolved_marked"] else ""),
              fmt(agg["median_steps_per_s"], 0)]
    return "| " + " | ".join(cells) + " |"


def per_seed_table(results: dict) -> list[str]:
    lines = ["| implementation | seed | final (20 ep.) | steps-to-solve | wall-to-solve (s) | steps/s | outcome |",
             "|---|---|---|---|---|---|---|"]
    for name, summaries in results.items():
        for s in summaries:
            outcome = "stays solved" if s["stays_solved"] else "solved, then collapsed" if s["solved"] else "not solved"
            lines.append(f"| {name} | {s['seed']} | {s['final_eval']['mean']:.1f} | {fmt(s['steps_to_solve'], 0)} | "
                         f"{fmt(s['wall_to_solve'])} | {s['steps_per_s']:,.0f} | {outcome} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--envs", default="CartPole-v1,Acrobot-v1,MountainCar-v0")
    parser.add_argument("--out", default="results")
    args = parser.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    runs_root = out / "runs" / f"bench-dqn-{dt.datetime.now():%Y%m%d-%H%M%S}"
    seeds = list(range(args.seeds))
    envs = args.envs.split(",")
    started = time.time()
    report = [
        "# DQN: rlsuite vs Stable-Baselines3",
        "",
        f"Regenerate: `python {' '.join(['benchmarks/dqn.py'] + sys.argv[1:])}`  ",
        f"Date: {dt.date.today().isoformat()} · Hardware: {hardware()} · torch threads: 1 · device: cpu  ",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in versions().items()) + f"  \nSeeds: {seeds}",
        "",
        "Evaluation per `../shared/PROTOCOL.md`: a separate env seeded `seed + 10000`, greedy policy, "
        "every `eval_every` steps (env card), final evaluation 20 episodes. *solved*: some evaluation "
        "mean ≥ threshold; *stays solved*: the final 20-episode evaluation ≥ threshold. Medians over seeds; "
        "`*` marks medians that include unsolved runs counted at the full budget. Wall-clock excludes evaluation.",
        "",
    ]
    for env_id in envs:
        results: dict[str, list] = {"rlsuite": []}
        side_by_side = env_id == "CartPole-v1"
        if side_by_side:
            zoo, _ = baseline_hyperparameters("dqn", env_id)
            results.update({"sb3": [], "rlsuite@zoo": []})
        for seed in seeds:  # alternate implementations seed by seed, so drift hits both alike
            common = dict(seed=seed, out=runs_root, progress=False)
            results["rlsuite"].append(runs.train("dqn", env_id, **common))
            if side_by_side:
                results["sb3"].append(train_baseline("dqn", env_id, **common))
                results["rlsuite@zoo"].append(runs.train("dqn", env_id, overrides=dqn_overrides_from_sb3(zoo), **common))
            print(env_id, seed, {k: round(v[-1]["final_eval"]["mean"], 1) for k, v in results.items()}, flush=True)
        aggs = {name: aggregate(s) for name, s in results.items()}
        threshold = results["rlsuite"][0]["threshold"]
        is_cartpole = env_id == "CartPole-v1"
        report += [f"## {env_id} (threshold {threshold:g}, budget {results['rlsuite'][0]['steps']:,} steps)", ""]
        header = "| implementation | solved | stays solved |" + (" final = 500 |" if is_cartpole else "")
        header += " IQM final [95% CI] | median steps-to-solve | median wall-to-solve (s) | median steps/s |"
        report += [header, "|" + "---|" * (header.count("|") - 1)]
        report += [row(name, agg, is_cartpole) for name, agg in aggs.items()]
        report.append("")
        if side_by_side:
            ours, sb3, zoo_ours = aggs["rlsuite"], aggs["sb3"], aggs["rlsuite@zoo"]
            wall_ratio = ours["median_wall_to_solve"] / sb3["median_wall_to_solve"]
            sps_ratio = zoo_ours["median_steps_per_s"] / sb3["median_steps_per_s"]
            paired = [a["steps_per_s"] / b["steps_per_s"] for a, b in zip(results["rlsuite@zoo"], results["sb3"])]
            report += [
                "Targets (issue: foundation):",
                "",
                f"- rlsuite stays solved in **{ours['stays_solved']}/{ours['n']}** seeds (target 5/5); "
                f"SB3 zoo: {sb3['stays_solved']}/{sb3['n']}.",
                f"- median wall-to-solve, rlsuite / SB3 = **{wall_ratio:.2f}×** (target ≤ 0.25×).",
                f"- steps/s with SB3's own hyperparameters, rlsuite / SB3 = **{sps_ratio:.2f}×** median "
                f"(per-seed pairs: {', '.join(f'{p:.2f}' for p in paired)}; target ≥ 3×).",
                "",
            ]
        else:
            report += [f"Published reference: {ZOO_FIGURES.get(env_id, '—')}.", ""]
        report += per_seed_table(results) + [""]
        all_dirs = [s["run_dir"] for v in results.values() for s in v]
        paths = plot_curves(all_dirs, out / f"dqn_{env_id}", title=f"DQN on {env_id}: mean and 95% band over {len(seeds)} seeds")
        report += [f"![DQN on {env_id}]({paths[0].name})", ""]
        raw = {name: [{k: s[k] for k in ("seed", "steps", "wall_s", "steps_per_s", "steps_to_solve", "wall_to_solve",
                                         "solved", "stays_solved")} | {"final": s["final_eval"]["mean"]} for s in v]
               for name, v in results.items()}
        (out / f"dqn_{env_id}.json").write_text(json.dumps(raw, indent=1))
    report.append(f"Total benchmark time: {(time.time() - started) / 60:.1f} min.")
    (out / "dqn.md").write_text("\n".join(report) + "\n")
    print(f"wrote {out / 'dqn.md'}")


if __name__ == "__main__":
    main()

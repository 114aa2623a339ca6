"""Regenerate results/dqn/: rlsuite DQN vs Stable-Baselines3 DQN (docs/protocol.md).

    python benchmarks/dqn.py                 # 10 seeds, CartPole-v1 side by side + Acrobot/MountainCar/LunarLander
    python benchmarks/dqn.py --seeds 2 --envs CartPole-v1   # a quicker look

CartPole-v1, per seed and alternating in this one process (same threads, same device):
  rlsuite   rlsuite DQN with its tuned card (cards/agents/dqn.yaml)
  sb3       SB3 DQN with rl-baselines3-zoo's hyperparameters (recorded in the card's baseline section)
  rlsuite@zoo  rlsuite DQN run with SB3's zoo hyperparameters (vanilla DQN): the speed comparison
Acrobot-v1, MountainCar-v0 and LunarLander-v3: rlsuite's card, against the zoo's published figures.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from rlsuite.config.cards import load_env_card
from rlsuite.core.stats import aggregate
from rlsuite.experiments import compare
from rlsuite.experiments.plots import plot_curves
from rlsuite.experiments.report import aggregate_table, header, per_seed_table, ratio_lines, report_folder, verdict
from rlsuite.sb3.hyperparameters import baseline_hyperparameters, overrides_from_sb3

ZOO_FIGURES = {
    "Acrobot-v1": "zoo DQN: -76.6 ± 11.8 at 100k steps, first ≥ -100 at 20k (rl-baselines3-zoo's benchmark); CleanRL DQN -91.5 ± 7.2 at 500k",
    "MountainCar-v0": "rl-baselines3-zoo publishes no DQN figure for MountainCar-v0; the zoo's budget is 120k steps",
    "LunarLander-v3": "zoo DQN on LunarLander-v2: 154 ± 79 at 100k steps (rl-baselines3-zoo's benchmark)",
}


def log(label: str, seed: int, summary: dict) -> None:
    print(summary["env_id"], label, seed, round(summary["final_eval"]["mean"], 1), f"{summary['steps_per_s']:.0f} steps/s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--envs", default="CartPole-v1,Acrobot-v1,MountainCar-v0,LunarLander-v3")
    parser.add_argument("--out", default="results")
    parser.add_argument("--force", action="store_true", help="retrain runs that already finished")
    args = parser.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    runs_root = out / "runs" / "bench-dqn"  # finished runs are reused unless --force
    folder = report_folder(out, "dqn")
    seeds = list(range(args.seeds))
    envs = args.envs.split(",")
    started, trained = time.time(), 0.0
    report = header("DQN: rlsuite vs Stable-Baselines3", f"python {' '.join(['benchmarks/dqn.py'] + sys.argv[1:])}", seeds)
    for env_id in envs:
        side_by_side = env_id == "CartPole-v1"
        variants = {"rlsuite": compare.ours("dqn", env_id)}
        if side_by_side:
            zoo, _ = baseline_hyperparameters("dqn", env_id)
            variants = compare.ours_and_sb3("dqn", env_id)
            variants["rlsuite@zoo"] = compare.ours("dqn", env_id, overrides=overrides_from_sb3("dqn", zoo))
        results = compare.side_by_side(env_id, seeds, runs_root, variants, args.force, on_result=log)
        threshold = results["rlsuite"][0]["threshold"]
        report += [f"## {env_id} (threshold {threshold:g}, budget {results['rlsuite'][0]['steps']:,} steps)", ""]
        report += aggregate_table(results, load_env_card(env_id).max_return)
        if side_by_side:
            speed = ratio_lines(results["rlsuite@zoo"], results["sb3"], "rlsuite@zoo", "sb3")
            wall = ratio_lines(results["rlsuite"], results["sb3"], "rlsuite", "sb3")
            ours = aggregate(results["rlsuite"])
            report += [
                "Targets:", "",
                f"- rlsuite stays solved in **{ours['stays_solved']}/{ours['n']}** seeds (target: every seed); "
                f"SB3 zoo: {wall['theirs']['stays_solved']}/{ours['n']}; rlsuite with SB3's hyperparameters: "
                f"{speed['ours']['stays_solved']}/{ours['n']}.",
                f"- median wall-to-solve, rlsuite / SB3 = **{wall['wall_to_solve']:.2f}×** (target ≤ 0.25×: "
                f"{verdict(wall['wall_to_solve'], 0.25, False)}).",
                f"- steps/s with SB3's own hyperparameters, rlsuite / SB3 = **{speed['steps_per_s']:.2f}×** median "
                f"(per-seed pairs: {', '.join(f'{p:.2f}' for p in speed['pairs'])}; target ≥ 3×: "
                f"{verdict(speed['steps_per_s'], 3.0, True)}).", "",
            ]
        else:
            report += [f"Published reference: {ZOO_FIGURES.get(env_id, '—')}.", ""]
        report += per_seed_table(results)
        trained += sum(s["wall_s"] for v in results.values() for s in v)
        labels = {s["run_dir"]: f"{name} dqn" for name, v in results.items() for s in v}
        paths = plot_curves(list(labels), folder / f"dqn_{env_id}", labels=labels,
                            title=f"DQN on {env_id}: mean and 95% band over {len(seeds)} seeds").paths
        report += [f"![DQN on {env_id}]({paths[0].name})", ""]
        raw = {name: [{k: s[k] for k in ("seed", "steps", "wall_s", "steps_per_s", "steps_to_solve", "wall_to_solve",
                                         "solved", "stays_solved")} | {"final": s["final_eval"]["mean"]} for s in v]
               for name, v in results.items()}
        (folder / f"dqn_{env_id}.json").write_text(json.dumps(raw, indent=1))
    report.append(f"Training time of the runs in this report: {trained / 60:.1f} min (evaluation excluded); "
                  f"this invocation took {(time.time() - started) / 60:.1f} min (finished runs are reused).")
    (folder / "README.md").write_text("\n".join(report) + "\n")
    print(f"wrote {folder / 'README.md'}")


if __name__ == "__main__":
    main()

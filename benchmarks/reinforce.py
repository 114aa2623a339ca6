"""Regenerate results/reinforce/: REINFORCE on CartPole-v1, Acrobot-v1 and LunarLander-v3 (docs/protocol.md).

    python benchmarks/reinforce.py                      # 10 seeds per env, the env cards' REINFORCE budgets
    python benchmarks/reinforce.py --envs CartPole-v1 --seeds 10

SB3 has no REINFORCE, so there is no baseline row: these are rlsuite's own curves. Every step of every
episode reaches the update exactly once, with its full Monte-Carlo return (episodes that outlive a
rollout are carried into the next one). Runs live under OUT/runs/bench-reinforce and are reused while
their settings match, resumed when interrupted (--force redoes them).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from rlsuite.config.cards import budget as card_budget
from rlsuite.config.cards import load_env_card
from rlsuite.experiments import compare
from rlsuite.experiments.report import header, report_folder, runs_section
from rlsuite.registry import get_agent

ENVS = ("CartPole-v1", "Acrobot-v1", "LunarLander-v3")
TARGETS = {"CartPole-v1": "final evaluation ≥ 400 in every seed, ≥ 475 (stays solved) in most"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--envs", default=",".join(ENVS))
    parser.add_argument("--out", default="results")
    parser.add_argument("--force", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    root = out / "runs" / "bench-reinforce"
    seeds = list(range(args.seeds))
    started = time.time()
    report = header("REINFORCE (no SB3 counterpart)", f"python {' '.join(['benchmarks/reinforce.py'] + sys.argv[1:])}",
                    seeds)
    for env_id in args.envs.split(","):
        budget = card_budget("reinforce", get_agent("reinforce").config_cls, env_id)

        def log(label, seed, s):
            print(env_id, seed, round(s["final_eval"]["mean"], 1), f"{s['steps_per_s']:.0f} steps/s", flush=True)

        res = compare.side_by_side(env_id, seeds, root, {"rlsuite": compare.ours("reinforce", env_id, steps=budget)},
                                   args.force, log)
        first = res["rlsuite"][0]
        report += runs_section(f"REINFORCE on {env_id} (threshold {first['threshold']:g}, budget {first['steps']:,} steps)",
                               res, load_env_card(env_id).max_return, report_folder(out, "reinforce") / f"reinforce_{env_id}", "rlsuite reinforce",
                               f"REINFORCE on {env_id}: mean and 95% band over seeds",
                               [f"Target: {TARGETS[env_id]}.", ""] if env_id in TARGETS else [])
    report.append(f"This invocation took {(time.time() - started) / 60:.1f} min (finished runs are reused).")
    (report_folder(out, "reinforce") / "README.md").write_text("\n".join(report) + "\n")
    print(f"wrote {out / 'reinforce' / 'README.md'}")


if __name__ == "__main__":
    main()

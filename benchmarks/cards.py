"""Regenerate results/cards.md: the cards that changed, validated on seeds that tuning never saw.

    python benchmarks/cards.py                      # DQN and REINFORCE on CartPole-v1, seeds 100-109
    python benchmarks/cards.py --seeds 100-104 --cells dqn:CartPole-v1

A learning claim is a distribution, not a run (PROTOCOL.md): each card is run with its own budget on
fresh seeds and reported as stays-solved k/n, IQM final with its 95% interval, and medians. Runs live
under OUT/runs/bench-cards/<agent> and are reused while their settings match (resumed when interrupted).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from rlsuite import compare
from rlsuite.cards import load_env_card
from rlsuite.report import header, runs_section

CELLS = ("dqn:CartPole-v1", "reinforce:CartPole-v1")
NOTES = {
    "dqn:CartPole-v1": "Card: 3-step returns (agents/dqn.yaml), chosen on seeds 10-19. Target (issue 10): stays solved "
                       "in ≥ 9/10 fresh seeds.",
    "reinforce:CartPole-v1": "Card: lr 5e-3 annealed to 0 (agents/reinforce.yaml), chosen on seeds 10-19. Target "
                             "(issue 10): final ≥ 400 in 10/10, stays ≥ 475 in ≥ 7/10.",
}


def seed_range(text: str) -> list[int]:
    lo, _, hi = text.partition("-")
    return list(range(int(lo), int(hi or lo) + 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="100-109", help="an inclusive range, e.g. 100-109")
    parser.add_argument("--cells", default=",".join(CELLS))
    parser.add_argument("--out", default="results")
    parser.add_argument("--force", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    seeds = seed_range(args.seeds)
    started = time.time()
    report = header("Changed cards on fresh seeds", f"python {' '.join(['benchmarks/cards.py'] + sys.argv[1:])}", seeds)
    for cell in args.cells.split(","):
        agent, env_id = cell.split(":")

        def log(label, seed, s):
            print(cell, seed, round(s["final_eval"]["mean"], 1), flush=True)

        res = compare.side_by_side(env_id, seeds, out / "runs" / "bench-cards" / agent,
                                   {"rlsuite": compare.ours(agent, env_id)}, args.force, log)
        first = res["rlsuite"][0]
        finals = [s["final_eval"]["mean"] for s in res["rlsuite"]]
        counts = [f"- final ≥ 400: **{sum(f >= 400 for f in finals)}/{len(finals)}**; stays solved (≥ "
                  f"{first['threshold']:g}): **{sum(s['stays_solved'] for s in res['rlsuite'])}/{len(finals)}**; "
                  f"solved at some evaluation: {sum(s['solved'] for s in res['rlsuite'])}/{len(finals)}", ""]
        report += runs_section(f"{agent} on {env_id} (threshold {first['threshold']:g}, budget {first['steps']:,} steps)",
                               res, load_env_card(env_id).max_return, out / f"cards_{agent}_{env_id}", f"rlsuite {agent}",
                               f"{agent} on {env_id}, fresh seeds {seeds[0]}-{seeds[-1]}",
                               [NOTES.get(cell, ""), "", *counts])
    report.append(f"This invocation took {(time.time() - started) / 60:.1f} min (finished runs are reused).")
    (out / "cards.md").write_text("\n".join(report) + "\n")
    print(f"wrote {out / 'cards.md'}")


if __name__ == "__main__":
    main()

"""Regenerate results/cards/: every shipped card validated on seeds that tuning never saw.

    python benchmarks/cards.py                                   # every cell, seeds 100-109
    python benchmarks/cards.py --seeds 100-104 --cells dqn:CartPole-v1
    ATEN_CPU_CAPABILITY=default python benchmarks/cards.py --out results/floatpaths/float-default
    python benchmarks/cards.py --seeds 200-209 --report cards-changed   # another report: results/cards-changed/

A learning claim is a distribution, not a run (docs/protocol.md): each card is run with its own budget on
fresh seeds and reported as the count that meets the cell's target, IQM final with its 95% interval,
and medians. Runs live under OUT/runs/bench-cards/<agent> and are reused while their settings match
(resumed when interrupted), so the script can span sessions; cells run cheapest first and the report
is rewritten after each cell, so a stopped invocation still leaves every finished cell in it.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml

from rlsuite.config.cards import load_env_card
from rlsuite.experiments import compare
from rlsuite.experiments.report import header, report_folder, runs_section
from rlsuite.run.rundir import float_path


@dataclass(frozen=True)
class Cell:
    """A card's target: at least `need` of the seeds reach a final 20-episode mean of at
    least `level` (None: the env's threshold, i.e. stays solved)."""

    agent: str
    env: str
    need: int
    level: float | None = None
    also: tuple[float, int] | None = None  # a second bar: (level, need), e.g. REINFORCE's 475 in 7/10

    @property
    def key(self) -> str:
        return f"{self.agent}:{self.env}"


# Cheapest first: a stopped invocation has finished as many cells as it could.
CELLS = (
    Cell("ppo", "CartPole-v1", 9), Cell("a2c", "CartPole-v1", 9), Cell("reinforce", "CartPole-v1", 10, 400, (475, 7)),
    Cell("dqn", "CartPole-v1", 9), Cell("ppo", "Acrobot-v1", 9), Cell("a2c", "Acrobot-v1", 9),
    Cell("dqn", "Acrobot-v1", 9), Cell("ppo", "Pendulum-v1", 9), Cell("sac", "Pendulum-v1", 10),
    Cell("td3", "Pendulum-v1", 10), Cell("a2c", "LunarLander-v3", 5),
    Cell("ppo", "LunarLander-v3", 9), Cell("dqn", "LunarLander-v3", 7),
)
NOTES = {
    "ppo:CartPole-v1": "Card: found by `rlsuite tune` with the objective's cost term on seeds 10-14 "
                       "(results/tune_cards/ppo-CartPole-v1-cost/report.md), a quarter of the gradient steps of the "
                       "card before it (results/tune_cards/ppo-CartPole-v1, which replaced the zoo's values after "
                       "they stayed solved in 8/10 of seeds 100-109); validated on seeds 400-409 (cards-cost/).",
    "dqn:CartPole-v1": "Card: 3-step returns (cards/agents/dqn.yaml), chosen on seeds 10-19.",
    "reinforce:CartPole-v1": "Card: lr 5e-3 annealed to 0 (cards/agents/reinforce.yaml), chosen on seeds 10-19.",
}

# Why a cell misses its target (reported with its measured figure and why): what was tried and
# where its evidence is. The figures themselves come from the runs (diagnosis below), never from this text.
WHY = {
    "dqn:CartPole-v1": "Tried: the tune studies' best trial (results/tune_cards/dqn-CartPole-v1/report.md) at the card's "
                       "50k steps (results/cards-changed/, fresh seeds 200-209) and at 100k (results/cards-dqn-100k/, "
                       "fresh seeds 300-309): "
                       "neither stayed solved on more fresh seeds than this card. DQN's CartPole runs end either side of "
                       "the threshold seed by seed: some never reach it in the budget, some reach it and fall back "
                       "(results/cards-dqn-fresh400/: the card on seeds no choice has seen).",
    "dqn:LunarLander-v3": "The budget is the zoo's 100k steps (the same for SB3 in results/README.md). The misses "
                          "above end near the threshold, not in a crash, and some fell back after reaching it: with a "
                          "constant learning rate the greedy policy still moves at 100k steps, and one 20-episode "
                          "evaluation of a policy near 200 falls either side. The zoo itself reports these values "
                          "below 200 on average at 100k steps (rl-baselines3-zoo's benchmark). Tried: the "
                          "learning rate annealed to 0 over the budget, on 4 tuning seeds (10-13; not kept as a "
                          "report): no better. Not yet tried on 10 fresh seeds: a larger stated budget.",
    "a2c:LunarLander-v3": "Most of the misses reached 200 at some evaluation and fell back by the end, even with the "
                          "card's learning rate annealed to 0: A2C's small on-policy steps (8 envs × 5 steps per "
                          "update) do not hold a landing policy. SB3 with the zoo's values does no better "
                          "(results/README.md). Tried: two hand-made variants on tuning seeds 10-13 (described in "
                          "benchmarks/tune_cards.py; not kept as reports) and a tune study over the card's space plus "
                          "the optimiser, env count and observation normalisation "
                          "(results/tune_cards/a2c-LunarLander-v3/report.md): its best trial stays solved on none of "
                          "its seeds.",
}


def diagnosis(summaries: list[dict], level: float) -> str:
    """The misses by kind, from the runs: solved at some evaluation then fell back, or never solved (at the
    env's threshold, which `solved` refers to; at another level, the finals only)."""
    missed = [s for s in summaries if s["final_eval"]["mean"] < level]
    if any(s.get("threshold") != level for s in summaries):
        return (f"Misses ({len(missed)} of {len(summaries)}): finals "
                f"{', '.join(format(s['final_eval']['mean'], '.0f') for s in missed)}.")
    fell = [s for s in missed if s.get("solved")]
    never = [s for s in missed if not s.get("solved")]
    parts = [f"{len(group)} {what} (finals {', '.join(format(s['final_eval']['mean'], '.0f') for s in group)})"
             for group, what in ((fell, "reached it at some evaluation, then fell back"), (never, "never reached it"))
             if group]
    return f"Misses ({len(missed)} of {len(summaries)}): " + "; ".join(parts) + "."


def seed_range(text: str) -> list[int]:
    lo, _, hi = text.partition("-")
    return list(range(int(lo), int(hi or lo) + 1))


def targets(cell: Cell, finals: list[float], threshold: float) -> list[tuple[float, int, int, int, str]]:
    """(level, got, need, n, verdict) per bar; the need scales with the number of seeds (k of 10)."""
    n = len(finals)
    bars = [(cell.level if cell.level is not None else threshold, -(-cell.need * n // 10))]
    if cell.also:
        bars.append((cell.also[0], -(-cell.also[1] * n // 10)))
    rows = []
    for level, need in bars:
        got = sum(f >= level for f in finals)
        rows.append((level, got, need, n, "met" if got >= need else f"missed by {need - got} seed{'s' * (need - got != 1)}"))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="100-109", help="an inclusive range, e.g. 100-109")
    parser.add_argument("--cells", default=",".join(c.key for c in CELLS), help="agent:env,...")
    parser.add_argument("--out", default="results")
    parser.add_argument("--force", action="store_true")
    parser.add_argument("--report", default="cards", help="the report's folder in OUT (cards-NAME for a variant)")
    parser.add_argument("--candidate", action="append", default=[], metavar="AGENT:ENV=FILE",
                        help="validate a tuned entry (e.g. a study's best.yaml) in place of the card's, for that cell")
    args = parser.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    name = args.report.removesuffix(".md")
    folder = report_folder(out, name)
    seeds = seed_range(args.seeds)
    by_key = {c.key: c for c in CELLS}
    unknown = [k for k in args.cells.split(",") if k not in by_key]
    if unknown:
        sys.exit(f"unknown cell(s) {unknown}; known: {', '.join(by_key)}")
    candidates = {}
    for item in args.candidate:
        key, _, path = item.partition("=")
        entry = yaml.safe_load(Path(path).read_text())
        env_id = key.split(":")[1]
        candidates[key] = (entry.get(env_id, entry), path)
    started = time.time()
    report = header(f"Cards on fresh seeds (float path: {float_path()})",
                    f"python {' '.join(['benchmarks/cards.py'] + sys.argv[1:])}", seeds)
    report += ["Targets: the project's card targets; SAC and TD3 on Pendulum-v1 must end better than -200 in 5/5 "
               "(so 10/10 here). A card is never tuned on these seeds; a card changed after being seen "
               "here is validated again on new seeds.", ""]
    summary = ["| card | target | measured | verdict |", "|---|---|---|---|"]
    sections: list[str] = []
    for key in args.cells.split(","):
        cell = by_key[key]

        def log(label, seed, s):
            print(key, seed, round(s["final_eval"]["mean"], 1), flush=True)

        overrides, source = candidates.get(key, (None, None))
        res = compare.side_by_side(cell.env, seeds, out / "runs" / "bench-cards" / cell.agent,
                                   {"rlsuite": compare.ours(cell.agent, cell.env, overrides=overrides)}, args.force, log)
        first = res["rlsuite"][0]
        finals = [s["final_eval"]["mean"] for s in res["rlsuite"]]
        label = f"{cell.agent} {cell.env}" + (" (candidate)" if source else "")
        lines = []
        for level, got, need, n, verdict in targets(cell, finals, first["threshold"]):
            lines.append(f"- final ≥ {level:g}: **{got}/{n}** (target ≥ {need}/{n}: **{verdict}**)")
            summary.append(f"| {label} | final ≥ {level:g} in ≥ {need}/{n} | {got}/{n} | {verdict} |")
            if got < need:
                lines += ["", f"Why it misses. {diagnosis(res['rlsuite'], level)} {WHY.get(key, '')}".rstrip()]
        sections += runs_section(f"{cell.agent} on {cell.env}{' — tuned candidate' if source else ''} (threshold {first['threshold']:g}, budget "
                                 f"{first['steps']:,} steps)", res, load_env_card(cell.env).max_return,
                                 folder / f"{name}_{cell.agent}_{cell.env}", f"rlsuite {cell.agent}",
                                 f"{cell.agent} on {cell.env}, fresh seeds {seeds[0]}-{seeds[-1]}",
                                 [f"Candidate: {source}, run in place of the card's entry (not the shipped card)."
                                  if source else NOTES.get(key, "Card: cards/agents/" + cell.agent + ".yaml."), "", *lines, ""])
        done = args.cells.split(",").index(key) + 1
        pending = [f"| {k.replace(':', ' ')} | — | not yet measured | pending |" for k in args.cells.split(",")[done:]]
        took = f"This invocation took {(time.time() - started) / 60:.1f} min (finished runs are reused)."
        if pending:  # a report written part-way says so: its missing cells are listed, never dropped
            took += f" {len(pending)} cell(s) not yet measured: the command above, run again, goes on from here."
        (folder / "README.md").write_text("\n".join(report + summary + pending + [""] + sections + [took]) + "\n")
    print(f"wrote {folder / 'README.md'}")


if __name__ == "__main__":
    main()

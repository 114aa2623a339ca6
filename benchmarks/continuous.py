"""Regenerate results/continuous/: SAC and TD3, rlsuite vs SB3 at the same hyperparameters.

    python benchmarks/continuous.py --sections pendulum         # SAC and TD3 on Pendulum-v1, 5 seeds
    python benchmarks/continuous.py --sections mujoco           # Hopper-v5, HalfCheetah-v5: SAC, TD3 (300k), PPO (1M)
    python benchmarks/continuous.py --sections mujoco --cells sac,td3   # a second process takes those cells
    python benchmarks/continuous.py --sections mujoco --rows rlsuite-bf16   # ... or only those rows of the cells
    python benchmarks/continuous.py --sections bf16             # SAC and TD3 on Pendulum-v1 with precision=bf16
    python benchmarks/continuous.py --sections sb3actor         # SAC Hopper-v5 with SB3's actor vs SB3

Sections (the report is rewritten after each; runs under OUT/runs/bench-continuous are reused and resumed):
  pendulum  SAC and TD3 on Pendulum-v1 at the zoo's values (the cards run them: `hyperparameters vs zoo` says
            so), 20k steps, rlsuite and SB3 alternating seed by seed: final > -200 count (target 5/5),
            IQM [95% CI], wall-to-solve and steps/s ratios, and where rlsuite's time goes.
  mujoco    Hopper-v5 and HalfCheetah-v5: SAC and TD3 (300k steps) and PPO (1M), the env cards' budgets,
            3 seeds, rlsuite vs SB3: final IQM [95% CI], curves, steps/s ratio.
  sb3actor  SAC on Hopper-v5 (the grid's cell below SB3's interval), rlsuite with SB3's actor (--set
            actor_init=torch tanh_eps=1e-6: the two differences the cards keep) vs SB3, 3 seeds, as a grid cell:
            whether they explain the miss. Its own run folder and run records; two processes may share it.
  bf16      SAC and TD3 on Pendulum-v1 as `pendulum`, rlsuite with --set precision=bf16 (hidden-layer matmuls
            in bfloat16, outputs, weights and optimiser in float32) vs SB3 in float32, 5 seeds alternating:
            whether it still learns (final > -200 count, IQM) and what it buys (steps/s ratios).
  updates   one gradient update, rlsuite vs SB3 at the same sizes (Hopper's dimensions, the cards' networks,
            batch 256): matrix-multiply FLOPs counted by torch's FlopCounterMode and CPU time per update
            (process time, so a loaded machine slows both alike), which bound the steps/s ratio where
            updates are 99% of the time; rlsuite's update with precision=bf16 beside them.
  ppotime   where PPO's time goes in the finished MuJoCo cells: each side's CPU time per env step in those
            runs, its update's share (timed alone now, both sides on one rollout SB3 collected at the card's
            values) and everything else (the difference).
"""

from __future__ import annotations

import argparse
import sys
from functools import partial
from pathlib import Path

import numpy as np
import torch

from rlsuite import runs
from rlsuite.config.cards import budget as card_budget
from rlsuite.config.cards import load_env_card
from rlsuite.core.errors import UserError
from rlsuite.core.stats import aggregate
from rlsuite.experiments import compare
from rlsuite.experiments.compare import differences_from_zoo
from rlsuite.experiments.grid import check_only, check_rows, fill_grid, kept_if_gone, mine, train_rows
from rlsuite.experiments.plots import plot_curves
from rlsuite.experiments.profiling import SPLIT_HEAD, best_cpu_times, split_row, time_split
from rlsuite.experiments.report import (
    aggregate_table,
    cpu_ratio,
    header,
    iqm_verdict,
    kept_block,
    per_seed_table,
    ratio_lines,
    read_sections,
    report_folder,
    stamped,
    with_table_verdicts,
    write_section,
)
from rlsuite.experiments.summary import write_summary
from rlsuite.registry import get_agent
from rlsuite.run.rundir import restore_records, save_record

SECTIONS = ("pendulum", "mujoco", "sb3actor", "bf16", "updates", "ppotime")
# Published reference points, all at 1M steps: the zoo's benchmark.md (one run each, -v3 envs, deterministic
# evaluation) and CleanRL's docs (SAC: -v2, training episodic return; TD3 and PPO: -v4, 3 seeds).
REFERENCES = {
    ("sac", "Hopper-v5"): ("2,326", "2,310 ± 343"), ("sac", "HalfCheetah-v5"): ("9,535", "9,635 ± 1,424"),
    ("td3", "Hopper-v5"): ("3,606", "3,135 ± 360"), ("td3", "HalfCheetah-v5"): ("9,656", "9,583 ± 126"),
    ("ppo", "Hopper-v5"): ("2,410", "2,383 ± 272"), ("ppo", "HalfCheetah-v5"): ("5,819", "1,443 ± 46"),
}


def log(label, seed, s):
    print(s["env_id"], label, seed, round(s["final_eval"]["mean"], 1), f"{s['steps_per_s']:.0f} steps/s", flush=True)


# What rlsuite runs with beyond its card, by the name that tags a section's run folder and figures: the cards as
# they are; bf16 hidden-layer matmuls; SB3's SAC actor (its initialisation and its squashing term, the two
# differences from SB3 the cards keep; README).
SETTINGS = {"fp32": {}, "bf16": {"precision": "bf16"}, "sb3-actor": {"actor_init": "torch", "tanh_eps": 1e-6}}


def variants(agent: str, env_id: str, setting: str = "fp32") -> dict:
    """rlsuite (with SETTINGS[setting], which SB3's side takes too where it has the setting) and SB3 at the card's
    values. The MuJoCo SAC and TD3 cells of the grid also run rlsuite with precision=bf16, alternating with the
    other two seed by seed (so its speed ratio is side by side too)."""
    steps = card_budget(agent, get_agent(agent).config_cls, env_id)  # the one budget, the same for both sides
    found = compare.ours_and_sb3(agent, env_id, steps, SETTINGS[setting] or None)
    if setting == "fp32" and env_id != "Pendulum-v1" and agent in ("sac", "td3"):
        found["rlsuite-bf16"] = compare.ours(agent, env_id, steps, {"precision": "bf16"})
    return found


def runs_root(out: Path, agent: str, setting: str = "fp32") -> Path:
    return out / "runs" / ("bench-continuous" if setting == "fp32" else f"bench-continuous-{setting}") / agent


def records(out: Path) -> Path:
    """Where the MuJoCo grid's finished runs are kept for a later checkout (rundir.save_record), committed."""
    return out / "run-records"


def cell(agent: str, env_id: str, seeds, out: Path, setting: str = "fp32", rows: str | None = None,
         keep: bool = False) -> dict | None:
    def done(label, seed, s):
        log(label, seed, s)
        if keep:  # the run's directory as this process named it (a summary's run_dir is relative to where it ran)
            save_record(runs_root(out, agent, setting) / "runs" / compare.run_name(label, env_id, seed), out / "runs",
                        records(out))

    return train_rows(env_id, seeds, runs_root(out, agent, setting), variants(agent, env_id, setting), rows, done)


def cell_lines(agent: str, env_id: str, res: dict, out: Path, need: int | None = None, setting: str = "fp32") -> list[str]:
    first = res["rlsuite"][0]
    diff = differences_from_zoo(agent, env_id)
    same = "same as the zoo's" if not diff else "differ from the zoo's in " + ", ".join(sorted(diff))
    also = ", with " + " and ".join(f"{k}={v}" for k, v in SETTINGS[setting].items()) if SETTINGS[setting] else ""
    lines = [f"### {agent.upper()} on {env_id} (budget {first['steps']:,} steps; rlsuite's card values {same}{also})", ""]
    r = ratio_lines(res["rlsuite"], res["sb3"], "rlsuite", "sb3")
    if need is not None:
        got = {name: aggregate(v)["stays_solved"] for name, v in res.items()}
        lines += [f"- final ≥ {first['threshold']:g}: rlsuite **{got['rlsuite']}/{len(res['rlsuite'])}** (target "
                  f"{need}/{len(res['rlsuite'])}), SB3 {got['sb3']}/{len(res['sb3'])}",
                  f"- rlsuite / SB3: median wall-to-solve {r['wall_to_solve']:.2f}×, median steps/s "
                  f"**{r['steps_per_s']:.2f}×** (target ≥ 1.5×; per seed {', '.join(f'{p:.2f}' for p in r['pairs'])}); "
                  f"per CPU second of the training process: {cpu_ratio(r)}", ""]
    else:
        lines += [f"- rlsuite / SB3 median steps/s **{r['steps_per_s']:.2f}×** (target ≥ 1.5×); per CPU second of the "
                  f"training process (other load on the machine does not skew it): {cpu_ratio(r)}", ""]
        if "rlsuite-bf16" in res:
            b = ratio_lines(res["rlsuite-bf16"], res["sb3"], "rlsuite-bf16", "sb3")
            lines[-1:] = [f"- rlsuite with precision=bf16 (the bf16 section) / SB3 median steps/s "
                          f"**{b['steps_per_s']:.2f}×**; per CPU second: {cpu_ratio(b)}", ""]
        # the learning target, stated (the tables below hold the numbers it is read from)
        lines[-1:] = [f"- {iqm_verdict(res[name], res['sb3'], name, 'SB3', 'target: inside or above')}"
                      for name in res if name != "sb3"] + [""]
    if (agent, env_id) in REFERENCES:
        zoo, cleanrl = REFERENCES[agent, env_id]
        lines += [f"- published, at 1M steps (this budget: {first['steps']:,}): the zoo {zoo} (one run, -v3), "
                  f"CleanRL {cleanrl} ({'-v2, training returns' if agent == 'sac' else '-v4, 3 seeds'})", ""]
    lines += aggregate_table(res, load_env_card(env_id).max_return) + per_seed_table(res)
    labels = {s["run_dir"]: f"{name} {agent}" for name, v in res.items() for s in v}
    suffix = "" if setting == "fp32" else f"_{setting}"
    paths = plot_curves(list(labels), out / "continuous" / f"continuous_{agent}_{env_id}{suffix}", labels=labels,
                        title=f"{agent} on {env_id}: mean and 95% band over {len(res['rlsuite'])} seeds").paths
    return lines + [f"![{agent} {env_id}]({paths[0].name})", ""]


def pendulum_section(out: Path, seeds) -> list[str]:
    lines = ["## Pendulum-v1: SAC and TD3, rlsuite vs SB3", "",
             "Same seeds, alternating in this process, one torch thread, CPU. Target: better than −200 "
             "in 5/5 within 20k steps, steps/s ≥ 1.5× SB3.", ""]
    splits = []
    for agent in ("sac", "td3"):
        res = cell(agent, "Pendulum-v1", seeds, out)
        lines += cell_lines(agent, "Pendulum-v1", res, out, need=len(seeds))
        spec, config, card, _ = runs.load_run(Path(res["rlsuite"][0]["run_dir"]))
        policy = runs.load_policy(res["rlsuite"][0]["run_dir"])
        full = aggregate(res["rlsuite"])["median_steps_per_s"]
        splits.append(split_row(agent.upper(), time_split(card, config.num_envs, full, policy.act)))
    return lines + ["Where rlsuite's time goes (Pendulum-v1, steps/s; the last share is what the full run adds to "
                    "env + acting: the gradient steps, replay sampling and bookkeeping):", "", *SPLIT_HEAD, *splits, ""]


def native_bf16() -> str:
    from rlsuite.learn.nets import bf16_is_native

    if not bf16_is_native("cpu"):
        return "no (emulated: slower than fp32)"
    return "yes (" + " and ".join(name for name, has in (("AVX512-BF16", torch.cpu._is_avx512_bf16_supported()),
                                                       ("AMX", torch.cpu._is_amx_tile_supported())) if has) + ")"


def bf16_section(out: Path, seeds) -> list[str]:
    lines = ["## Pendulum-v1 with precision=bf16: SAC and TD3, rlsuite vs SB3", "",
             "As the Pendulum section, rlsuite with `--set precision=bf16`: its updates run the hidden layers' matrix "
             f"multiplies in bfloat16 (torch autocast; native bf16 on this CPU: {native_bf16()}), while weights, "
             "gradients, Adam and every output layer (Q-values, the policy's mean and log-std) stay float32. "
             "SB3 runs in float32 as "
             "always. Same seeds, alternating in this process. Target: better than −200 in 5/5 within 20k "
             "steps, steps/s ≥ 1.5× SB3.", ""]
    for agent in ("sac", "td3"):
        lines += cell_lines(agent, "Pendulum-v1", cell(agent, "Pendulum-v1", seeds, out, "bf16"), out,
                            need=len(seeds), setting="bf16")
    return lines


KEPT_NOTE = ("*Kept as published: this cell's runs predate the committed run records (results/run-records/) and "
             "are not on this machine, so the grid shows it as it was and does not train it again; delete this "
             "block to re-run it.*")


def mujoco_section(out: Path, seeds, publish=None, only: str | None = None, rows: str | None = None):
    """The MuJoCo cells (many CPU-hours): each finished cell is published at once (`publish(render)`),
    with the cells still to run named, so a stopped invocation leaves its finished cells in the report;
    `only` (e.g. "sac,td3") trains those cells alone, so a second process can take them (rlsuite.experiments.grid);
    `rows` (e.g. "rlsuite-bf16") only those rows of them."""
    lines = ["## MuJoCo: SAC, TD3 and PPO, rlsuite vs SB3", "",
             f"Seeds {list(seeds)}, the env cards' budgets. Target: rlsuite's IQM within SB3's interval or "
             "above, steps/s ≥ 1.5× SB3. Reference points: the zoo's and CleanRL's published scores are at 1M steps. "
             "SAC and TD3 cells also run rlsuite with `--set precision=bf16` (rows `rlsuite-bf16`; see the bf16 "
             "section), alternating with the other two seed by seed.", ""]
    # The cheapest cells first (PPO's 1M steps take minutes, a SAC or TD3 300k run about an hour a side), so a
    # session's compute finishes whole cells early; the report still lists them env by env, SAC, TD3, PPO.
    cells = [("ppo", "Hopper-v5"), ("ppo", "HalfCheetah-v5"), ("sac", "Hopper-v5"), ("td3", "Hopper-v5"),
             ("sac", "HalfCheetah-v5"), ("td3", "HalfCheetah-v5")]
    shown = [(agent, env_id) for env_id in ("Hopper-v5", "HalfCheetah-v5") for agent in ("sac", "td3", "ppo")]
    check_only(cells, only)  # before the rows are checked against the cells it picks
    check_rows(rows, list(dict.fromkeys(label for key in cells if mine(key, only) for label in variants(*key))))

    restore_records(records(out), out / "runs")

    def peek(key):
        agent, env_id = key
        return compare.finished(env_id, seeds, runs_root(out, agent), variants(agent, env_id))

    def kept(key):
        """A cell published before records were kept: its block as published, while none of its runs is here."""
        agent, env_id = key
        names = [compare.run_name(label, env_id, seed) for label in variants(agent, env_id) for seed in seeds]
        block = kept_block(read_sections(out / "continuous" / "README.md").get("mujoco", []), f"### {agent.upper()} on {env_id} (",
                           KEPT_NOTE)
        block = with_table_verdicts(block, "sb3", "SB3", "target: inside or above")
        return kept_if_gone([runs_root(out, agent) / "runs" / name for name in names], block)

    return fill_grid(cells, shown, lambda key: cell(*key, seeds, out, rows=rows, keep=True), peek,
                     lambda key, res: (cell_lines(*key, res, out), []), lines, len(lines),
                     lambda key: f"{key[0].upper()} {key[1]}", publish, only, kept)


def sb3actor_section(out: Path, seeds, publish=None):
    """SAC on Hopper-v5 with SB3's actor against SB3: one cell, trained and published as the grid's are
    (fill_grid: runs another process holds are left to it, finished runs are kept as run records)."""
    key, setting = ("sac", "Hopper-v5"), "sb3-actor"
    head = ["## SAC on Hopper-v5 with SB3's actor: rlsuite vs SB3", "",
            "The MuJoCo grid's SAC Hopper-v5 cell ends with rlsuite's IQM below SB3's interval. Two differences from "
            "SB3's SAC stay in the cards: the actor trunk's initialisation (orthogonal in rlsuite, `nn.Linear`'s "
            "default in SB3) and the squashing term of the log-prob (exact in rlsuite; SB3 computes "
            "log(1 - tanh(u)² + 1e-6), which stops growing once an action saturates). Here rlsuite runs with "
            "`--set actor_init=torch --set tanh_eps=1e-6`, which removes both, against SB3 at the same values (SB3 "
            "has neither setting, so it runs as in the grid), same seeds, alternating, in their own run folder. If "
            "rlsuite's IQM is inside SB3's interval or above here, they explain the miss; if not, it lies elsewhere. "
            "With 3 seeds either side's interval is wide, so neither answer is more than a pointer.", ""]
    restore_records(records(out), out / "runs")

    def peek(k):
        return compare.finished(k[1], seeds, runs_root(out, k[0], setting), variants(*k, setting))

    return fill_grid([key], [key], lambda k: cell(*k, seeds, out, setting, keep=True), peek,
                     lambda k, res: (cell_lines(*k, res, out, setting=setting), []), head, len(head),
                     lambda k: f"{k[0].upper()} {k[1]} with SB3's actor", publish)


def updates_section(reps: int = 3, n: int = 150) -> list[str]:
    """Per gradient update: GEMM FLOPs and CPU time, rlsuite's update function vs SB3's train() (same
    network sizes, batch, a replay memory of random transitions)."""
    import gymnasium as gym
    from stable_baselines3 import SAC, TD3
    from torch.utils.flop_counter import FlopCounterMode

    from rlsuite.agents.sac_td3 import SACConfig, TD3Config, build_learner, sac_update, td3_update
    from rlsuite.learn.nets import matmul_precision
    from rlsuite.learn.optim import DivergenceGuard

    env = gym.make("Hopper-v5")
    obs_dim, act_dim, batch_size = env.observation_space.shape[0], env.action_space.shape[0], 256
    lines = ["## One gradient update, rlsuite vs SB3", "",
             f"Hopper-v5's dimensions (obs {obs_dim}, actions {act_dim}), the cards' networks, batch {batch_size}, one "
             "torch thread. FLOPs: the matrix multiplies of one update (forward and backward), counted by torch's "
             "FlopCounterMode (TD3: the mean of a critic-only and a critic+actor update). CPU time: process time "
             f"per update, best of {reps} interleaved repeats of {n} updates, so other load on the machine slows "
             "both sides alike.", "",
             "| agent | networks | GEMM MFLOP per update: rlsuite | SB3 | SB3 / rlsuite | CPU ms per update: rlsuite "
             "| SB3 | SB3 / rlsuite | GFLOP/s: rlsuite | SB3 | rlsuite bf16: CPU ms | SB3 / rlsuite bf16 |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    rng = np.random.default_rng(0)
    for name, cfg_cls, algo_cls, hidden in (("SAC", SACConfig, SAC, [256, 256]), ("TD3", TD3Config, TD3, [400, 300])):
        cfg = cfg_cls(hidden=hidden)
        torch.manual_seed(0)
        nets, opts = build_learner(cfg, obs_dim, act_dim, "cpu", [0])
        guard = DivergenceGuard()
        batch = {"obs": torch.randn(batch_size, obs_dim), "next_obs": torch.randn(batch_size, obs_dim),
                 "actions": torch.rand(batch_size, act_dim) * 2 - 1, "rewards": torch.randn(batch_size),
                 "discounts": torch.full((batch_size,), 0.99)}
        counter = {"u": 0}

        def ours(k: int, precision: str = "fp32") -> None:
            for _ in range(k):
                counter["u"] += 1
                with matmul_precision(precision, "cpu"):
                    (sac_update if name == "SAC" else td3_update)(cfg, nets, opts, batch, guard, counter["u"])

        def ours_bf16(k: int) -> None:
            ours(k, "bf16")

        model = algo_cls("MlpPolicy", env, policy_kwargs={"net_arch": hidden}, batch_size=batch_size, learning_starts=0,
                         buffer_size=10_000, device="cpu", seed=0)
        for _ in range(2 * batch_size):  # a replay memory to sample from; its contents do not change the cost
            a = rng.uniform(-1, 1, (1, act_dim)).astype(np.float32)
            model.replay_buffer.add(rng.normal(size=(1, obs_dim)), rng.normal(size=(1, obs_dim)), a,
                                    np.zeros(1), np.zeros(1), [{}])
        model._setup_learn(1000)

        def theirs(k: int) -> None:
            model.train(gradient_steps=k, batch_size=batch_size)

        flops = {}
        sides = (("rlsuite", ours), ("sb3", theirs), ("bf16", ours_bf16))
        for side, fn in sides:
            fn(10)  # warm up (allocations, the first Adam step)
            if side == "bf16":  # the same arithmetic as fp32, in other units
                continue
            with FlopCounterMode(display=False) as fc:
                fn(2)
            flops[side] = fc.get_total_flops() / 2
        best = {side: t / n for side, t in best_cpu_times({side: partial(fn, n) for side, fn in sides}, reps).items()}
        lines.append(f"| {name} | {'-'.join(map(str, hidden))} | {flops['rlsuite'] / 1e6:.0f} | {flops['sb3'] / 1e6:.0f} | "
                     f"{flops['sb3'] / flops['rlsuite']:.2f}× | {best['rlsuite'] * 1e3:.2f} | {best['sb3'] * 1e3:.2f} | "
                     f"**{best['sb3'] / best['rlsuite']:.2f}×** | {flops['rlsuite'] / best['rlsuite'] / 1e9:.0f} | "
                     f"{flops['sb3'] / best['sb3'] / 1e9:.0f} | {best['bf16'] * 1e3:.2f} | **{best['sb3'] / best['bf16']:.2f}×** |")
    return lines + ["", "Both sides run their matrix multiplies at about the same rate (the GFLOP/s columns), so at the "
                    "same hyperparameters the update-time ratio stays close to the arithmetic ratio: rlsuite does less "
                    "(the actor's loss reads the critics through detached weights, skipping their weight gradients; "
                    "TD3's actor reads Q_1 alone), not enough for 1.5×. More would need less arithmetic per update "
                    "(smaller networks or batches, fewer updates per step), or cheaper arithmetic: the last two columns "
                    "run rlsuite's update with precision=bf16, whose hidden-layer matrix multiplies run in bfloat16 "
                    f"(native on this CPU: {native_bf16()}) while outputs, weights and Adam stay float32. Whether learning "
                    "survives that is the bf16 section's question.", ""]


def ppo_time_section(out: Path, seeds, reps: int = 5) -> list[str]:
    """Where PPO's time goes in the finished MuJoCo cells: the runs' CPU time per env step (median over seeds,
    eval excluded), and each side's own update per env step timed alone here on one real rollout."""
    import statistics

    from rlsuite.agents.pg import build_actor_critic, ppo_update
    from rlsuite.learn.optim import DivergenceGuard, make_adam
    from rlsuite.sb3.baseline import make_model
    from rlsuite.sb3.hyperparameters import baseline_hyperparameters

    lines = ["## Where PPO's time goes on MuJoCo, rlsuite vs SB3", "",
             "CPU ms per env step. Total: the finished MuJoCo PPO runs' training-process CPU time (the median over "
             "seeds; evaluation excluded). Update: each side's own update timed alone here, on one rollout SB3 "
             "collected at the card's values (rlsuite's update gets the same tensors), best of "
             f"{reps} interleaved repeats of its process time, divided by the rollout's steps. Everything else is the "
             "total less the update (collecting, GAE, the value pass, checkpoints, logging): a difference of two "
             "measurements taken hours apart, so read it to about ±0.05 ms.", "",
             "| env | rollout × epochs, batch | total: rlsuite | SB3 | SB3 / rlsuite | update: rlsuite | SB3 | "
             "SB3 / rlsuite | everything else: rlsuite | SB3 | SB3 / rlsuite |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    shares = []
    for env_id in ("Hopper-v5", "HalfCheetah-v5"):
        found = compare.finished(env_id, seeds, runs_root(out, "ppo"), variants("ppo", env_id))
        if found is None:
            lines.append(f"| {env_id} | not yet: the PPO cell has unfinished runs | | | | | | | | | |")
            continue
        if not all(s.get("steps_per_cpu_s") for v in found.values() for s in v):
            lines.append(f"| {env_id} | some runs predate CPU-time keeping: no total | | | | | | | | | |")
            continue
        total = {side: 1e3 / statistics.median(s["steps_per_cpu_s"] for s in found[side]) for side in ("rlsuite", "sb3")}
        _, cfg, card = runs.prepare("ppo", env_id)
        hp = baseline_hyperparameters("ppo", env_id)[0]
        torch.manual_seed(0)
        model = make_model("ppo", card, hp, 0, "cpu", int(hp.get("n_envs", 1)))
        theirs = (model.n_steps, model.n_envs, model.n_epochs, model.batch_size)
        if theirs != (cfg.n_steps, cfg.num_envs, cfg.n_epochs, cfg.batch_size):  # else the two updates differ in size
            raise UserError(f"ppo {env_id}: SB3's rollout, envs, epochs, batch {theirs} differ from the card's")
        _, callback = model._setup_learn(10 * model.n_steps, callback=None)
        callback.on_training_start(locals(), globals())  # as SB3's learn() does before collecting
        model.collect_rollouts(model.env, callback, model.rollout_buffer, model.n_steps)
        buf = model.rollout_buffer
        batch = {name: torch.as_tensor(getattr(buf, field)).flatten(0, 1).float()  # (T, N, ...) -> (T*N, ...)
                 for name, field in (("obs", "observations"), ("actions", "actions"), ("logprobs", "log_probs"),
                                     ("values", "values"), ("advantages", "advantages"), ("returns", "returns"))}
        ours = build_actor_critic(cfg, model.env.observation_space, model.env.action_space)
        optimizer, guard, rng = make_adam(ours.parameters(), cfg.lr(0.0), cfg.optimizer_eps), DivergenceGuard(), \
            np.random.default_rng(0)
        best = best_cpu_times({"rlsuite": lambda: ppo_update(ours, optimizer, batch, cfg, 0.0, rng, guard),
                               "sb3": model.train}, reps)
        n = cfg.n_steps * cfg.num_envs
        update = {side: t / n * 1e3 for side, t in best.items()}
        rest = {side: total[side] - update[side] for side in total}
        shares.append((env_id, update["rlsuite"] / total["rlsuite"]))

        def trio(d):
            return f"{d['rlsuite']:.3f} | {d['sb3']:.3f} | **{d['sb3'] / d['rlsuite']:.2f}×**"

        lines.append(f"| {env_id} | {cfg.n_steps} × {cfg.n_epochs}, {cfg.batch_size} | {trio(total)} | {trio(update)} | "
                     f"{trio(rest)} |")
    if not shares:
        return lines + [""]
    return lines + ["", "The update is " + ", ".join(f"{share:.0%} of rlsuite's step on {env_id}" for env_id, share in shares) +
                    ". The total ratio is the parts' ratios weighted by those shares: 1.5× overall needs the parts "
                    "to average 1.5× at those weights. Both updates run the same small matrix multiplies (two 256-256 "
                    "networks at batch 32 or 64), arithmetic neither side can skip at the same hyperparameters.", ""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sections", default=",".join(SECTIONS))
    parser.add_argument("--seeds", type=int, default=None, help="default: 5 (pendulum, bf16), 3 (mujoco, sb3actor, ppotime)")
    parser.add_argument("--out", default="results")
    parser.add_argument("--cells", default=None,
                        help="mujoco: train only these cells (agents, env ids or agent:env_id, comma-separated); cells "
                             "another process finished are reported, those it is training skipped")
    parser.add_argument("--rows", default=None,
                        help="mujoco: train only these rows of the cells (rlsuite, sb3, rlsuite-bf16; comma-separated), "
                             "e.g. a second process answering the bf16 question first")
    args = parser.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = report_folder(out, "continuous") / "README.md"
    if (args.cells or args.rows) and args.sections != "mujoco":  # a second process must not redo the other sections
        sys.exit("--cells and --rows pick runs of the mujoco grid: use them with --sections mujoco alone")
    for name in args.sections.split(","):
        if name not in SECTIONS:
            sys.exit(f"unknown section {name}; choose from {', '.join(SECTIONS)}")
        seeds = list(range(args.seeds or (3 if name in ("mujoco", "sb3actor", "ppotime") else 5)))
        head = header("Continuous control: SAC and TD3 vs SB3", "python benchmarks/continuous.py", None)

        def publish(section, name=name, seeds=seeds):
            """section: the lines, or (the MuJoCo grid) the function rendering them, called under the report's lock."""
            write_section(path, head, name, lambda: stamped(section() if callable(section) else section,
                                                            f"python benchmarks/continuous.py --sections {name}",
                                                            seeds if name != "updates" else None), SECTIONS)
            write_summary(out)  # the front page quotes the report as it is now

        try:
            if name == "mujoco":
                publish(mujoco_section(out, seeds, publish, args.cells, args.rows))
            elif name == "sb3actor":
                publish(sb3actor_section(out, seeds, publish))
            else:
                publish(pendulum_section(out, seeds) if name == "pendulum" else bf16_section(out, seeds)
                        if name == "bf16" else ppo_time_section(out, seeds) if name == "ppotime" else updates_section())
        except UserError as e:
            sys.exit(str(e))
        print(f"wrote {path} ({name})", flush=True)


if __name__ == "__main__":
    main()

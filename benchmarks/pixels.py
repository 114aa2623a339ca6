"""Regenerate results/pixels/: DQN and PPO on image observations, rlsuite vs SB3.

    python benchmarks/pixels.py                                  # every section (many hours on 2 cores)
    python benchmarks/pixels.py --sections memory,speed          # minutes
    python benchmarks/pixels.py --sections minatar --seeds 3     # MinAtar learning, resumable
    python benchmarks/pixels.py --sections minatar --cells ppo   # a second process takes the PPO cells

Sections (the report is rewritten after each, so a stopped invocation keeps what it finished):
  memory   the frame-sharing replay memory of a 1M-transition Atari DQN, filled with 1M frames in a
           fresh process: its peak resident memory, beside what obs + next_obs stored whole would take.
  vectorization  env steps/s of sync, async and EnvPool for MinAtar and Pong (8 envs, random actions).
  speed    Atari Pong steps/s at the zoo's values, rlsuite (gymnasium vector env, then EnvPool) vs SB3,
           alternating in this process; DQN starts learning after 2,000 steps on both sides (the zoo's
           100k would time only the random phase). Every variant is timed again at each invocation; rlsuite
           sync and SB3 (both step their envs in-process) also per CPU-second. Where rlsuite's time goes: env
           stepping alone (random actions, the same vector env), env + acting (the policy's forward passes),
           the rest = updates; one PPO minibatch step, rlsuite vs SB3, in CPU ms.
  minatar  MinAtar Breakout, SpaceInvaders, Asterix: DQN and PPO, rlsuite vs SB3 with the same values
           (SB3 runs rlsuite's CNN as its features extractor), 1M steps, final IQM [95% CI], curves, the
           MinAtar paper's DQN beside. Runs under OUT/runs/bench-pixels, reused and resumed.
  pong     PPO on Atari Pong, 1M steps, one seed each for rlsuite and SB3: the learning curves side by side.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch

from rlsuite.core.errors import UserError
from rlsuite.core.stats import aggregate
from rlsuite.experiments import compare
from rlsuite.experiments.grid import fill_grid
from rlsuite.experiments.plots import plot_curves
from rlsuite.experiments.profiling import SPLIT_HEAD, split_row, time_split
from rlsuite.experiments.report import cpu_ratio, header, ratio_lines, report_folder, stamped, write_section
from rlsuite.experiments.summary import write_summary

MINATAR = ("MinAtar/Breakout-v1", "MinAtar/SpaceInvaders-v1", "MinAtar/Asterix-v1")
# The MinAtar paper's DQN (Young & Tian 2019, its Figure 2 curves, read by eye) after 5M frames.
PAPER_DQN = {"MinAtar/Breakout-v1": 10, "MinAtar/SpaceInvaders-v1": 43, "MinAtar/Asterix-v1": 17}
SPEED_STEPS = {"dqn": 20_000, "ppo": 20_480}
DQN_TIMING = ({"learning_starts": "2000"}, {"learning_starts": 2000})  # (rlsuite --set, SB3), the same setting


def fill_memory(capacity: int) -> dict:
    """In this (fresh) process: a FrameReplayBuffer for (4, 84, 84) frames filled with `capacity` transitions."""
    import resource

    from rlsuite.learn.frame_replay import FrameReplayBuffer, frame_replay_bytes
    from rlsuite.learn.replay import naive_replay_bytes

    shape = (4, 84, 84)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    buffer = FrameReplayBuffer(capacity, shape, num_envs=1)
    rng = np.random.default_rng(0)
    pool = rng.integers(0, 256, (64, *shape), dtype=np.uint8)  # frames drawn from a pool: filling is the point
    obs = pool[:1]
    keys = buffer.begin(obs)
    t0 = time.perf_counter()
    for t in range(capacity):
        nxt = pool[(t + 1) % 64][None]
        ended = np.array([t % 1000 == 999])  # an episode (a life) every 1000 steps
        stored_next, current = buffer.advance(keys, nxt, nxt, ended)
        buffer.add(keys, np.zeros(1, np.int64), np.zeros(1, np.float32), stored_next, np.full(1, 0.99, np.float32))
        keys = current
    fill_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(200):
        buffer.gather(buffer.sample_indices((1, 32), rng))
    sample_ms = (time.perf_counter() - t0) / 200 * 1000
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"capacity": capacity, "peak_rss": peak, "rss_before": before, "computed": frame_replay_bytes(capacity, shape, 1, 1, False),
            "naive": naive_replay_bytes(capacity, shape), "fill_s": fill_s, "sample_ms": sample_ms,
            "frames_per_transition": buffer.written / capacity}


def memory_section() -> list[str]:
    cmd = [sys.executable, __file__, "--fill-memory", "1000000"]
    m = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.splitlines()[-1])
    gb = lambda b: f"{b / 1e9:.2f} GB ({b / 2**30:.2f} GiB)"  # noqa: E731
    return ["## Replay memory of a 1M-transition Atari DQN", "",
            "| what | bytes |", "|---|---|",
            f"| frame-sharing memory, computed before allocation (what `rlsuite train` checks) | {gb(m['computed'])} |",
            f"| peak resident memory of a process holding it, filled with 1M transitions | {gb(m['peak_rss'])} |",
            f"| the same process before allocating it (python, numpy, torch) | {gb(m['rss_before'])} |",
            f"| obs + next_obs stored whole (a plain replay buffer) | {gb(m['naive'])} |", "",
            f"Ratio frame-sharing / whole: {m['computed'] / m['naive']:.3f} (1 / (2 × stack) = 0.125). Frames written "
            f"per transition: {m['frames_per_transition']:.4f} (one per step plus one per episode start, episodes of "
            f"1000 steps here). Filling took {m['fill_s']:.0f} s; a batch of 32 stacks and next-stacks is rebuilt in "
            f"{m['sample_ms']:.2f} ms. Target: ≤ 8 GB.", ""]


def vectorization_section() -> list[str]:
    """Env steps/s of each backend with random actions, 8 envs: what the cards' `vectorization` choices rest on."""
    import dataclasses

    from rlsuite.config.cards import load_env_card
    from rlsuite.experiments.profiling import env_rate

    lines = ["## Vectorization backends (8 envs, random actions, env steps/s)", "",
             "| env | sync | async | envpool |", "|---|---|---|---|"]
    for env_id, steps in (("MinAtar/Breakout-v1", 16_000), ("ALE/Pong-v5", 2_400)):
        card = load_env_card(env_id)
        rates = {}
        for backend in ("sync", "async", "envpool"):
            if backend == "envpool" and not env_id.startswith("ALE/"):
                rates[backend] = "—"
                continue
            rates[backend] = f"{env_rate(dataclasses.replace(card, vectorization=backend), 8, steps):,.0f}"
        lines.append(f"| {env_id} | {rates['sync']} | {rates['async']} | {rates['envpool']} |")
    return lines + ["", "MinAtar's cards use sync (a step is microseconds, less than a round trip to a worker "
                    "process); Atari's use async (Breakout: auto, EnvPool when installed).", ""]


def ppo_minibatch_ms(reps: int = 3, n: int = 5) -> dict[str, float]:
    """CPU ms of one PPO minibatch step at the zoo's Atari values (256 stacks of 4x84x84, the Nature CNN
    shared by actor and critic, forward + backward + clip + Adam), rlsuite's network and loss terms vs
    SB3's ActorCriticCnnPolicy: best of `reps` interleaved repeats of `n` steps, process time."""
    import gymnasium as gym
    from stable_baselines3.common.policies import ActorCriticCnnPolicy

    from rlsuite.agents.pg import PPOConfig, build_actor_critic, log_prob_entropy, policy_and_values
    from rlsuite.learn.optim import gradient_step

    obs_space, action_space = gym.spaces.Box(0, 255, (4, 84, 84), np.uint8), gym.spaces.Discrete(6)
    torch.manual_seed(0)
    ours = build_actor_critic(PPOConfig(share_trunk=True, hidden=[512]), obs_space, action_space)
    ours_opt = torch.optim.Adam(ours.parameters(), lr=2.5e-4, eps=1e-5)
    sb3 = ActorCriticCnnPolicy(obs_space, action_space, lambda _: 2.5e-4)
    obs, actions = torch.randint(0, 256, (256, 4, 84, 84), dtype=torch.uint8), torch.randint(0, 6, (256,))

    def step_ours() -> None:
        dist, values = policy_and_values(ours, obs)
        logp, entropy = log_prob_entropy(dist, actions)
        gradient_step(ours_opt, logp.mean() + values.pow(2).mean() - entropy.mean(), 0.5)

    def step_sb3() -> None:
        values, logp, entropy = sb3.evaluate_actions(obs, actions)
        sb3.optimizer.zero_grad()
        (logp.mean() + values.pow(2).mean() - entropy.mean()).backward()
        torch.nn.utils.clip_grad_norm_(sb3.parameters(), 0.5)
        sb3.optimizer.step()

    best = {"rlsuite": float("inf"), "sb3": float("inf")}
    for fn in (step_ours, step_sb3):
        fn()  # warm-up
    for _ in range(reps):
        for name, fn in (("rlsuite", step_ours), ("sb3", step_sb3)):
            t = time.process_time()
            for _ in range(n):
                fn()
            best[name] = min(best[name], (time.process_time() - t) / n * 1000)
    return best


def speed_section(out: Path) -> list[str]:
    from rlsuite import runs
    from rlsuite.config.cards import load_env_card

    env_id = "ALE/Pong-v5"
    root = out / "runs" / "bench-pixels" / "speed"
    lines = ["## Atari Pong: steps/s at the zoo's values", "",
             "Alternating in this process, one torch thread, CPU, every variant timed again at each invocation (a "
             "rate measured hours earlier under other load is not comparable). rlsuite's cards run the zoo's values "
             "(cards/agents/*.yaml, `ALE/Pong-v5`); DQN learns from step 2,000 on both sides. `rlsuite (envpool)` is the "
             "same card with `vectorization: envpool`, `rlsuite (sync)` with gymnasium's in-process vector env "
             "(SB3's DummyVecEnv steps its envs in-process too; the card's async env runs one worker process per "
             "env). Wall-clock rates on this shared 2-core machine move with other load; the last column divides "
             "steps by the training process's CPU time instead, which load does not skew, for the two variants "
             "whose envs step on its main thread (rlsuite sync and SB3's DummyVecEnv; the async env's worker "
             "processes are not in it, EnvPool's threads are).", "",
             "| agent | steps | rlsuite steps/s | rlsuite (envpool) | rlsuite (sync) | SB3 steps/s | rlsuite / SB3 | "
             "envpool / SB3 | sync / SB3 | sync / SB3 per CPU-second |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    split = ["", "Where rlsuite's time goes (the card's vector env on this machine, steps/s; the last share is "
             "what the full run adds to env + acting):", "", *SPLIT_HEAD]
    for agent in ("dqn", "ppo"):
        steps = SPEED_STEPS[agent]
        ours_set, sb3_set = DQN_TIMING if agent == "dqn" else ({}, None)
        variants = compare.ours_and_sb3(agent, env_id, steps, ours_set or None, sb3_set)
        for label, backend in (("rlsuite-envpool", "envpool"), ("rlsuite-sync", "sync")):  # the same card otherwise
            changes = {"vectorization": backend}
            variants[label] = (partial(runs.train, agent, env_id, steps=steps, overrides=ours_set or None,
                                       env_changes=changes),
                               runs.fingerprint(agent, env_id, steps, ours_set or None, env_changes=changes))
        card = load_env_card(env_id)
        res = compare.side_by_side(env_id, [0], root / agent, variants, True,
                                   lambda label, seed, s: print(agent, label, f"{s['steps_per_s']:.0f} steps/s", flush=True))
        ours, pool, sync, sb3 = (res[k][0]["steps_per_s"] for k in ("rlsuite", "rlsuite-envpool", "rlsuite-sync", "sb3"))
        cpu = ratio_lines(res["rlsuite-sync"], res["sb3"], "sync", "sb3")
        lines.append(f"| {agent.upper()} | {steps:,} | {ours:,.0f} | {pool:,.0f} | {sync:,.0f} | {sb3:,.0f} | "
                     f"{ours / sb3:.2f}× | {pool / sb3:.2f}× | {sync / sb3:.2f}× | {cpu_ratio(cpu)} |")
        config = runs.load_run(Path(res["rlsuite"][0]["run_dir"]))[1]
        policy = runs.load_policy(res["rlsuite"][0]["run_dir"])
        split.append(split_row(agent.upper(), time_split(card, config.num_envs, ours, policy.act)))
    ms = ppo_minibatch_ms()
    return lines + split + [
        "", f"One PPO minibatch step at these values (256 stacks, the shared Nature CNN, forward + backward + clip + "
        f"Adam; CPU ms, best of 3 interleaved repeats): rlsuite **{ms['rlsuite']:.0f}**, SB3 **{ms['sb3']:.0f}** "
        f"(SB3 / rlsuite {ms['sb3'] / ms['rlsuite']:.2f}×). A 1,024-step rollout trains 16 of them (4 epochs of 4 "
        "minibatches) on both sides, so at equal hyperparameters the ratio of these steps, more than the loop "
        "around them, sets PPO's steps/s ratio.", ""]


def minatar_section(out: Path, seeds: list[int], publish=None, only: str | None = None):
    """Each finished cell is published at once (`publish(render)`), with the cells still to run named;
    `only` (e.g. "ppo") trains those cells alone, so a second process can take them (rlsuite.experiments.grid)."""
    root = out / "runs" / "bench-pixels"
    lines = ["## MinAtar: DQN and PPO, rlsuite vs SB3 with the same values, 1M steps", "",
             f"Seeds {seeds}. SB3 runs rlsuite's CNN (nets.CNN) as its features extractor: SB3's NatureCNN needs "
             "36x36 inputs at least. Final = the 20-episode evaluation at 1M steps (raw game scores); the MinAtar "
             "paper's DQN is read from its curves at 5M frames (its DQN trains every step; these cards every 4th). "
             "Steps/s ratios are medians over seeds of wall-clock rates; the CPU ratio uses the training process's "
             "CPU time instead, which other load on this shared machine does not skew (— where a run predates it).", ""]
    intro = len(lines)  # where the progress note goes
    lines += ["| agent | game | rlsuite IQM final [95% CI] | SB3 IQM final [95% CI] | rlsuite ≥ SB3 | steps/s ratio | "
              "CPU steps/s ratio | paper DQN (5M) |",
              "|---|---|---|---|---|---|---|---|"]
    cells = [(agent, env_id) for agent in ("dqn", "ppo") for env_id in MINATAR]

    def train(key):
        agent, env_id = key
        return compare.side_by_side(env_id, seeds, root / agent, compare.ours_and_sb3(agent, env_id), False,
                                    lambda label, seed, s: print(agent, env_id, label, seed,
                                    round(s["final_eval"]["mean"], 1), f"{s['steps_per_s']:.0f} steps/s", flush=True))

    def render(key, res):
        agent, env_id = key
        a, b = aggregate(res["rlsuite"]), aggregate(res["sb3"])
        r = ratio_lines(res["rlsuite"], res["sb3"], "rlsuite", "sb3")
        fmt = lambda g: f"{g['final_iqm']:.1f} [{g['final_ci'][0]:.1f}, {g['final_ci'][1]:.1f}]"  # noqa: E731
        paper = PAPER_DQN.get(env_id, "—") if agent == "dqn" else "—"
        row = (f"| {agent.upper()} | {env_id} | {fmt(a)} | {fmt(b)} | {'yes' if a['final_iqm'] >= b['final_iqm'] else 'no'} | "
               f"{r['steps_per_s']:.2f}× | {cpu_ratio(r)} | {paper} |")
        labels = {s["run_dir"]: f"{name} {agent}" for name, v in res.items() for s in v}
        name = f"pixels_{agent}_{env_id.replace('/', '-')}"
        paths = plot_curves(list(labels), out / "pixels" / name, labels=labels,
                            title=f"{agent} on {env_id}: mean and 95% band over {len(seeds)} seeds").paths
        return [row], [f"![{agent} {env_id}]({paths[0].name})"]

    return fill_grid(cells, cells, train,
                     lambda key: compare.finished(key[1], seeds, root / key[0], compare.ours_and_sb3(*key)),
                     render, lines, intro, lambda key: f"{key[0].upper()} {key[1]}", publish, only)


def pong_section(out: Path) -> list[str]:
    env_id = "ALE/Pong-v5"
    res = compare.side_by_side(env_id, [0], out / "runs" / "bench-pixels" / "pong", compare.ours_and_sb3("ppo", env_id, 1_000_448),
                               False, lambda label, seed, s: print("pong", label, round(s["final_eval"]["mean"], 1), flush=True))
    labels = {s["run_dir"]: f"{name} ppo" for name, v in res.items() for s in v}
    paths = plot_curves(list(labels), out / "pixels" / "pixels_ppo_pong", labels=labels,
                        title="PPO on ALE/Pong-v5: seed 0, rlsuite vs SB3").paths
    rows = [f"| {name} | {v[0]['final_eval']['mean']:.1f} | {v[0]['steps_per_s']:,.0f} |" for name, v in res.items()]
    return ["## PPO on Atari Pong, 1M steps (seed 0)", "", "| implementation | final (10 games) | steps/s |", "|---|---|---|",
            *rows, "", f"![PPO Pong]({paths[0].name})", ""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sections", default="memory,vectorization,speed,minatar,pong")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", default="results")
    parser.add_argument("--cells", default=None,
                        help="minatar: train only these cells (agents, env ids or agent:env_id, comma-separated), "
                             "e.g. `--cells ppo` in a second process while the first runs every cell; cells "
                             "another process finished are reported, those it is training skipped")
    parser.add_argument("--fill-memory", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.fill_memory:
        print(json.dumps(fill_memory(args.fill_memory)))
        return
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report_path = report_folder(out, "pixels") / "README.md"
    head = header("Pixels: DQN and PPO on image observations", "python benchmarks/pixels.py", None)

    def publish(name: str, section) -> None:
        """section: the lines, or (a benchmark grid) the function rendering them, called under the report's lock."""
        def lines() -> list[str]:
            return stamped(section() if callable(section) else section, f"python benchmarks/pixels.py --sections {name}",
                           list(range(args.seeds)) if name == "minatar" else None)
        # sections not run this time keep their previous text (another process may be running them)
        write_section(report_path, head, name, lines, ("memory", "vectorization", "speed", "minatar", "pong"))
        write_summary(out)  # the front page quotes the report as it is now
    if args.cells and args.sections != "minatar":  # a second process must not redo the other sections
        sys.exit("--cells picks cells of the minatar grid: use it with --sections minatar alone")
    for name in args.sections.split(","):
        if name == "memory":
            section = memory_section()
        elif name == "vectorization":
            section = vectorization_section()
        elif name == "speed":
            section = speed_section(out)
        elif name == "minatar":
            try:
                section = minatar_section(out, list(range(args.seeds)), partial(publish, name), args.cells)
            except UserError as e:
                sys.exit(str(e))
        elif name == "pong":
            section = pong_section(out)
        else:
            sys.exit(f"unknown section {name}; choose from memory, vectorization, speed, minatar, pong")
        publish(name, section)
        print(f"wrote {report_path} ({name})", flush=True)


if __name__ == "__main__":
    main()

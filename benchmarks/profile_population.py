"""Regenerate results/populations/profile.md: where a population's time goes, one member against ten.

    python benchmarks/profile_population.py                      # the peers' three tasks at the zoo's values
    python benchmarks/profile_population.py --tasks sac:Pendulum-v1 --members 1,4,10

For each task (the peers benchmark's, at the zoo's hyperparameters) and each population size it times, in this
process on one thread:
  - one gradient update, through the agents' own update code (DQN: the TD loss and the member gradient step, with
    the target network's pass on the next observations; PPO: one minibatch step of its epochs; SAC: α, critics,
    actor and target), on a synthetic minibatch of the card's batch size per member;
  - the update's matrix-multiply FLOPs, forward and backward (torch.utils.flop_counter);
  - a batched matmul of the task's widest layer at that population size, alone: the throughput this machine's
    matmul kernel reaches there.
From these it gives the ratio of N members' update to one member's, and the *matmul floor*: N members' FLOPs at
the throughput of the matmul alone, over one member's whole update. Where the floor exceeds the target ratio, no
removal of overhead reaches it; only fewer FLOPs per member or a faster kernel would. Sizes alternate and each
is timed `--reps` times (the median is reported): the machine is shared.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peers import zoo  # noqa: E402  (the peers benchmark's hyperparameters, shared)

from rlsuite import runs  # noqa: E402
from rlsuite.agents import dqn, pg, sac_td3  # noqa: E402
from rlsuite.experiments.report import header, report_folder  # noqa: E402
from rlsuite.learn.nets import seeded, stack_members  # noqa: E402
from rlsuite.learn.optim import MemberDivergenceGuard, make_adam, member_gradient_step  # noqa: E402
from rlsuite.sb3.hyperparameters import overrides_from_sb3  # noqa: E402

TASKS = ("dqn:CartPole-v1", "ppo:CartPole-v1", "sac:Pendulum-v1")
TARGETS = {"dqn": 2.5, "ppo": 2.5, "sac": 4.0}
SPACES = {"CartPole-v1": (gym.spaces.Box(-1.0, 1.0, (4,)), gym.spaces.Discrete(2)),
          "Pendulum-v1": (gym.spaces.Box(-1.0, 1.0, (3,)), gym.spaces.Box(-2.0, 2.0, (1,)))}


def config(task: str):
    agent, env_id = task.split(":")
    overrides = {k: v for k, v in overrides_from_sb3(agent, zoo(agent, env_id), env_id).items() if k != "total_steps"}
    return runs.prepare(agent, env_id, None, overrides)[1]


def dqn_update(cfg, members: int, obs_space, action_space):
    """One DQN update as the agent's loop does it: the target net's values, the TD loss, the member step."""
    q = stack_members([seeded(s, dqn.build_q_network, cfg, obs_space, int(action_space.n)) for s in range(members)])
    target = copy.deepcopy(q)
    optimizer = make_adam(q.parameters(), 1e-4, cfg.adam_eps)
    b, d = cfg.batch_size, obs_space.shape[0]
    batch = {"obs": torch.randn(members, b, d), "next_obs": torch.randn(members, b, d),
             "actions": torch.randint(0, int(action_space.n), (members, b)).float(), "rewards": torch.randn(members, b),
             "discounts": torch.full((members, b), cfg.gamma)}
    guard, alive = MemberDivergenceGuard(members), torch.ones(members)

    def update():
        with torch.no_grad():
            target_next = target(batch["next_obs"])
        loss, _, q_sa = dqn.td_loss(q, batch, target_next, cfg)
        member_gradient_step(optimizer, loss, alive, cfg.max_grad_norm, guard)
        loss.detach().cpu(), q_sa.mean(-1).cpu()  # what the loop reads back for its logs
    return update


def ppo_update(cfg, members: int, obs_space, action_space):
    """One PPO minibatch step: ppo_update over a rollout of one minibatch and one epoch."""
    cfg = copy.copy(cfg)
    cfg.n_epochs = 1
    model = stack_members([seeded(s, pg.build_actor_critic, cfg, obs_space, action_space) for s in range(members)])
    optimizer = make_adam(model.parameters(), 1e-4, cfg.optimizer_eps)
    b, d = cfg.batch_size, obs_space.shape[0]
    batch = {"obs": torch.randn(members, b, d), "actions": torch.randint(0, int(action_space.n), (members, b)),
             "logprobs": torch.full((members, b), -0.69), "advantages": torch.randn(members, b),
             "returns": torch.randn(members, b), "values": torch.randn(members, b)}
    rngs = [np.random.default_rng(s) for s in range(members)]
    guard, alive = MemberDivergenceGuard(members), torch.ones(members)
    return lambda: pg.ppo_update(model, optimizer, batch, cfg, 0.5, rngs, guard, alive)


def sac_update(cfg, members: int, obs_space, action_space):
    """One SAC update: sac_update (α, twin critics, actor, Polyak targets) on one minibatch per member."""
    d, a = obs_space.shape[0], action_space.shape[0]
    nets, opts = sac_td3.build_learner(cfg, d, a, "cpu", list(range(members)))
    b = cfg.batch_size
    batch = {"obs": torch.randn(members, b, d), "next_obs": torch.randn(members, b, d),
             "actions": torch.rand(members, b, a) * 2 - 1, "rewards": torch.randn(members, b),
             "discounts": torch.full((members, b), cfg.gamma)}
    generator = torch.Generator().manual_seed(0)
    guard, alive = MemberDivergenceGuard(members), torch.ones(members)

    def update():
        nets["updates"] += 1
        sac_td3.sac_update(cfg, nets, opts, batch, guard, alive,
                           lambda *shape: torch.randn((members, b, *shape), generator=generator))
    return update


BUILDERS = {"dqn": dqn_update, "ppo": ppo_update, "sac": sac_update}


def timed(fn, seconds: float = 2.0) -> float:
    """CPU seconds per call, over at least `seconds` of calls after a warm-up."""
    for _ in range(3):
        fn()
    n, start = 0, time.process_time()
    while time.process_time() - start < seconds or n < 5:
        fn()
        n += 1
    return (time.process_time() - start) / n


def matmul_flops(fn) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return float(counter.get_total_flops())


def kernel_gflops(members: int, batch: int, width: int) -> float:
    """GFLOP/s of (members, batch, width) @ (members, width, width), alone."""
    a, b = torch.randn(members, batch, width), torch.randn(members, width, width)
    return 2 * members * batch * width * width / timed(lambda: torch.bmm(a, b), 1.0) / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument("--members", default="1,10", help="population sizes; the first is the reference")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--out", default="results")
    args = parser.parse_args()
    torch.set_num_threads(1)
    tasks = args.tasks.split(",")
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        sys.exit(f"unknown task(s) {unknown}; known: {', '.join(TASKS)}")
    try:
        sizes = [int(m) for m in args.members.split(",")]
    except ValueError:
        parser.error(f"--members takes population sizes such as 1,10, got {args.members!r}")
    if any(m < 1 for m in sizes) or args.reps < 1:
        parser.error("--members sizes and --reps must be at least 1")
    started = time.time()
    lines = header("Populations: where an update's time goes", f"python {' '.join(['benchmarks/profile_population.py'] + sys.argv[1:])}",
                   None)[:5] + [""]
    lines[4] = lines[4].split("  \n")[0]  # the versions; no seeds: nothing here is learned
    lines += ["One gradient update through the agents' own code, at the zoo's hyperparameters (the peers benchmark's), on "
              "a synthetic minibatch per member; CPU seconds, one thread, the sizes alternated, the median of "
              f"{args.reps} timings. *GFLOP*: the update's matrix-multiply FLOPs, forward and backward "
              "(torch.utils.flop_counter). *GFLOP/s*: those FLOPs over the update's time. *kernel alone*: one batched "
              "matmul of the widest layer at that size (SAC: both critics), timed on its own. *matmul floor*: the "
              "update's FLOPs at the kernel's own throughput, over one member's whole update: what N members would "
              "cost with every other cost removed from them and none from the single member.", "",
              "| task | members | update ms | per member | ratio to 1 (target) | GFLOP | GFLOP/s | kernel alone GFLOP/s "
              "| matmul floor |", "|---|---|---|---|---|---|---|---|---|"]
    for task in tasks:
        agent, env_id = task.split(":")
        cfg = config(task)
        obs_space, action_space = SPACES[env_id]
        updates = {m: BUILDERS[agent](cfg, m, obs_space, action_space) for m in sizes}
        times: dict[int, list[float]] = {m: [] for m in sizes}
        for _ in range(args.reps):
            for m in sizes:
                print(f"{task} x{m}", flush=True)
                times[m].append(timed(updates[m]))
        reference = statistics.median(times[sizes[0]])
        for m in sizes:
            fn = updates[m]
            seconds = statistics.median(times[m])
            flops = matmul_flops(fn)
            nets = m * (2 if agent == "sac" else 1)  # SAC's twin critics: two networks per member, one matmul
            alone = kernel_gflops(nets, cfg.batch_size, max(cfg.hidden))
            target = TARGETS[agent] if m == 10 else None
            ratio = f"{seconds / reference:.2f}×" + (f" (≤ {target:g}×)" if target else "")
            floor = flops / (alone * 1e9) / reference
            lines.append(f"| {task} | {m} | {seconds * 1e3:.2f} | {seconds * 1e3 / m:.2f} | {ratio} | {flops / 1e9:.3f} | "
                         f"{flops / seconds / 1e9:.1f} | {alone:.1f} | {floor:.2f}× |")
    lines += ["", f"This invocation took {(time.time() - started) / 60:.1f} min."]
    folder = report_folder(Path(args.out), "populations")
    (folder / "profile.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {folder / 'profile.md'}")


if __name__ == "__main__":
    main()

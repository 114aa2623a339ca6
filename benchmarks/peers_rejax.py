"""The rejax side of benchmarks/peers.py, run by it as a child process under the interpreter given by --rejax-python.

rejax depends on gymnax, which requires gymnasium<1.4 while rlsuite requires >=1.4, so rejax lives in a
virtual environment of its own and this file imports neither rlsuite nor anything of the benchmark:

    python -m venv ~/.venvs/rejax && ~/.venvs/rejax/bin/pip install rejax 'gymnax<1.0'   # rejax 0.1.3 unpacks gymnax 0.0.x's step

It trains ALGO on ENV for STEPS steps with the rejax config given as JSON, on one seed or on several vmapped in one
jitted call, evaluates each final policy on gymnasium's own env (FINAL_EPISODES episodes, rejax's own act:
DQN ε = 0.005, PPO and SAC sampled, as rejax evaluates), and prints one JSON line:
{"compile_cpu_s", "train_cpu_s", "train_wall_s", "finals"}. Compilation is timed apart from training.
"""

import argparse
import importlib.metadata as metadata
import json
import time

import gymnasium as gym
import jax
import numpy as np
import rejax


def timed(fn):
    cpu, wall = time.process_time(), time.perf_counter()
    out = jax.block_until_ready(fn())
    return out, time.process_time() - cpu, time.perf_counter() - wall


def gymnasium_returns(algo, ts, env_id: str, episodes: int, seed: int) -> list[float]:
    act = jax.jit(algo.make_act(ts))
    env = gym.make(env_id)
    rng = jax.random.PRNGKey(seed)
    returns = []
    for i in range(episodes):
        obs, _ = env.reset(seed=seed + i)
        total, done = 0.0, False
        while not done:
            rng, key = jax.random.split(rng)
            action = np.asarray(act(np.asarray(obs, np.float32), key))
            if isinstance(env.action_space, gym.spaces.Box):  # rejax squeezes a 1-d action to a scalar
                action = action.reshape(env.action_space.shape)
            obs, reward, terminated, truncated, _ = env.step(action)
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    env.close()
    return returns


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("algo")
    parser.add_argument("env")
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--seeds", required=True, help="comma-separated; several are vmapped in one call")
    parser.add_argument("--config", default="{}", help="rejax config fields as JSON")
    parser.add_argument("--final-episodes", type=int, default=20)
    parser.add_argument("--eval-seed", type=int, default=10_000)
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    config = {"env": args.env, "total_timesteps": args.steps, "eval_freq": args.steps,
              "skip_initial_evaluation": True, **json.loads(args.config)}
    algo = rejax.get_algo(args.algo).create(**config)
    keys = jax.numpy.stack([jax.random.PRNGKey(s) for s in seeds])
    train = jax.jit(jax.vmap(algo.train)) if len(seeds) > 1 else jax.jit(algo.train)
    arg = keys if len(seeds) > 1 else keys[0]
    compiled, compile_cpu, _ = timed(lambda: train.lower(arg).compile())
    (ts, _), train_cpu, train_wall = timed(lambda: compiled(arg))
    finals = []
    for i in range(len(seeds)):
        member = jax.tree.map(lambda x, i=i: x[i], ts) if len(seeds) > 1 else ts
        finals.append(float(np.mean(gymnasium_returns(algo, member, args.env, args.final_episodes, args.eval_seed))))
    versions = {f"{name} (rejax venv)": metadata.version(name) for name in ("rejax", "gymnax", "jax")}
    print(json.dumps({"compile_cpu_s": compile_cpu, "train_cpu_s": train_cpu, "train_wall_s": train_wall,
                      "finals": finals, "versions": versions}))


if __name__ == "__main__":
    main()

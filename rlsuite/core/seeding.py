"""A run's seeds: every random stream of a run derives from the run's seed through numpy's SeedSequence, so two
runs share no training-env seed, no evaluation start state and no random stream (docs/protocol.md, Seeding).

The run's seed s is the root, SeedSequence(s); each use is a child with its own spawn key:

    training sub-env i (at restart r: 0 on a new run, the checkpoint's step on a resume)   (TRAIN_ENVS, r, i)
    evaluation episode i                                                                     (EVAL_ENVS, i)
    the initial weights                                                                      (WEIGHTS,)
    the agent's numpy and torch streams (exploration, minibatches, replay, action noise)     (AGENT,)
    Python's, numpy's and torch's global generators                                          (GLOBAL,)
    the sampled actions of a stochastic evaluation (eval_deterministic: false)               (EVAL_ACTIONS,)

Env seeds are 32-bit words drawn from those children; two runs collide only by chance (about one pair in
10^7 for ten runs of twenty evaluation episodes), not because s and s + 1 overlap.

Version 1, which runs recorded before this scheme used (config.yaml without `seeding`), seeded sub-env i with
s + i, evaluation episode i with s + 10000 + i and every generator with s: runs s and s + 1 shared 19 of their
20 evaluation start states. Such runs keep it when they resume or are evaluated again.
"""

from __future__ import annotations

import numpy as np

SEEDING = 2  # the scheme new runs use; config.yaml records it
TRAIN_ENVS, EVAL_ENVS, WEIGHTS, AGENT, GLOBAL, EVAL_ACTIONS = range(6)
LEGACY_EVAL_OFFSET = 10_000  # version 1's evaluation envs: seed + 10000 + i


def episode_seeds(seed: int | list[int], n: int) -> list[int]:
    """A start seed given by the user (`eval --seed S`: S, S + 1, ...) or one seed per episode, as a list."""
    return [seed + i for i in range(n)] if isinstance(seed, int) else [int(s) for s in seed][:n]


class Seeds:
    """The seeds of the run seeded `seed`, by the scheme `version` (SEEDING for a new run)."""

    def __init__(self, seed: int, version: int = SEEDING):
        if version not in (1, 2):
            raise ValueError(f"unknown seeding version {version!r}")
        self.seed, self.version = int(seed), version

    def _words(self, n: int, *key: int) -> list[int]:
        return [int(np.random.SeedSequence(self.seed, spawn_key=(*key, i)).generate_state(1)[0]) for i in range(n)]

    def train_envs(self, n: int, restart: int = 0) -> list[int]:
        """The seeds of n training sub-envs at their first reset (restart 0) or after a resume at step `restart`."""
        if self.version == 1:
            return [self.seed + restart + i for i in range(n)]
        return self._words(n, TRAIN_ENVS, restart)

    def eval_envs(self, n: int) -> list[int]:
        """The seeds of n evaluation episodes (the same at every evaluation of the run)."""
        if self.version == 1:
            return [self.seed + LEGACY_EVAL_OFFSET + i for i in range(n)]
        return self._words(n, EVAL_ENVS)

    def _child(self, stream: int) -> np.random.SeedSequence:
        return np.random.SeedSequence(self.seed, spawn_key=(stream,))

    def torch_seed(self, stream: int) -> int:
        """A seed for torch.manual_seed / torch.Generator (64 bits)."""
        if self.version == 1:
            return self.seed
        return int(self._child(stream).generate_state(1, np.uint64)[0])

    def numpy(self, stream: int) -> np.random.Generator:
        if self.version == 1:
            return np.random.default_rng(self.seed)
        return np.random.default_rng(self._child(stream))

    def python_seed(self) -> int:
        """A seed for Python's `random` and numpy's legacy global generator (32 bits)."""
        if self.version == 1:
            return self.seed % 2**32
        return int(self._child(GLOBAL).generate_state(1)[0])


def eval_sample_seed(config, run) -> int | None:
    """None where the run evaluates its deterministic policy (the protocol); else the seed of the sampled actions
    of its stochastic evaluation (eval_deterministic: false), the same at every evaluation of the run."""
    if getattr(config, "eval_deterministic", True):
        return None
    return run.seeds.torch_seed(EVAL_ACTIONS)

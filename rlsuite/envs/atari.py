"""The Atari wrappers gymnasium lacks (Mnih et al. 2015; as SB3's AtariWrapper and CleanRL use them).

Env cards reference them as `rlsuite.envs.atari:EpisodicLife` and `rlsuite.envs.atari:FireReset`, after
gymnasium's AtariPreprocessing (no-op starts, frame skip with max-pooling, 84x84 grayscale).
"""

from __future__ import annotations

import gymnasium as gym


def _lives(env: gym.Env) -> int:
    return int(env.unwrapped.ale.lives())


class EpisodicLife(gym.Wrapper):
    """Training only: a lost life ends the episode for the learner (a termination: no value after
    death), but the game goes on; the emulator is reset only when the game is really over. Evaluation
    never uses it: it reports whole-game scores (docs/protocol.md)."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self.lives = 0
        self.game_over = True

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.game_over = terminated or truncated
        lives = _lives(self.env)
        if 0 < lives < self.lives:
            terminated = True
        self.lives = lives
        return obs, reward, terminated, truncated, info

    def reset(self, **kwargs):
        if self.game_over:
            obs, info = self.env.reset(**kwargs)
        else:  # the game continues from the lost life: one no-op step to get the current frame
            obs, _, terminated, truncated, info = self.env.step(0)
            if terminated or truncated:
                obs, info = self.env.reset(**kwargs)
        self.lives = _lives(self.env)
        return obs, info


class FireReset(gym.Wrapper):
    """Press FIRE after a reset (and after a lost life) in games that wait for it (Breakout, ...), so a
    greedy policy cannot stall a game it was never taught to start: with episodic life the learner
    only ever sees lives that FIRE already started."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        meanings = env.unwrapped.get_action_meanings()
        # Games without FIRE (Pong's minimal set has it, Freeway's not) pass through unchanged, as the
        # zoo's AtariWrapper does, so one default card serves every ALE id.
        self.active = len(meanings) >= 3 and meanings[1] == "FIRE"
        self.lives = 0

    def _fire(self, **kwargs):
        obs, info = None, {}
        for action in (1, 2):  # FIRE, then a move (some games need both to start)
            obs, _, terminated, truncated, info = self.env.step(action)
            if terminated or truncated:
                obs, info = self.env.reset(**kwargs)
        return obs, info

    def reset(self, **kwargs):
        if not self.active:
            return self.env.reset(**kwargs)
        self.env.reset(**kwargs)
        obs, info = self._fire(**kwargs)
        self.lives = _lives(self.env)
        return obs, info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        if not self.active:
            return obs, reward, terminated, truncated, info
        lives = _lives(self.env)
        if 0 < lives < self.lives and not (terminated or truncated):
            # A life lost inside a game that goes on: start the next ball as a reset would.
            obs, fire_reward, terminated, truncated, info = self.env.step(1)
            reward += fire_reward
        self.lives = lives
        return obs, reward, terminated, truncated, info

"""Environments: making single and vector envs from an env card, Atari wrappers, EnvPool, videos."""

"""Stable-Baselines3 as the baseline: the card's zoo values, their mapping to rlsuite's fields, SB3 runs under rlsuite's engine and protocol."""

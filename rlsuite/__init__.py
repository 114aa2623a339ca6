"""rlsuite: readable from-scratch RL agents on shared PyTorch networks."""

__version__ = "0.1.0"

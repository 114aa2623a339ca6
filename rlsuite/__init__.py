"""rlsuite: readable from-scratch RL agents on shared PyTorch networks, measured against Stable-Baselines3.

The Python API lives in rlsuite.api and is re-exported here: rlsuite.train, rlsuite.resume, rlsuite.load,
rlsuite.evaluate, rlsuite.trust_imports. It is loaded on first use, so that importing a light part of the package (reading run
directories, plotting) does not import torch.
"""

__version__ = "0.1.0"

__all__ = ["train", "resume", "load", "evaluate", "trust_imports", "__version__"]


def __getattr__(name: str):
    if name in ("train", "resume", "load", "evaluate", "trust_imports"):
        import importlib  # the API module is imported lazily (see above), not to dodge a cycle

        return getattr(importlib.import_module("rlsuite.api"), name)
    raise AttributeError(f"module 'rlsuite' has no attribute {name!r}")

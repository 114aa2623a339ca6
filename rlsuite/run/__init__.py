"""One run: the engine's services (seeding, logging, evaluation, checkpoints, signals), the run directory format, the checkpoint codec, the evaluation protocol."""

"""Hyperparameter search with Optuna over ordinary rlsuite runs: search spaces and objective, the study, trials, workers, reports."""

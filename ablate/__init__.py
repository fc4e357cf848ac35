"""ablate: DINO hyperparameter ablations on Ray Tune (specs, orchestration, CLI)."""

__version__ = "0.1.0"

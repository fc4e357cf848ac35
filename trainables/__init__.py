"""DINO training, data and kNN evaluation. Knows nothing of sweeps or reports."""

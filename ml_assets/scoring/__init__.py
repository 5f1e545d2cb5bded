"""Batch scoring after registration: the `predictions` asset, its job and the sensor that turns
files dropped under `scoring_glob` into scoring batches."""

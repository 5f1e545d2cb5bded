"""ml_assets: an automated machine-learning training pipeline as a Dagster code location."""

__version__ = "0.1.0"

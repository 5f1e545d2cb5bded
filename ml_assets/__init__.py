"""ml_assets: an automated machine-learning training pipeline as a Dagster code location."""

from ml_assets.library_settings import apply_library_defaults

__version__ = "0.1.0"

# Before any of our modules can import Great Expectations or MLflow (see library_settings.py).
apply_library_defaults()

"""Variants of the code location for production deployments (deploy/README.md)."""

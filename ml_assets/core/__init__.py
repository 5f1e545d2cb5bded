"""The functional core: plain Python with no Dagster import, each piece testable with a DataFrame."""

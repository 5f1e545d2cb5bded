"""Side-by-side timings of ml_assets against a bare script doing the same work (`make bench`)."""

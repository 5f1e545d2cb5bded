"""Late labels and the champion's live performance: the `live_performance` asset and its job,
the labels sensor that measures when labels arrive, the decay sensor that retrains on them."""

"""The model: config, op catalog, per-layer ops and the program built from them."""

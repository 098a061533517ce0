"""Training and export of the bundled models (needs the `train` extra)."""

"""TorchServe: a handler for modelplane's TorchScript models, and MAR packaging."""

"""Benchmarks of jaxgan against a PyTorch eager reference (``python -m benchmarks.train_step``)."""

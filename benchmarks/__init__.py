"""Benchmarks: engine versus direct PyTorch (`make bench`). Not tests: timings are noisy."""

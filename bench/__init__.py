"""Benchmarks of the engine against a baseline measured in the same run (``python -m bench``)."""

"""The bad-input suite behind `python benchmarks/bad_inputs.py`: fixtures, cases and the runner."""

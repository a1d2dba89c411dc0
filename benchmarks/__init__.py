"""The measurement scripts behind the numbers in docs/ (run from the repository root as
``python -m benchmarks.NAME``) and the modules they share: :mod:`benchmarks.official` (the official
GRU4Rec, loaded from its checkout) and :mod:`benchmarks.raw_sequence_loop` (a raw PyTorch loop)."""

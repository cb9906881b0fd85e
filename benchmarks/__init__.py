"""Benchmarks: every cs224n-nn piece measured against its native PyTorch twin.

Run ``cs224n-nn bench`` (a quick pass, printed) or
``python -m benchmarks.run --full`` (every size; writes ``BENCHMARKS.md``).
The method lives in :mod:`benchmarks._timing`: ours and native alternate in
one process, at least seven runs each, and the figure reported is the median
of the per-run ratios ours / native.
"""

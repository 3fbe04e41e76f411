"""Benchmarks for spendstream: ``python -m bench`` (see BENCHMARKS.md).

Every stage is measured against its raw limit in the same run, as the median of several runs.
Timing is reported, never asserted.
"""

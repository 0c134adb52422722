"""Metrics and evaluation protocols (genomic benchmarks, long-horizon forecasting, GluonTS)."""

"""Domain adapters: DNA (I/O, tokenizers, reverse complement), time series, GluonTS bridge."""

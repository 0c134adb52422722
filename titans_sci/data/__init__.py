"""Domain adapters: DNA (biopython I/O, tokenizer, reverse complement, padding), time series
(pandas I/O, splits, scaling, windows) and the registry of bundled data sets."""

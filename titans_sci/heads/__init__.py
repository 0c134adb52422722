"""Task heads: sequence classification and point/probabilistic forecasting."""

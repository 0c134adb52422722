"""Neural-memory layer, attention (sliding window, persistent tokens) and blocks."""

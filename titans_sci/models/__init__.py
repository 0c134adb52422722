"""Backbones (Titans LMM, MAC, MAG, MAL), their config dataclasses and streaming state."""

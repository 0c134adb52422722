"""Titans backbones (LMM, MAC, MAG, MAL) over embeddings ``[B, T, D]``, with streaming state."""

from .backbones import BackboneState, TitansBackbone, TitansLMM, TitansMAC, TitansMAG, TitansMAL
from .config import Backbone, BackboneConfig, LMMConfig, MACConfig, MAGConfig, MALConfig

MODELS = {"lmm": TitansLMM, "mac": TitansMAC, "mag": TitansMAG, "mal": TitansMAL}


def build_backbone(config: BackboneConfig) -> TitansBackbone:
    """The backbone class that takes ``config``."""
    for model in MODELS.values():
        if type(config) is model.config_class:
            return model(config)
    raise ValueError(f"no backbone takes a {type(config).__name__}")


__all__ = [
    "MODELS",
    "Backbone",
    "BackboneConfig",
    "BackboneState",
    "LMMConfig",
    "MACConfig",
    "MAGConfig",
    "MALConfig",
    "TitansBackbone",
    "TitansLMM",
    "TitansMAC",
    "TitansMAG",
    "TitansMAL",
    "build_backbone",
]

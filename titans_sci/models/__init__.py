"""Titans backbones (LMM, MAC, MAG, MAL) over embeddings ``[B, T, D]``, with streaming state."""

from titans_sci.memory import MemoryConfig

from .backbones import BackboneState, TitansBackbone, TitansLMM, TitansMAC, TitansMAG, TitansMAL
from .config import BackboneConfig, LMMConfig, MACConfig, MAGConfig, MALConfig

MODELS = {"lmm": TitansLMM, "mac": TitansMAC, "mag": TitansMAG, "mal": TitansMAL}


def build_backbone(config: BackboneConfig) -> TitansBackbone:
    """The backbone class that takes ``config``."""
    for model in MODELS.values():
        if type(config) is model.config_class:
            return model(config)
    raise ValueError(f"no backbone takes a {type(config).__name__}")


def backbone_config(variant: str, memory: dict, **fields) -> BackboneConfig:
    """The config of backbone ``variant`` (lmm, mac, mag or mal) from a task file's model
    fields and its ``memory`` table: ``{"preset": name, **overrides}`` (preset titans when
    absent)."""
    overrides = dict(memory)
    preset = overrides.pop("preset", "titans")
    return MODELS[variant].config_class(memory=MemoryConfig.preset(preset, **overrides), **fields)


def backbone_to_dict(config: BackboneConfig) -> dict:
    """``config`` as a plain dict with its ``variant`` (lmm, mac, mag or mal), for JSON."""
    for name, model in MODELS.items():
        if type(config) is model.config_class:
            return {"variant": name, **config.to_dict()}
    raise ValueError(f"no backbone takes a {type(config).__name__}")


def backbone_from_dict(data: dict) -> BackboneConfig:
    """The inverse of :func:`backbone_to_dict` (a missing ``variant`` means lmm)."""
    data = dict(data)
    variant = data.pop("variant", "lmm")
    if variant not in MODELS:
        raise ValueError(f"backbone variant={variant!r}; expected one of {sorted(MODELS)}")
    return MODELS[variant].config_class.from_dict(data)


__all__ = [
    "MODELS",
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
    "backbone_config",
    "backbone_from_dict",
    "backbone_to_dict",
    "build_backbone",
]

"""Layers of the Titans backbone: the neural-memory layer, sliding-window attention with
persistent tokens, and small blocks (causal depthwise convolution, a convolutional stem,
SwiGLU, gated RMSNorm)."""

from .attention import AttentionState, SlidingWindowAttention
from .basic import CausalDepthwiseConv, ConvStem, GatedRMSNorm, SwiGLU
from .memory_layer import MemoryLayerState, NeuralMemoryLayer, memory_writes

__all__ = [
    "AttentionState",
    "CausalDepthwiseConv",
    "ConvStem",
    "GatedRMSNorm",
    "MemoryLayerState",
    "NeuralMemoryLayer",
    "memory_writes",
    "SlidingWindowAttention",
    "SwiGLU",
]

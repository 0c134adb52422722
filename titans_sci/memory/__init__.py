"""MIRAS memory core: a memory = architecture + attentional bias + retention + algorithm.

Public pieces: :class:`MemoryConfig` (with presets ``titans``, ``moneta``, ``yaad``, ``memora``),
:class:`NeuralMemory` (the module), :class:`MemoryState`, and the two implementations of the same
function, :func:`recurrent` (token by token, the ground truth) and :func:`chunked` (chunk-parallel
dual form), which take the internal ``[B, H, T, ...]`` layout. Training runs the dual form through
:mod:`~titans_sci.memory.lean` (an explicit backward that keeps little) where it covers the memory,
and recomputed per group of chunks where it does not
(:func:`~titans_sci.memory.chunk.checkpointed`).
"""

from .chunk import chunked
from .config import PRESETS, MemoryConfig
from .module import NeuralMemory, recording_gates, recording_surprise
from .naive import recurrent
from .rule import Gates, MemoryRule, NonFiniteSurpriseError
from .state import MemoryState

__all__ = [
    "PRESETS",
    "Gates",
    "MemoryConfig",
    "MemoryRule",
    "MemoryState",
    "NeuralMemory",
    "NonFiniteSurpriseError",
    "chunked",
    "recording_gates",
    "recording_surprise",
    "recurrent",
]

"""Triton kernels for the chunked memory update and read, with explicit backward.

:func:`triton_chunked` computes what :func:`titans_sci.memory.chunked` computes, for the memories
that :func:`supports` accepts: the l2 bias with Titans decay (momentum or plain GD), with the
linear memory or the MLP memory of depth 2. ``NeuralMemory`` uses it on CUDA tensors by default
(see ``MemoryConfig.backend``); on the CPU the tests run it through Triton's interpreter
(``TRITON_INTERPRET=1``).
"""

from .chunk import supports, triton_chunked

__all__ = ["supports", "triton_chunked"]

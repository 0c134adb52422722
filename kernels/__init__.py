"""Triton kernels for the chunked memory update and read, with explicit backward.

:func:`triton_chunked` computes what :func:`titans_sci.memory.chunked` computes, for the memories
that :func:`supports` accepts: the l2 bias with Titans decay (momentum or plain GD), with the
linear memory or the MLP memory of depth 2. ``NeuralMemory`` uses it on CUDA tensors by default
(see ``MemoryConfig.backend``); on the CPU the tests run it through Triton's interpreter
(``TRITON_INTERPRET=1``).

This folder sits at the top of the repository and is the package ``titans_sci.kernels``:
``pyproject.toml`` maps it there (``[tool.setuptools.package-dir]``), in the wheel and in the
editable install. Import it as ``titans_sci.kernels``, never as ``kernels``. The gate matrices
come from :mod:`titans_sci.memory.gates`, which imports nothing from the memory's other modules;
:mod:`titans_sci.memory` imports this package only inside its backend dispatch, so there is no
import circle.
"""

from .chunk import supports, triton_chunked

__all__ = ["supports", "triton_chunked"]

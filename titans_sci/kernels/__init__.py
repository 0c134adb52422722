"""Triton kernels for the chunked memory update and read, with device dispatch."""

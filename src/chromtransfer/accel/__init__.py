"""Accelerated CPU implementations of the network: :mod:`.kernels` (the channels-last training and
inference kernels :mod:`chromtransfer.models` calls) and :mod:`.fast` (a fused inference-only
model with chunked multi-threaded evaluation). Both compute what the plain modules compute, to
float32 rounding.
"""

"""Which precision fits the machine: ``auto`` resolves to bf16 where the hardware does bf16 natively.

A CPU without native bf16 (AVX2 only) emulates bf16 matmuls and runs bf16 autocast about 10× slower than
fp32, while one with AVX512-BF16 / AMX runs it faster; CUDA GPUs from Ampere on do bf16 in hardware.
"""

from __future__ import annotations

import functools

import torch

CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
# THE precision list: training takes all four (fp16 with a grad scaler); sampling the first three.
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
SAMPLING_PRECISIONS = PRECISIONS[:3]


@functools.lru_cache(maxsize=None)
def cpu_flags(path: str = "/proc/cpuinfo") -> frozenset[str]:
    """The feature flags of the first CPU in ``/proc/cpuinfo`` (empty where there is no such file)."""
    try:
        with open(path) as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def native_bf16(device: torch.device | str) -> bool:
    """True where bf16 matmuls run in hardware on ``device``."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)
    if device.type == "cpu":
        return any(flag in cpu_flags() for flag in CPU_BF16_FLAGS)
    return False


def resolve_precision(precision: str, device: torch.device | str) -> str:
    """``auto`` → ``bf16`` where :func:`native_bf16`, else ``fp32``; any other value is returned as is."""
    if precision != "auto":
        return precision
    return "bf16" if native_bf16(device) else "fp32"


def in_precision(network, precision: str, device: torch.device | str):
    """``network`` as a sampler calls it: itself in fp32, or under bf16 autocast with its outputs (a tensor or a
    tuple of them) back in fp32, so guidance and the sampler's update arithmetic stay fp32 either way. The
    network's attributes (e.g. ``config``) stay reachable through the wrapper."""
    if resolve_precision(precision, device) == "fp32":
        return network
    return _Autocast(network, torch.device(device).type)


class _Autocast:
    def __init__(self, network, device_type: str):
        self.network, self.device_type = network, device_type

    def __getattr__(self, name):
        return getattr(self.network, name)

    def __call__(self, *args, **kwargs):
        with torch.autocast(self.device_type, dtype=torch.bfloat16):
            out = self.network(*args, **kwargs)
        return out.float() if isinstance(out, torch.Tensor) else type(out)(o.float() for o in out)

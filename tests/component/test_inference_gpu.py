"""The torch engines on a CUDA GPU: the model on the GPU, its memory in /v1/status, speech that
decodes, and the memory given back when the server stops.

These run only where torch sees a GPU (the machine lent through the device tool, or a GPU node):
the same tiny checkpoints as the CPU tests, so no weights need downloading. Everything else about
these engines is checked on the CPU in test_inference_engines.py.
"""

from __future__ import annotations

import pytest

from tests.helpers import decode_wav
from tests.tiny_models import build_kokoro, build_pocket

from .test_inference_engines import serve, speak

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (torch sees none here)")

# what the CUDA context and allocator keep after empty_cache() is not the model's
SLACK_BYTES = 64 * 2**20


@pytest.mark.parametrize(("engine", "build"), [("kokoro", build_kokoro), ("pocket-tts", build_pocket)])
def test_torch_engine_runs_on_the_gpu_and_gives_its_memory_back(engine, build, tmp_path):
    root = build(tmp_path)
    torch.cuda.empty_cache()
    allocated_before = torch.cuda.memory_allocated()
    client = serve(engine=engine, model_uri=f"file://{root}", device="cuda")
    try:
        status = client.get("/v1/status").json()
        assert status["device"].startswith("cuda"), status
        memory = status["gpu_memory"]
        assert memory["total_bytes"] > memory["used_bytes"] > 0, memory
        assert memory["allocated_bytes"] > allocated_before, "the model's weights are on the GPU"
        body = {"voice": "af_tiny"} if engine == "kokoro" else {}
        audio = decode_wav(speak(client, **body).content)
        assert audio.sample_rate == 24000 and audio.duration > 0.2 and audio.rms > 0
    finally:
        client.__exit__(None, None, None)
    assert torch.cuda.memory_allocated() <= allocated_before + SLACK_BYTES, "GPU memory kept after shutdown"

"""A small real speech server with the seeds' own API (``POST /api/tts``), wrapping espeak-ng.

GLM-TTS, Kyutai TTS and MegaTTS3 serve ``POST /api/tts`` with a JSON body naming the text (and a
voice), answering WAV, or JSON with the WAV in base64. This one does the same with espeak-ng, so
that the bridge's ``api: tts-api`` adapter is tested against a real HTTP server
(tests/component/test_bridge.py). ``mode`` makes it misbehave as broken servers do.
"""

from __future__ import annotations

import base64
import json

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from tts_inference.engines import SynthesisOptions
from tts_inference.engines.espeak import EspeakEngine

from tests.helpers import wav_bytes


def seed_app(mode: dict[str, str]) -> FastAPI:
    """``mode["speech"]``: ``wav`` (default), ``base64`` (JSON), ``error`` (500), ``text`` (a 200 that
    is not audio); ``mode["ready"]``: ``yes`` (default) or ``no`` (never ready)."""
    engine = EspeakEngine("package://espeakng-loader", "")
    engine.load()
    app = FastAPI()

    @app.get("/api/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/api/ready")
    async def ready() -> JSONResponse:
        ok = mode.get("ready", "yes") == "yes"
        return JSONResponse({"ready": ok}, 200 if ok else 503)

    @app.get("/api/speakers")
    async def speakers() -> dict[str, list[str]]:
        return {"voices": ["en-us", "en-gb"]}

    @app.post("/api/tts")
    async def tts(request: Request) -> Response:
        body = await _fields(request, mode)
        kind = mode.get("speech", "wav")
        if kind == "error":
            return JSONResponse({"detail": "CUDA out of memory"}, 500)
        if kind == "text":
            return Response("synthesis queued", media_type="text/plain")
        chunks = engine.synthesize(
            [body["text"]], body.get("voice") or "en-us", SynthesisOptions(speed=body.get("speed", 1.0))
        )
        wav = wav_bytes(np.concatenate(list(chunks)), engine.sample_rate)
        if kind == "base64":
            return JSONResponse({"audio": base64.b64encode(wav).decode(), "sample_rate": engine.sample_rate})
        return Response(wav, media_type="audio/wav")

    return app


async def _fields(request: Request, mode: dict[str, str]) -> dict[str, str]:
    """The request's fields, JSON or multipart (GLM-TTS takes ``text`` and a ``prompt_audio`` file);
    what arrived is kept in ``mode["last"]`` for the test to read."""
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        form = await request.form()
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        upload = form.get("prompt_audio")
        if upload is not None and not isinstance(upload, str):
            fields["prompt_audio_bytes"] = str(len(await upload.read()))
    else:
        fields = {k: str(v) for k, v in (await request.json()).items()}
    mode["last"] = json.dumps(fields)
    return fields

"""The MCP server in-process with the real MCP client, against a small fake router (FastAPI).

These check the MCP wiring — schemas, annotations, content blocks, progress, errors, output modes,
the HTTP transport's bearer gate and host allowlist — without a cluster. The same tools against
the real router on the local cluster: tests/integration/test_mcp.py.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any

import anyio
import httpx
import httpx2
import pytest
from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.responses import JSONResponse, StreamingResponse
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from tts_mcp.http import create_http_app
from tts_mcp.server import create_server
from tts_mcp.settings import McpSettings

from tests.helpers import MCP_TOOLS, LiveServer

USER, ADMIN = "sk-user", "sk-admin"
AUDIO = b"RIFF" + bytes(40)


def fake_router(seen: list[dict[str, Any]]) -> FastAPI:
    """Just enough of the router's API, with its error shape; ``seen`` records each request."""
    app = FastAPI()
    asleep = {"anna"}

    def error(status: int, message: str, code: str) -> JSONResponse:
        return JSONResponse({"error": {"message": message, "type": "x", "code": code, "param": None}}, status)

    @app.middleware("http")
    async def auth(request: Request, call_next):
        key = request.headers.get("authorization", "").removeprefix("Bearer ")
        seen.append({"path": request.url.path, "key": key})
        if key not in (USER, ADMIN):
            return error(401, "invalid API key", "invalid_api_key")
        admin_only = request.method == "DELETE" or request.url.path.endswith(("/sleep", "/wake"))
        admin_only |= request.method == "POST" and request.url.path in ("/v1/audio/voices", "/v1/audio/jobs")
        if admin_only and key != ADMIN:
            return error(403, "this operation needs an admin API key", "insufficient_scope")
        return await call_next(request)

    @app.get("/v1/models")
    async def models() -> dict:
        entry = {"object": "model", "engine": "piper", "voices": ["en_US-joe-medium"]}
        return {
            "data": [
                {**entry, "id": "anna", "ready": False, "replicas": 0, "scaled_to_zero": True},
                {**entry, "id": "joe", "ready": True, "replicas": 1, "ready_replicas": 1},
            ]
        }

    @app.post("/v1/audio/speech")
    async def speech(request: Request):
        body = await request.json()
        seen[-1]["body"] = body
        if len(body["input"]) > 20:
            return error(400, f"input is {len(body['input'])} characters; the limit is 20", "input_too_long")
        if body.get("voice", "default") not in ("default", "en_US-joe-medium"):
            return error(400, f"unknown voice {body['voice']!r}", "voice_not_found")

        async def events() -> AsyncIterator[bytes]:
            if body["model"] in asleep:
                for i in range(3):
                    status = "waking" if i < 2 else "started"
                    event = {"type": "speech.status", "status": status, "elapsed": i * 0.5, "model": body["model"]}
                    yield f"data: {json.dumps(event)}\n\n".encode()
            for chunk in (AUDIO[:20], AUDIO[20:]):
                delta = {"type": "speech.audio.delta", "audio": base64.b64encode(chunk).decode()}
                yield f"data: {json.dumps(delta)}\n\n".encode()
            done = {"type": "speech.audio.done", "sample_rate": 22050, "audio_seconds": 0.5}
            yield f"data: {json.dumps(done)}\n\n".encode()

        return StreamingResponse(events(), media_type="text/event-stream")

    @app.post("/v1/audio/voices", status_code=201)
    async def upload(
        name: Annotated[str, Form()],
        model: Annotated[str, Form()],
        file: Annotated[UploadFile, File()],
        consent: Annotated[bool, Form()] = False,
    ):
        data = await file.read()
        seen[-1]["upload"] = {"name": name, "model": model, "bytes": data, "filename": file.filename}
        if not consent:
            return error(400, "consent must be true", "consent_required")
        return JSONResponse({"id": name, "model": model, "type": "clone", "audio": {"bytes": len(data)}}, 201)

    @app.post("/v1/audio/transcriptions")
    async def transcribe(
        model: Annotated[str, Form()],
        file: Annotated[UploadFile, File()],
        response_format: Annotated[str, Form()] = "json",
        language: Annotated[str | None, Form()] = None,
    ):
        data = await file.read()
        seen[-1]["transcription"] = {"model": model, "bytes": data, "format": response_format, "language": language}
        if model != "whisper-1":
            return error(400, f"model {model!r} speaks; it does not transcribe", "not_a_transcription_model")
        return {"text": " Hello there. ", "language": language or "en", "duration": 1.5, "segments": []}

    polls: dict[str, int] = {}

    @app.post("/v1/audio/jobs", status_code=201)
    async def start_job(request: Request):
        body = await request.json()
        seen[-1]["body"] = body
        name = body.get("name", "prod-abcde")
        view = {"name": name, "phase": None, "plan": {"chunks": 4, "chapters": 1}, "status": {"chapters": []}}
        return JSONResponse(view, 201)

    @app.get("/v1/audio/jobs/{name}")
    async def job(name: str) -> dict:
        """Four chunks, one more done at each poll; the job named 'stuck' never starts."""
        polls[name] = done = polls.get(name, -1) + 1
        if name == "stuck":
            return {"name": name, "phase": "Pending", "status": {}}
        done = min(done, 4)
        phase = "Complete" if done == 4 else "Rendering"
        progress = {"chunksDone": done, "chunksTotal": 4, "chaptersTotal": 1, "summary": f"{done}/4 chunks"}
        chapters = [{"number": 1, "title": "One", "url": f"/v1/audio/jobs/{name}/chapters/1"}] if done == 4 else []
        return {"name": name, "phase": phase, "progress": progress, "status": {"chapters": chapters}}

    @app.post("/v1/models/{name}/sleep")
    async def sleep(name: str) -> dict:
        changed = name not in asleep
        asleep.add(name)
        return {"id": name, "changed": changed, "replicas_before": 0 if not changed else 1}

    return app


@pytest.fixture
def seen() -> list[dict[str, Any]]:
    return []


def server_for(seen: list[dict[str, Any]], **settings: Any):
    config = McpSettings(url="http://router.test", api_key=USER, **settings)
    return create_server(config, transport=httpx.ASGITransport(fake_router(seen)))


async def test_tools_publish_their_schemas_and_truthful_hints(seen):
    async with Client(server_for(seen)) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
    assert set(tools) == MCP_TOOLS
    speak = tools["synthesize_speech"]
    assert speak.input_schema["required"] == ["text"]
    assert set(speak.input_schema["properties"]) == {"text", "voice", "model", "format", "speed", "roles"}
    assert speak.output_schema is not None and "woke_model" in speak.output_schema["properties"]
    hints = {n: (t.annotations.read_only_hint, t.annotations.destructive_hint) for n, t in tools.items()}
    assert hints["list_models"] == hints["list_voices"] == hints["get_gpu_status"] == (True, False)
    assert hints["transcribe_audio"] == (True, False)
    assert hints["delete_voice"] == hints["sleep_model"] == (False, True)
    assert hints["create_voice"] == hints["wake_model"] == hints["synthesize_speech"] == (False, False)
    assert hints["list_productions"] == hints["get_production"] == (True, False)
    assert hints["start_production"] == (False, False)
    assert all(t.output_schema for t in tools.values())


async def test_speech_of_a_sleeping_model_reports_progress_and_returns_audio(seen):
    progress: list[tuple[float, str | None]] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append((value, message))

    async with Client(server_for(seen)) as client:
        result = await client.call_tool(
            "synthesize_speech", {"text": "Hello", "model": "anna", "format": "wav"}, progress_callback=on_progress
        )
    assert not result.is_error, result.content
    audio = result.content[0]
    assert audio.type == "audio" and audio.mime_type == "audio/wav"
    assert base64.b64decode(audio.data) == AUDIO
    assert result.structured_content["woke_model"] is True and result.structured_content["waited_seconds"] == 1.0
    assert [v for v, _ in progress] == [1, 2, 3]
    assert "waking up from zero" in (progress[0][1] or "") and "speaking" in (progress[-1][1] or "")
    assert "woke up in 1.0 s" in result.content[-1].text
    assert seen[-1]["body"] == {"model": "anna", "input": "Hello", "response_format": "wav", "stream_format": "sse"}


async def test_speech_with_roles_sends_the_script_and_each_roles_voice_to_the_router(seen):
    roles = {"Alice": {"voice": "en_US-joe-medium"}, "Bob": {"voice": "en", "model": "robot"}}
    async with Client(server_for(seen)) as client:
        result = await client.call_tool(
            "synthesize_speech", {"text": "Alice: Hi.\nBob: Yo.", "model": "joe", "roles": roles}
        )
        bad = await client.call_tool("synthesize_speech", {"text": "A: Hi.", "model": "joe", "roles": {"A": {}}})
    assert not result.is_error
    (body,) = [r["body"] for r in seen if r["path"] == "/v1/audio/speech"]
    assert body["input"] == "Alice: Hi.\nBob: Yo." and body["roles"] == roles  # no "model": null for Alice
    assert bad.is_error and "voice" in bad.content[0].text.lower()


async def test_without_a_model_the_only_choice_is_refused_with_the_list(seen):
    async with Client(server_for(seen)) as client:
        result = await client.call_tool("synthesize_speech", {"text": "Hello"})
    assert result.is_error and "pass model= one of: anna, joe (ready)" in result.content[0].text


@pytest.mark.parametrize(
    ("args", "expect"),
    [
        ({"text": "x" * 30, "model": "joe"}, "input is 30 characters; the limit is 20 (HTTP 400 input_too_long)"),
        ({"text": "Hi", "model": "joe", "voice": "nobody"}, "unknown voice 'nobody' (HTTP 400 voice_not_found)"),
        ({"text": "Hi", "model": "joe", "speed": 9}, "less than or equal to 4"),
    ],
)
async def test_bad_requests_are_tool_errors_that_say_why(seen, args, expect):
    async with Client(server_for(seen)) as client:
        result = await client.call_tool("synthesize_speech", args)
    assert result.is_error and expect in result.content[0].text


async def test_file_output_saves_the_audio_and_links_it(seen, tmp_path: Path):
    async with Client(server_for(seen, output_mode="file", output_dir=tmp_path / "out")) as client:
        result = await client.call_tool("synthesize_speech", {"text": "Hello", "model": "joe", "format": "opus"})
    assert not result.is_error
    types = [b.type for b in result.content]
    assert types == ["resource_link", "text"]  # file mode: no inline audio
    link = result.content[0]
    saved = Path(result.structured_content["file"])
    assert str(link.uri) == saved.as_uri() and await anyio.Path(saved).read_bytes() == AUDIO and saved.suffix == ".ogg"
    assert link.mime_type == "audio/ogg" and saved.parent == (tmp_path / "out").resolve()


async def test_voices_from_allowed_files_only_and_admin_tools_need_the_admin_key(seen, tmp_path: Path):
    clips = tmp_path / "clips"
    clips.mkdir()
    (clips / "me.wav").write_bytes(AUDIO)
    (tmp_path / "private.key").write_text("secret")
    async with Client(server_for(seen, audio_dirs=[clips])) as client:
        # the user key may not create voices: the router says so, the tool error says what to set
        refused = await client.call_tool(
            "create_voice", {"name": "me", "model": "joe", "audio_path": str(clips / "me.wav"), "consent": True}
        )
        assert refused.is_error and "KUBETTS_ADMIN_API_KEY" in refused.content[0].text
        outside = await client.call_tool(
            "create_voice", {"name": "me", "model": "joe", "audio_path": str(tmp_path / "private.key")}
        )
        assert outside.is_error and "outside the allowed directories" in outside.content[0].text
        both = await client.call_tool(
            "create_voice", {"name": "me", "model": "joe", "audio_path": "/x", "audio_base64": "AAAA"}
        )
        assert both.is_error and "exactly one of audio_path or audio_base64" in both.content[0].text
    assert not any(s.get("upload") for s in seen)  # nothing outside the allowed directory was sent

    admin = create_server(
        McpSettings(url="http://router.test", api_key=USER, admin_api_key=ADMIN, audio_dirs=[clips]),
        transport=httpx.ASGITransport(fake_router(seen)),
    )
    async with Client(admin) as client:
        created = await client.call_tool(
            "create_voice", {"name": "me", "model": "joe", "audio_path": str(clips / "me.wav"), "consent": True}
        )
        assert not created.is_error, created.content
        assert created.structured_content["name"] == "me" and "pocket-tts" in created.structured_content["note"]
        no_consent = await client.call_tool(
            "create_voice", {"name": "me2", "model": "joe", "audio_base64": base64.b64encode(AUDIO).decode()}
        )
        assert no_consent.is_error and "consent_required" in no_consent.content[0].text
        slept = await client.call_tool("sleep_model", {"name": "joe"})
        assert slept.structured_content["changed"] is True
    upload = next(s["upload"] for s in seen if s.get("upload"))
    assert upload == {"name": "me", "model": "joe", "bytes": AUDIO, "filename": "me.wav"}
    assert {s["key"] for s in seen if s.get("upload") or s["path"].endswith("/sleep")} == {ADMIN}


async def test_an_unreachable_router_is_a_tool_error():
    server = create_server(McpSettings(url="http://127.0.0.1:9", api_key=USER, connect_timeout=2))
    async with Client(server) as client:
        result = await client.call_tool("list_models", {})
    assert result.is_error
    assert "cannot reach the kube-tts router at http://127.0.0.1:9 (ConnectError)" in result.content[0].text


def test_http_transport_needs_a_bearer_key_passes_it_on_and_checks_the_host(seen):
    settings = McpSettings(url="http://router.test", transport="http", api_key="sk-server-must-not-be-used")
    server = create_server(settings, transport=httpx.ASGITransport(fake_router(seen)))
    with LiveServer(create_http_app(settings, server)) as live:
        assert httpx.get(f"{live.url}/healthz").json() == {"status": "ok"}
        anonymous = httpx.post(f"{live.url}/mcp", json={})
        assert anonymous.status_code == 401 and anonymous.headers["www-authenticate"].startswith("Bearer")
        assert anonymous.json()["error"]["code"] == "missing_api_key"
        rebinding = httpx.post(
            f"{live.url}/mcp", json={}, headers={"Authorization": f"Bearer {USER}", "Host": "evil.example"}
        )
        assert rebinding.status_code == 421

        async def call() -> tuple[Any, Any]:
            async with (
                httpx2.AsyncClient(headers={"Authorization": f"Bearer {USER}"}) as http,
                Client(streamable_http_client(f"{live.url}/mcp", http_client=http)) as client,
            ):
                models = await client.call_tool("list_models", {})
                sleep = await client.call_tool("sleep_model", {"name": "joe"})
                # progress reaches HTTP clients too (stateless: on the call's own response stream)
                speech = await client.call_tool(
                    "synthesize_speech", {"text": "Hi", "model": "anna"}, progress_callback=on_progress
                )
                assert not speech.is_error and base64.b64decode(speech.content[0].data) == AUDIO
                return models, sleep

        progress: list[str | None] = []

        async def on_progress(value: float, total: float | None, message: str | None) -> None:
            progress.append(message)

        models, sleep = anyio.run(call)
        assert len(progress) == 3 and "waking up from zero" in (progress[0] or "")
    assert not models.is_error and [m["name"] for m in models.structured_content["models"]] == ["anna", "joe"]
    # the caller's user key went to the router, which refused the admin call
    assert sleep.is_error and "insufficient_scope" in sleep.content[0].text
    assert "Authorization: Bearer <admin key>" in sleep.content[0].text
    assert {s["key"] for s in seen} == {USER}


async def test_an_output_directory_that_cannot_be_written_is_a_tool_error(seen, tmp_path: Path):
    blocked = tmp_path / "not-a-dir"
    await anyio.Path(blocked).write_text("a file where the directory should be")
    async with Client(server_for(seen, output_mode="both", output_dir=blocked)) as client:
        result = await client.call_tool("synthesize_speech", {"text": "Hello", "model": "joe"})
    assert result.is_error and f"the audio could not be saved under {blocked}" in result.content[0].text


async def test_transcribe_audio_sends_the_clip_and_returns_the_text(seen):
    clip = base64.b64encode(b"RIFF-not-really").decode()
    async with Client(server_for(seen)) as client:
        result = await client.call_tool("transcribe_audio", {"audio_base64": clip, "language": "en"})
        assert not result.is_error
        assert result.structured_content == {
            "text": "Hello there.",
            "model": "whisper-1",
            "language": "en",
            "duration_seconds": 1.5,
        }
        assert seen[-1]["transcription"] == {
            "model": "whisper-1",
            "bytes": b"RIFF-not-really",
            "format": "verbose_json",
            "language": "en",
        }
        refused = await client.call_tool("transcribe_audio", {"audio_base64": clip, "model": "joe"})
        assert refused.is_error
        assert "does not transcribe" in refused.content[0].text and "capability" in refused.content[0].text
        neither = await client.call_tool("transcribe_audio", {})
        assert neither.is_error and "exactly one of audio_path or audio_base64" in neither.content[0].text


async def test_start_production_sends_a_script_with_roles_to_the_router_with_the_admin_key(seen):
    settings = McpSettings(url="http://router.test", api_key=USER, admin_api_key=ADMIN)
    async with Client(create_server(settings, transport=httpx.ASGITransport(fake_router(seen)))) as client:
        roles = {"Alice": {"voice": "joe"}, "Bob": {"voice": "en-us", "model": "espeak"}}
        result = await client.call_tool(
            "start_production",
            {"text": "Alice: Hi.\nBob: Hello.", "roles": roles, "model": "joe", "format": "opus", "name": "pod"},
        )
        assert not result.is_error, result.content
        assert result.structured_content["name"] == "pod" and result.structured_content["planned_chunks"] == 4
        assert seen[-1]["key"] == ADMIN
        assert seen[-1]["body"] == {
            "deployment": "joe",
            "name": "pod",
            "text": "Alice: Hi.\nBob: Hello.",
            "textFormat": "script",
            "roles": {"Alice": {"voice": "joe"}, "Bob": {"voice": "en-us", "deployment": "espeak"}},
            "format": "opus",
        }
        both = await client.call_tool(
            "start_production", {"text": "Hi.", "script": [{"role": "A", "text": "Hi."}], "model": "joe"}
        )
        assert both.is_error and "exactly one of text or script" in both.content[0].text


async def test_get_production_with_wait_reports_chunks_done_of_the_total_until_complete(seen):
    progress: list[tuple[float, float | None, str | None]] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append((value, total, message))

    async with Client(server_for(seen, production_poll_seconds=0.01)) as client:
        result = await client.call_tool("get_production", {"name": "book", "wait": True}, progress_callback=on_progress)
        assert not result.is_error, result.content
        done = result.structured_content
        assert done["phase"] == "Complete" and done["finished"] is True and done["timed_out"] is False
        assert done["chapters"][0]["url"] == "http://router.test/v1/audio/jobs/book/chapters/1"
        assert [(v, t) for v, t, _ in progress] == [(0, 4), (1, 4), (2, 4), (3, 4), (4, 4)]  # the last: Complete
        assert "book: Rendering, 2/4 chunks" in (progress[2][2] or "")
        once = await client.call_tool("get_production", {"name": "stuck"})
        assert once.structured_content["phase"] == "Pending" and once.structured_content["timed_out"] is False


async def test_get_production_stops_waiting_at_its_timeout_with_the_state_so_far(seen):
    async with Client(server_for(seen, production_poll_seconds=0.05)) as client:
        result = await client.call_tool("get_production", {"name": "stuck", "wait": True, "timeout_seconds": 1})
    assert not result.is_error and result.structured_content["timed_out"] is True
    assert result.structured_content["phase"] == "Pending"
    # polled again after the first answer, and not at once in a loop (polls are 50 ms apart: at most ~20)
    assert 2 <= sum(1 for s in seen if s["path"] == "/v1/audio/jobs/stuck") <= 25

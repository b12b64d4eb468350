"""The MCP server's pure parts: settings, file confinement, router errors and hints, SSE parsing,
the caller's key, the model choice."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import ValidationError
from tts_mcp.files import FileRefused, decode_clip, read_clip, save_speech, speech_filename
from tts_mcp.models import GpuStatus, ModelInfo, ProductionInfo, ProductionSummary, RoleVoice, ScriptLine
from tts_mcp.router import (
    HTTP_AUTH_HINTS,
    AuthHints,
    RouterError,
    SpeechCollector,
    SseParser,
    error_from_response,
)
from tts_mcp.service import (
    KubeTtsService,
    bearer_token,
    mime_type,
    pick_model,
    production_body,
    router_for,
    upload_fields,
)
from tts_mcp.settings import McpSettings

# --- settings ---------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """A shell that sourced .devcluster/env must not change what these tests see."""
    for name in list(os.environ):
        if name.startswith("KUBETTS_") and name != "KUBETTS_INSTANCE":
            monkeypatch.delenv(name)


def test_settings_read_the_devcluster_env_names_and_lists(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("KUBETTS_URL", "http://127.0.0.1:8082/")
    monkeypatch.setenv("KUBETTS_API_KEY", "sk-user")
    monkeypatch.setenv("KUBETTS_ADMIN_API_KEY", "sk-admin")
    monkeypatch.setenv("KUBETTS_MCP_ALLOWED_HOSTS", "mcp.example.com, kube-tts-mcp:*")
    monkeypatch.setenv("KUBETTS_MCP_AUDIO_DIRS", f"{tmp_path},/srv/clips")
    monkeypatch.setenv("KUBETTS_PORT", "9999")  # the router's variable: not the MCP server's port
    s = McpSettings()
    assert s.url == "http://127.0.0.1:8082"
    assert s.api_key.get_secret_value() == "sk-user" and "sk-user" not in repr(s)
    assert s.port == 8090 and s.transport == "stdio" and s.output_mode == "inline"
    assert s.host_allowlist()[:2] == ["mcp.example.com", "kube-tts-mcp:*"]
    assert "127.0.0.1:*" in s.host_allowlist()
    assert s.audio_dirs == [tmp_path, Path("/srv/clips")]


def test_settings_refuse_file_output_without_a_directory_and_bad_urls():
    with pytest.raises(ValidationError, match="KUBETTS_MCP_OUTPUT_DIR"):
        McpSettings(output_mode="both")
    with pytest.raises(ValidationError, match="http"):
        McpSettings(url="localhost:8080")


# --- reading clips: only inside the allowed directories ---------------------------------------------


@pytest.fixture
def clips(tmp_path: Path) -> Path:
    allowed = tmp_path / "clips"
    allowed.mkdir()
    (allowed / "me.wav").write_bytes(b"RIFF" + bytes(100))
    (tmp_path / "secret.txt").write_text("top secret")
    return allowed


def test_a_clip_inside_an_allowed_directory_is_read(clips: Path):
    data, name = read_clip(str(clips / "me.wav"), [clips], 1000)
    assert data.startswith(b"RIFF") and name == "me.wav"


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("{clips}/../secret.txt", "outside the allowed directories"),
        ("/etc/passwd", "outside the allowed directories"),
        ("me.wav", "absolute path"),
        ("{clips}/missing.wav", "does not exist"),
        ("{clips}", "not a regular file"),
        ("{clips}/link.wav", "outside the allowed directories"),
    ],
)
def test_paths_outside_the_allowed_directories_are_refused(clips: Path, path: str, reason: str):
    (clips / "link.wav").symlink_to(clips.parent / "secret.txt")
    with pytest.raises(FileRefused, match=reason):
        read_clip(path.format(clips=clips), [clips], 1000)


def test_audio_path_is_disabled_without_directories_and_size_is_capped(clips: Path):
    with pytest.raises(FileRefused, match="disabled"):
        read_clip(str(clips / "me.wav"), [], 1000)
    with pytest.raises(FileRefused, match="larger than 50 bytes"):
        read_clip(str(clips / "me.wav"), [clips], 50)
    # a prefix of the allowed directory's name is not inside it
    sibling = clips.parent / "clips-other"
    sibling.mkdir()
    (sibling / "x.wav").write_bytes(b"x")
    with pytest.raises(FileRefused, match="outside"):
        read_clip(str(sibling / "x.wav"), [clips], 1000)


def test_base64_clips_are_checked():
    assert decode_clip(base64.b64encode(b"abc").decode(), 10) == b"abc"
    assert decode_clip("data:audio/wav;base64," + base64.b64encode(b"abc").decode(), 10) == b"abc"
    with pytest.raises(FileRefused, match="not valid base64"):
        decode_clip("not base64!", 100)
    with pytest.raises(FileRefused, match="more than 10 bytes"):
        decode_clip(base64.b64encode(bytes(11)).decode(), 10)
    with pytest.raises(FileRefused, match="more than 10 bytes"):
        decode_clip("A" * 1000, 10)
    with pytest.raises(FileRefused, match="empty"):
        decode_clip("", 10)


def test_speech_files_are_new_private_files_with_safe_names(tmp_path: Path):
    name = speech_filename("joe", "../../etc/x", "opus")
    assert "/" not in name and name.endswith(".ogg") and "-joe-etc-x-" in name
    path = save_speech(tmp_path / "out", name, b"audio")
    assert path.read_bytes() == b"audio" and path.parent == (tmp_path / "out").resolve()
    assert oct(path.stat().st_mode & 0o777) == oct(0o600)
    with pytest.raises(FileExistsError):
        save_speech(tmp_path / "out", name, b"again")
    with pytest.raises(FileRefused):
        save_speech(tmp_path / "out", "../escape.wav", b"x")


# --- router errors: the router's message, its code, and what to do ---------------------------------


def body(message: str, code: str) -> bytes:
    return f'{{"error": {{"message": "{message}", "type": "x", "code": "{code}", "param": null}}}}'.encode()


@pytest.mark.parametrize(
    ("status", "code", "message", "expect"),
    [
        (400, "input_too_long", "input is 5000 characters; the limit is 4096", "split the text"),
        (400, "voice_not_found", "voice 'nobody' is not a speaker of this model", "call list_voices"),
        (404, "model_not_found", "model 'x' does not exist", "call list_models"),
        (401, "invalid_api_key", "invalid API key", "KUBETTS_API_KEY"),
        (403, "insufficient_scope", "this operation needs an admin API key", "KUBETTS_ADMIN_API_KEY"),
        (400, "cloning_not_supported", "the piper engine cannot clone", "pocket-tts"),
        (504, "activation_timeout", "model 'x' did not become ready within 300 s", "get_gpu_status"),
    ],
)
def test_router_errors_keep_the_message_and_add_what_to_do(status: int, code: str, message: str, expect: str):
    err = error_from_response(status, body(message, code), AuthHints())
    text = str(err)
    assert text.startswith(message) and f"HTTP {status} {code}" in text and expect.lower() in text.lower()
    assert (err.status, err.code) == (status, code)


def test_http_callers_are_told_to_fix_their_header_and_retry_after_is_passed_on():
    assert "Authorization: Bearer" in str(error_from_response(401, body("invalid API key", "x"), HTTP_AUTH_HINTS))
    err = error_from_response(429, body("rate limit", "rate_limit_exceeded"), AuthHints(), retry_after="3")
    assert "retry after 3 seconds" in str(err).lower()
    # a proxy's HTML page still gives a readable message
    assert "HTTP 502: <html>bad gateway" in str(error_from_response(502, b"<html>bad gateway", AuthHints()))


# --- speech events ------------------------------------------------------------------------------------


def events(*payloads: str) -> list[dict]:
    parser, out = SseParser(), []
    for line in "".join(f"data: {p}\n\n" for p in payloads).split("\n"):
        event = parser.feed(line)
        if event is not None:
            out.append(event)
    return out


def test_status_events_become_progress_and_deltas_become_audio():
    collector = SpeechCollector(AuthHints())
    statuses = []
    for event in events(
        '{"type":"speech.status","status":"waking","elapsed":0.0,"model":"joe","position":1}',
        '{"type":"speech.status","status":"waking","elapsed":1.0,"model":"joe","position":1}',
        '{"type":"speech.status","status":"started","elapsed":3.5,"model":"joe"}',
        '{"type":"speech.audio.delta","audio":"' + base64.b64encode(b"RIFF").decode() + '"}',
        '{"type":"speech.audio.delta","audio":"' + base64.b64encode(b"data").decode() + '"}',
        '{"type":"speech.audio.done","sample_rate":22050,"audio_seconds":1.25}',
    ):
        status = collector.add(event)
        if status:
            statuses.append(status.describe())
    audio = collector.finish()
    assert audio.data == b"RIFFdata" and audio.sample_rate == 22050 and audio.audio_seconds == 1.25
    assert audio.woke_model and audio.waited_seconds == 3.5
    assert statuses[0] == "model 'joe' is waking up from zero (0.0 s, position 1 in its queue)"
    assert statuses[-1] == "model 'joe' is speaking (waited 3.5 s)"


def test_an_error_event_or_a_cut_stream_is_a_router_error():
    collector = SpeechCollector(AuthHints())
    (event,) = events(
        '{"type":"error","status":504,"error":{"message":"model \'joe\' did not become ready within 5 s",'
        '"code":"activation_timeout"}}'
    )
    with pytest.raises(RouterError, match=r"did not become ready.*HTTP 504 activation_timeout.*get_gpu_status"):
        collector.add(event)
    cut = SpeechCollector(AuthHints())
    cut.add({"type": "speech.audio.delta", "audio": base64.b64encode(b"RIFF").decode()})
    with pytest.raises(RouterError, match="ended before the audio was complete"):
        cut.finish()


# --- keys and choices ------------------------------------------------------------------------------------


def test_bearer_token_parsing():
    assert bearer_token({"Authorization": "Bearer sk-1"}) == "sk-1"
    assert bearer_token({"authorization": "bearer  sk-2 "}) == "sk-2"
    assert bearer_token({"authorization": "Basic abc"}) is None
    assert bearer_token({"authorization": "Bearer "}) is None
    assert bearer_token(None) is None


def test_http_callers_use_their_own_key_never_the_servers():
    settings = McpSettings(transport="http", api_key="sk-server", admin_api_key="sk-server-admin")
    backend = KubeTtsService(settings, None)  # type: ignore[arg-type]
    client = router_for(backend, {"authorization": "Bearer sk-caller"})
    assert client._headers() == {"Authorization": "Bearer sk-caller"}
    assert client._headers(admin=True) == {"Authorization": "Bearer sk-caller"}
    with pytest.raises(ToolError, match="Authorization: Bearer"):
        router_for(backend, {})
    stdio = router_for(KubeTtsService(McpSettings(api_key="sk-user", admin_api_key="sk-admin"), None), None)  # type: ignore[arg-type]
    assert stdio._headers() == {"Authorization": "Bearer sk-user"}
    assert stdio._headers(admin=True) == {"Authorization": "Bearer sk-admin"}
    no_admin = router_for(KubeTtsService(McpSettings(api_key="sk-user"), None), None)  # type: ignore[arg-type]
    assert no_admin._headers(admin=True) == {"Authorization": "Bearer sk-user"}
    with pytest.raises(RouterError, match="KUBETTS_API_KEY"):
        router_for(KubeTtsService(McpSettings(), None), None)._headers()  # type: ignore[arg-type]


def test_the_model_is_the_requested_the_default_or_the_only_one():
    one = [ModelInfo(name="joe", ready=True, replicas=1)]
    two = [*one, ModelInfo(name="anna", ready=False, replicas=0)]
    assert pick_model("x", "", two) == "x"
    assert pick_model(None, "dflt", two) == "dflt"
    assert pick_model(None, "", one) == "joe"
    with pytest.raises(ToolError, match=r"pass model= one of: joe \(ready\), anna"):
        pick_model(None, "", two)
    with pytest.raises(ToolError, match="no text-to-speech model"):
        pick_model(None, "", [])


def test_mime_types():
    assert mime_type("mp3", None) == "audio/mpeg"
    assert mime_type("wav", 22050) == "audio/wav"
    assert mime_type("pcm", 24000) == "audio/L16;rate=24000;channels=1"


def test_gpu_status_from_the_routers_answer():
    status = GpuStatus.from_router(
        {
            "namespace": "kube-tts",
            "deployments": [
                {
                    "name": "joe",
                    "replicas": 1,
                    "ready_replicas": 1,
                    "gpu_per_replica": 1,
                    "pods": [
                        {
                            "name": "tts-joe-1",
                            "node": "gpu-0",
                            "ready": True,
                            "inference": {
                                "device": "cuda:0",
                                "gpu_memory": {"used_bytes": 2_000_000_000, "total_bytes": 80_000_000_000},
                            },
                        }
                    ],
                }
            ],
            "nodes": [
                {
                    "node": "gpu-0",
                    "product": "NVIDIA-H100",
                    "ready": True,
                    "resources": {"nvidia.com/gpu": {"capacity": 8, "allocatable": 8, "requested": 1}},
                }
            ],
            "errors": [],
        }
    )
    pod = status.deployments[0].pods[0]
    assert (pod.device, pod.gpu_memory_used_bytes, pod.gpu_memory_total_bytes) == ("cuda:0", 2e9, 8e10)
    node = status.nodes[0] if status.nodes else None
    assert node is not None and node.gpus[0].resource == "nvidia.com/gpu" and node.gpus[0].requested == 1
    assert GpuStatus.from_router({"deployments": [], "nodes": None, "errors": ["x"]}).nodes is None


# --- productions ------------------------------------------------------------------------------------


def test_a_production_body_is_the_jobs_spec_in_camel_case_and_a_text_with_roles_is_a_script():
    roles = {"Alice": RoleVoice(voice="joe"), "Bob": RoleVoice(voice="en-us", model="espeak")}
    body = production_body("joe", "Alice: Hi.\nBob: Hello.", None, roles, None, "opus", None, None, 2)
    assert body == {
        "deployment": "joe",
        "text": "Alice: Hi.\nBob: Hello.",
        "textFormat": "script",
        "roles": {"Alice": {"voice": "joe"}, "Bob": {"voice": "en-us", "deployment": "espeak"}},
        "format": "opus",
        "parallelism": 2,
    }
    script = [ScriptLine(role="Alice", text="Hi.", pause_after_ms=800), ScriptLine(role="Alice", text="Bye.")]
    body = production_body("joe", None, script, {"Alice": RoleVoice(voice="joe")}, None, None, None, "pod", None)
    assert body["script"] == [{"role": "Alice", "text": "Hi.", "pauseAfterMs": 800}, {"role": "Alice", "text": "Bye."}]
    assert body["name"] == "pod" and "textFormat" not in body
    with pytest.raises(ToolError, match="exactly one of text or script"):
        production_body("joe", None, None, None, None, None, None, None, None)


def test_an_uploaded_productions_fields_are_strings_with_json_objects():
    body = production_body("joe", "Long text.", None, {"A": RoleVoice(voice="v")}, "v", "mp3", None, "book", 3)
    text, fields = upload_fields(body)
    assert text == "Long text."
    assert fields == {
        "deployment": "joe",
        "name": "book",
        "textFormat": "script",
        "roles": '{"A": {"voice": "v"}}',
        "voice": "v",
        "format": "mp3",
        "parallelism": "3",
    }


def test_a_production_from_the_router_has_absolute_chapter_urls_and_its_failure_message():
    entry = {
        "name": "book",
        "phase": "Failed",
        "createdAt": "2026-12-03T11:00:00Z",
        "progress": {"chunksDone": 3, "chunksTotal": 9, "summary": "3/9 chunks (33%)"},
        "status": {
            "chapters": [{"number": 1, "title": "One", "bytes": 10, "url": "/v1/audio/jobs/book/chapters/1"}],
            "conditions": [
                {"type": "Ready", "status": "False", "message": "not ready"},
                {"type": "Failed", "status": "True", "reason": "RenderRefused", "message": "unknown voice 'x'"},
            ],
        },
    }
    info = ProductionInfo.from_router(entry, "http://router:8080/")
    assert info.finished and info.message == "unknown voice 'x'"
    assert info.chapters[0].url == "http://router:8080/v1/audio/jobs/book/chapters/1"
    assert info.progress is not None and (info.progress.chunks_done, info.progress.chunks_total) == (3, 9)
    fresh = ProductionInfo.from_router({"name": "new", "phase": None, "plan": {"chunks": 4}}, "http://r")
    assert (fresh.finished, fresh.planned_chunks, fresh.progress, fresh.chapters) == (False, 4, None, [])
    listed = ProductionSummary.from_router({"name": "new", "chapters": {"done": 1, "total": 2}, "progress": None})
    assert (listed.chapters_done, listed.chapters_total, listed.summary) == (1, 2, "")

"""The MCP server against the router on the local cluster, with the real MCP client: over stdio
(spawning ``kube-tts-mcp`` as a desktop agent would) and over streamable HTTP (the in-cluster form,
on a loopback port). The audio is decoded, replicas are read from the TtsDeployment, and every
failure must come back as a tool error (``isError``) that says what to do.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import os
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from tts_devcluster.layout import Layout

from tests.helpers import MCP_TOOLS, decode_audio, decode_wav, eventually, wav_bytes
from tests.listen import listener, wer
from tests.readback import Saved, lengths

from .conftest import Kube, Models, Router, _free_port, make_cloner, start_service, tts_voice, wait_router_sees

SENTENCE = "Hello from the MCP server. The agent asked the cluster to speak."
MCP = str(Path(sys.executable).parent / "kube-tts-mcp")


def server_env(router: Router, **settings: str) -> dict[str, str]:
    """The process environment of a kube-tts-mcp: ours without KUBETTS_* plus the settings given."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBETTS_")}
    env.update(
        {
            "KUBETTS_URL": router.url,
            "KUBETTS_API_KEY": router.key,
            "KUBETTS_ADMIN_API_KEY": router.admin_key,
            "KUBETTS_MCP_LOG_LEVEL": "info",
        }
    )
    env.update({k if k.startswith("KUBETTS_") else f"KUBETTS_MCP_{k.upper()}": v for k, v in settings.items()})
    return env


@contextlib.asynccontextmanager
async def stdio(router: Router, **settings: str) -> AsyncIterator[Client]:
    """A kube-tts-mcp spawned over stdio, as a desktop agent starts it."""
    params = StdioServerParameters(command=MCP, env=server_env(router, **settings))
    async with Client(params) as client:
        yield client


def text(result: Any) -> str:
    return "\n".join(b.text for b in result.content if b.type == "text")


def audio_of(result: Any) -> tuple[bytes, str]:
    (block,) = [b for b in result.content if b.type == "audio"]
    return base64.b64decode(block.data), block.mime_type


def replicas(kube: Kube, router: Router, model: str) -> int:
    obj = kube.get("ttsdeployment", model, router.namespace)
    assert obj is not None
    return int(obj["spec"]["replicas"])


async def test_stdio_lists_tools_and_speaks_audio_that_decodes(router: Router, speaker: str, tmp_path: Path):
    out = tmp_path / "speech"
    async with stdio(router, output_mode="both", output_dir=str(out)) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        assert set(tools) == MCP_TOOLS
        assert tools["list_models"].annotations.read_only_hint is True
        assert tools["sleep_model"].annotations.destructive_hint is True

        models = await client.call_tool("list_models", {})
        assert not models.is_error, text(models)
        mine = next(m for m in models.structured_content["models"] if m["name"] == speaker)
        assert mine["ready"] is True and mine["replicas"] == 1 and "en_US-joe-medium" in mine["voices"]

        voices = await client.call_tool("list_voices", {"model": speaker})
        builtin = {v["name"]: v for v in voices.structured_content["voices"]}
        assert builtin["en_US-joe-medium"]["type"] == "builtin" and builtin["en_US-joe-medium"]["default"] is True

        result = await client.call_tool("synthesize_speech", {"text": SENTENCE, "model": speaker, "format": "wav"})
        assert not result.is_error, text(result)
        data, mime = audio_of(result)
        assert mime == "audio/wav"
        audio = decode_wav(data)
        assert audio.sample_rate == 22050 and 2.0 < audio.duration < 10 and audio.rms > 500
        meta = result.structured_content
        assert meta["audio_seconds"] == pytest.approx(audio.duration, abs=0.1) and meta["woke_model"] is False
        # output mode "both": the same audio saved as a file and linked
        (link,) = [b for b in result.content if b.type == "resource_link"]
        saved = Path(meta["file"])
        assert str(link.uri) == saved.as_uri() and saved.parent == out.resolve()
        assert await anyio.Path(saved).read_bytes() == data
        # streamed over SSE, the WAV's sizes were rewritten: the file states its length (ADR 0046)
        assert all(abs(s - audio.duration) < 0.5 / 22050 for s in lengths(Saved(saved, "wav", 22050)).values())

        slower = await client.call_tool(
            "synthesize_speech", {"text": SENTENCE, "model": speaker, "format": "opus", "speed": 0.5}
        )
        assert not slower.is_error, text(slower)
        data, mime = audio_of(slower)
        opus = decode_audio(data)
        assert mime == "audio/ogg" and opus.rms > 500
        assert opus.duration > audio.duration * 1.5, (opus.duration, audio.duration)

        gpu = await client.call_tool("get_gpu_status", {})
        assert not gpu.is_error, text(gpu)
        status = gpu.structured_content
        mine = next(d for d in status["deployments"] if d["name"] == speaker)
        assert mine["ready_replicas"] == 1 and mine["pods"][0]["ready"] is True
        # the local cluster's kwok GPU nodes advertise nvidia.com/gpu
        assert any(g["resource"] == "nvidia.com/gpu" and g["capacity"] > 0 for n in status["nodes"] for g in n["gpus"])


async def test_a_two_voice_script_is_spoken_as_one_stream_and_both_voices_are_heard(
    router: Router, models: Models, speaker: str
):
    """synthesize_speech with roles: the speech API's script extension (ADR 0052), a piper and an
    espeak-ng voice in one answer; Whisper hears both lines, in order."""
    robot = models.create("mcp-espeak", engine="espeak", model={"uri": "package://espeakng-loader"})
    wait_router_sees(router, robot)
    alice, bob = "The quick brown fox jumps over the lazy dog.", "We planted three apple trees in the garden."
    roles = {"Alice": {"voice": "en_US-joe-medium"}, "Bob": {"voice": "en", "model": robot}}
    async with stdio(router) as client:
        args = {"text": f"Alice: {alice}\nBob: {bob}", "model": speaker, "format": "wav", "roles": roles}
        result = await client.call_tool("synthesize_speech", args)
        alone = await client.call_tool("synthesize_speech", {"text": alice, "model": speaker, "format": "wav"})
    assert not result.is_error, text(result)
    both, first = decode_wav(audio_of(result)[0]), decode_wav(audio_of(alone)[0])
    assert both.duration > first.duration + 1.0, (both.duration, first.duration)
    heard = listener().transcribe(wav_bytes(both.samples, both.sample_rate), language="en")
    assert wer(f"{alice} {bob}", heard) <= 0.2, heard


async def test_sleep_then_wake_and_speech_wakes_a_sleeping_model_with_progress(
    router: Router, models: Models, kube: Kube
):
    name = models.create("mcpsleep")
    wait_router_sees(router, name)
    async with stdio(router) as client:
        slept = await client.call_tool("sleep_model", {"name": name})
        assert not slept.is_error, text(slept)
        assert slept.structured_content["changed"] is True and slept.structured_content["replicas_before"] == 1
        assert replicas(kube, router, name) == 0
        eventually(lambda: not models.pods(name), timeout=60, what=f"{name}'s pods to go away")
        wait_router_sees(router, name, ready=False)
        listed = await client.call_tool("list_models", {})
        entry = next(m for m in listed.structured_content["models"] if m["name"] == name)
        assert entry["replicas"] == 0 and entry["scaled_to_zero"] is True and entry["ready"] is False

        again = await client.call_tool("sleep_model", {"name": name})
        assert not again.is_error and again.structured_content["changed"] is False

        woke = await client.call_tool("wake_model", {"name": name})
        assert not woke.is_error and woke.structured_content["changed"] is True, text(woke)
        assert replicas(kube, router, name) == 1
        models.wait_ready(name)
        wait_router_sees(router, name)

        # asleep again: a speech request wakes it, and the agent sees progress while it waits
        await client.call_tool("sleep_model", {"name": name})
        eventually(lambda: not models.pods(name), timeout=60, what=f"{name}'s pods to go away")
        wait_router_sees(router, name, ready=False)
        progress: list[tuple[float, str | None]] = []

        async def on_progress(value: float, total: float | None, message: str | None) -> None:
            progress.append((value, message))

        result = await client.call_tool(
            "synthesize_speech", {"text": SENTENCE, "model": name, "format": "wav"}, progress_callback=on_progress
        )
        assert not result.is_error, text(result)
        audio = decode_wav(audio_of(result)[0])
        assert audio.duration > 2.0 and audio.rms > 500
        assert result.structured_content["woke_model"] is True
        assert replicas(kube, router, name) == 1
        messages = [m or "" for _, m in progress]
        assert any("waking up from zero" in m for m in messages), messages
        assert "speaking" in messages[-1]
        assert [v for v, _ in progress] == sorted({v for v, _ in progress})  # strictly increasing
        print(f"\nMCP speech at zero: {len(progress)} progress notifications, waited {messages[-1]}")


@pytest.fixture
def clips(tmp_path: Path, router: Router, speaker: str) -> Path:
    """A directory the server may read clips from, with a few seconds of speech the platform made."""
    folder = tmp_path / "clips"
    folder.mkdir()
    resp = router.speak(speaker, input="This is my voice, and I agree to it being cloned.", timeout=60)
    assert resp.status_code == 200, resp.text
    (folder / "me.wav").write_bytes(resp.content)
    (tmp_path / "not-a-clip.txt").write_text("private")
    return folder


async def test_voices_from_a_file_and_a_builtin_speaker(router: Router, speaker: str, kube: Kube, clips: Path):
    name = f"mcpclone-{uuid.uuid4().hex[:5]}"
    fast = f"mcpfast-{uuid.uuid4().hex[:5]}"
    kube.apply(tts_voice(fast, speaker, speaker="en_US-joe-medium", defaults={"speed": 2.0}), router.namespace)
    try:
        async with stdio(router, audio_dirs=str(clips)) as client:
            outside = await client.call_tool(
                "create_voice",
                {"name": name, "model": speaker, "audio_path": str(clips.parent / "not-a-clip.txt"), "consent": True},
            )
            assert outside.is_error and "outside the allowed directories" in text(outside)

            created = await client.call_tool(
                "create_voice",
                {
                    "name": name,
                    "model": speaker,
                    "audio_path": str(clips / "me.wav"),
                    "transcript": "This is my voice, and I agree to it being cloned.",
                    "language": "en-US",
                    "consent": True,
                },
            )
            assert not created.is_error, text(created)
            clip = created.structured_content["clip"]
            assert clip["format"] == "wav"
            assert clip["duration_seconds"] == pytest.approx(decode_wav((clips / "me.wav").read_bytes()).duration, 0.01)
            stored = kube.get("ttsvoice", name, router.namespace)
            assert stored is not None and stored["spec"]["reference"]["text"].startswith("This is my voice")

            async def listed() -> dict[str, dict]:
                result = await client.call_tool("list_voices", {"model": speaker})
                return {v["name"]: v for v in result.structured_content["voices"]}

            # the router learns of new TtsVoices through its watch; the operator then validates the clip
            # (it may look before the router has written the clip's ConfigMap: then it re-checks in 30 s)
            for _ in range(150):
                voices = await listed()
                if voices.get(name, {}).get("ready") and fast in voices:
                    break
                await anyio.sleep(0.5)
            assert voices[name]["type"] == "clone" and voices[name]["ready"] is True, voices.get(name)
            assert voices[fast]["type"] == "speaker"

            # Piper cannot clone: speaking with the clip voice is a tool error carrying the router's reason
            cloned = await client.call_tool("synthesize_speech", {"text": "Hi there.", "model": speaker, "voice": name})
            assert cloned.is_error and "cloning_not_supported" in text(cloned) and "pocket-tts" in text(cloned)

            # the speaker voice works, at its default speed of 2
            normal = decode_wav(
                audio_of(
                    await client.call_tool("synthesize_speech", {"text": SENTENCE, "model": speaker, "format": "wav"})
                )[0]
            )
            quick = await client.call_tool(
                "synthesize_speech", {"text": SENTENCE, "model": speaker, "voice": fast, "format": "wav"}
            )
            assert not quick.is_error, text(quick)
            quick_audio = decode_wav(audio_of(quick)[0])
            assert quick_audio.rms > 500 and quick_audio.duration < normal.duration * 0.7

            again = await client.call_tool(
                "create_voice", {"name": name, "model": speaker, "audio_path": str(clips / "me.wav"), "consent": True}
            )
            assert again.is_error and "voice_exists" in text(again)

            deleted = await client.call_tool("delete_voice", {"name": name})
            assert not deleted.is_error and deleted.structured_content == {"name": name, "deleted": True}
            eventually(lambda: kube.get("ttsvoice", name, router.namespace) is None, timeout=30, what="voice gone")
            missing = await client.call_tool("delete_voice", {"name": name})
            assert missing.is_error and "voice_not_found" in text(missing)
    finally:
        kube.run("delete", "ttsvoice", name, fast, "-n", router.namespace, "--wait=false", "--ignore-not-found")


@pytest.fixture(scope="module")
def cloner(models: Models, router: Router, layout: Layout) -> str:
    return make_cloner(models, router, layout)


async def test_a_voice_created_from_a_file_speaks_through_a_cloning_engine(
    router: Router, kube: Kube, cloner: str, clips: Path
):
    name = f"mcpanna-{uuid.uuid4().hex[:5]}"
    try:
        async with stdio(router, audio_dirs=str(clips)) as client:
            created = await client.call_tool(
                "create_voice",
                {
                    "name": name,
                    "model": cloner,
                    "audio_path": str(clips / "me.wav"),
                    "consent": True,
                    "transcript": "This is my voice, and I agree to it being cloned.",
                },
            )
            assert not created.is_error, text(created)
            spoken = None
            for _ in range(120):  # the operator checks the clip, then the router accepts the voice
                spoken = await client.call_tool(
                    "synthesize_speech",
                    {"text": "Cloned by an agent.", "model": cloner, "voice": name, "format": "wav"},
                )
                if not spoken.is_error:
                    break
                assert "voice_not_ready" in text(spoken), text(spoken)
                await anyio.sleep(0.5)
            assert spoken is not None and not spoken.is_error, text(spoken)
            data, mime = audio_of(spoken)
            audio = decode_wav(data)
            assert mime == "audio/wav" and audio.sample_rate == 24000 and audio.duration > 0.2
    finally:
        kube.run("delete", "ttsvoice", name, "-n", router.namespace, "--wait=false", "--ignore-not-found")


@pytest.fixture(scope="module")
def transcriber(models: Models, router: Router) -> str:
    """A whisper model of this module's own, asleep until the first transcription wakes it."""
    name = models.create(
        "ears-mcp",  # sorts before the sample `whisper`: the namespace's transcription model meanwhile
        wait_ready=False,
        engine="whisper",
        model={"uri": "file:///usr/local/share/kube-tts/models/faster-whisper-base"},
        replicas=0,
        minReplicas=0,
        resources={"gpu": 0, "cpu": "1", "memory": "1Gi"},
    )
    wait_router_sees(router, name, ready=False)
    return name


async def test_an_agent_transcribes_audio_and_gets_voices_transcribed(
    router: Router, kube: Kube, speaker: str, transcriber: str, clips: Path
):
    said = "This is my voice, and I agree to it being cloned."
    name = f"mcpheard-{uuid.uuid4().hex[:5]}"
    try:
        async with stdio(router, audio_dirs=str(clips)) as client:
            heard = await client.call_tool(
                "transcribe_audio", {"audio_path": str(clips / "me.wav"), "model": transcriber, "language": "en"}
            )
            assert not heard.is_error, text(heard)
            result = heard.structured_content or {}
            assert result["model"] == transcriber and wer(said, result["text"]) <= 0.1, result
            wrong = await client.call_tool("transcribe_audio", {"audio_path": str(clips / "me.wav"), "model": speaker})
            assert wrong.is_error and "not_a_transcription_model" in text(wrong)

            created = await client.call_tool(
                "create_voice",
                {"name": name, "model": speaker, "audio_path": str(clips / "me.wav"), "consent": True},
            )
            assert not created.is_error and "transcription model" in text(created), text(created)

            async def transcribed() -> dict[str, Any] | None:
                listed = await client.call_tool("list_voices", {"model": speaker})
                voices = {v["name"]: v for v in (listed.structured_content or {}).get("voices", [])}
                voice = voices.get(name) or {}
                return voice if voice.get("transcript_source") == "transcribed" else None

            voice = None
            for _ in range(120):
                if voice := await transcribed():
                    break
                await anyio.sleep(1)
            assert voice is not None, "the voice was never transcribed"
            assert wer(said, voice["transcript"]) <= 0.1, voice
    finally:
        kube.run("delete", "ttsvoice", name, "-n", router.namespace, "--wait=false", "--ignore-not-found")


async def test_openai_voice_names_speak_through_the_tool(router: Router, speaker: str):
    """ADR 0042: an agent that asks for OpenAI's voice names gets the model's voice; a blend on an
    engine that cannot mix is a tool error saying so."""
    async with stdio(router) as client:
        for voice in ("alloy", "onyx"):
            result = await client.call_tool(
                "synthesize_speech", {"text": SENTENCE, "model": speaker, "voice": voice, "format": "wav"}
            )
            assert not result.is_error, text(result)
            audio = decode_wav(audio_of(result)[0])
            assert audio.sample_rate == 22050 and audio.duration > 2.0 and audio.rms > 500
        blend = await client.call_tool("synthesize_speech", {"text": "Hi.", "model": speaker, "voice": "a(1)+b(1)"})
        assert blend.is_error and "voice_blend_unsupported" in text(blend)


async def test_failures_are_tool_errors_an_agent_can_act_on(router: Router, speaker: str):
    async with stdio(router) as client:
        unknown = await client.call_tool("synthesize_speech", {"text": "Hi.", "model": speaker, "voice": "nobody"})
        assert unknown.is_error
        assert "voice_not_found" in text(unknown) and "nobody" in text(unknown) and "list_voices" in text(unknown)

        too_long = await client.call_tool("synthesize_speech", {"text": "a" * 5000, "model": speaker})
        assert too_long.is_error
        assert (
            "input is 5000 characters; the limit is 4096" in text(too_long)
            and "split the text" in text(too_long).lower()
        )

        no_model = await client.call_tool("synthesize_speech", {"text": "Hi.", "model": "no-such-model"})
        assert no_model.is_error and "model_not_found" in text(no_model) and "list_models" in text(no_model)

    async with stdio(router, KUBETTS_API_KEY="sk-wrong", KUBETTS_ADMIN_API_KEY="") as client:
        bad_key = await client.call_tool("list_models", {})
        assert bad_key.is_error
        assert "invalid API key (HTTP 401 invalid_api_key)" in text(bad_key) and "KUBETTS_API_KEY" in text(bad_key)
        assert "sk-wrong" not in text(bad_key)

    async with stdio(router, KUBETTS_ADMIN_API_KEY="") as client:
        # a user key may speak but not put models to sleep
        not_admin = await client.call_tool("sleep_model", {"name": speaker})
        assert not_admin.is_error and "insufficient_scope" in text(not_admin)
        assert "KUBETTS_ADMIN_API_KEY" in text(not_admin)

    closed = _free_port()
    async with stdio(router, KUBETTS_URL=f"http://127.0.0.1:{closed}", connect_timeout="3") as client:
        unreachable = await client.call_tool("synthesize_speech", {"text": "Hi.", "model": speaker})
        assert unreachable.is_error
        assert f"cannot reach the kube-tts router at http://127.0.0.1:{closed}" in text(unreachable)
        # the server itself is still there for the next call
        assert {t.name for t in (await client.list_tools()).tools} == MCP_TOOLS


@pytest.fixture
def http_server(router: Router, layout: Layout) -> Iterator[str]:
    """kube-tts-mcp --transport http on a loopback port, holding no key of its own."""
    port = _free_port()
    env = server_env(router, allowed_hosts="mcp.kube-tts.test")
    del env["KUBETTS_API_KEY"], env["KUBETTS_ADMIN_API_KEY"]
    service = start_service(
        layout, "mcp-test", [MCP, "--transport", "http", "--port", str(port)], env, port, "/healthz"
    )
    try:
        yield service.url
    finally:
        service.stop()
    assert router.key not in service.log.read_text(), "a key reached the MCP server's log"


@contextlib.asynccontextmanager
async def http_client(url: str, key: str, host: str | None = None) -> AsyncIterator[Client]:
    headers = {"Authorization": f"Bearer {key}"} | ({"Host": host} if host else {})
    async with (
        httpx2.AsyncClient(headers=headers, timeout=120) as http,
        Client(streamable_http_client(f"{url}/mcp", http_client=http)) as client,
    ):
        yield client


async def test_streamable_http_passes_the_callers_key_to_the_router(router: Router, speaker: str, http_server: str):
    async with http_client(http_server, router.key) as client:
        assert {t.name for t in (await client.list_tools()).tools} == MCP_TOOLS
        result = await client.call_tool("synthesize_speech", {"text": SENTENCE, "model": speaker, "format": "mp3"})
        assert not result.is_error, text(result)
        data, mime = audio_of(result)
        audio = decode_audio(data)
        assert mime == "audio/mpeg" and audio.duration > 2.0 and audio.rms > 500
        # a user key: the router refuses the admin tool, and the error says which key to connect with
        refused = await client.call_tool("sleep_model", {"name": speaker})
        assert refused.is_error and "insufficient_scope" in text(refused) and "admin key" in text(refused)

    async with http_client(http_server, router.admin_key) as client:
        woke = await client.call_tool("wake_model", {"name": speaker})
        assert not woke.is_error and woke.structured_content["changed"] is False, text(woke)

    async with http_client(http_server, "sk-wrong") as client:
        bad = await client.call_tool("list_models", {})
        assert bad.is_error and "HTTP 401 invalid_api_key" in text(bad) and "Authorization: Bearer" in text(bad)

    # the configured external host name is accepted, anything else is refused (DNS rebinding)
    async with http_client(http_server, router.key, host="mcp.kube-tts.test") as client:
        assert not (await client.call_tool("list_models", {})).is_error
    async with httpx.AsyncClient(base_url=http_server) as raw:
        rebinding = await raw.post(
            "/mcp", json={}, headers={"Authorization": f"Bearer {router.key}", "Host": "evil.example"}
        )
        assert rebinding.status_code == 421
        anonymous = await raw.post("/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
        assert anonymous.status_code == 401 and anonymous.headers["www-authenticate"].startswith("Bearer")


async def test_an_agent_starts_a_production_lists_it_and_waits_for_it_with_progress(
    router: Router, models: Models, kube: Kube
):
    """A real production: the operator renders it, waking its model from zero, while the agent waits
    with progress notifications."""
    model = models.create("mcpjobs", wait_ready=False, replicas=0)
    wait_router_sees(router, model, ready=False)
    name = f"mcp-pod-{uuid.uuid4().hex[:5]}"
    progress: list[tuple[float, float | None, str | None]] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append((value, total, message))

    try:
        async with stdio(router, production_poll_seconds="0.2") as client:
            script = [{"role": "Alice", "text": "Welcome to the show."}, {"role": "Bob", "text": "Thanks, Alice."}]
            roles = {"Alice": {"voice": "default"}, "Bob": {"voice": "default", "model": model}}
            started = await client.call_tool(
                "start_production", {"script": script, "roles": roles, "model": model, "name": name}
            )
            assert not started.is_error, text(started)
            assert started.structured_content["name"] == name and started.structured_content["planned_chunks"] == 2
            job = kube.get("ttsjob", name, router.namespace)
            assert job is not None and job["spec"]["roles"]["Bob"] == {"voice": "default", "deployment": model}
            assert job["spec"]["script"][0] == {"role": "Alice", "text": "Welcome to the show."}

            listed = await client.call_tool("list_productions", {})
            assert not listed.is_error, text(listed)
            mine = next(p for p in listed.structured_content["productions"] if p["name"] == name)
            assert mine["phase"] in (None, "Pending", "Rendering"), mine  # just started

            result: dict[str, Any] = {}

            answer = await client.call_tool(
                "get_production", {"name": name, "wait": True, "timeout_seconds": 240}, progress_callback=on_progress
            )
            assert not answer.is_error, text(answer)
            result.update(answer.structured_content)
            assert result["phase"] == "Complete" and result["finished"] is True and result["timed_out"] is False
            assert result["chapters"][0]["url"] == f"{router.url}/v1/audio/jobs/{name}/chapters/1"
            # notified along the way, ending with both chunks done
            assert progress and progress[-1][:2] == (2, 2), progress
            assert all(a[0] <= b[0] for a, b in itertools.pairwise(progress)), progress
            assert any("Complete" in (m or "") for _, _, m in progress), progress

            unknown = await client.call_tool("start_production", {"text": "Hello.", "model": "no-such-model"})
            assert unknown.is_error and "does not exist" in text(unknown) and "list_models" in text(unknown)
        async with stdio(router, KUBETTS_ADMIN_API_KEY="") as client:
            refused = await client.call_tool("start_production", {"text": "Hello.", "model": model})
            assert refused.is_error and "KUBETTS_ADMIN_API_KEY" in text(refused)
    finally:
        kube.run("delete", "ttsjob", name, "-n", router.namespace, "--ignore-not-found", check=False)

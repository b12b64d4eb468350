"""OpenAI clients with their defaults on the local cluster (ADR 0042): Open WebUI's exact requests,
the OpenAI SDK with ``tts-1`` and ``alloy``, model and voice aliases and their conflicts, and Kokoro
voice blends, every reply decoded and heard by Whisper.

Open WebUI's OpenAI TTS engine, as its ``backend/open_webui/routers/audio.py`` drives it:

1. ``GET {base}/audio/models`` with ``requests.get`` and no key, reading ``models`` (on any failure
   it falls back to ``tts-1`` and ``tts-1-hd``);
2. ``GET {base}/audio/voices``, the same way, reading ``voices: [{id, name}]`` (falling back to
   alloy, echo, fable, onyx, nova and shimmer);
3. per sentence of a reply, ``POST {base}/audio/speech`` from an aiohttp session with
   ``Content-Type: application/json`` and ``Authorization: Bearer <key>``, the JSON body its web
   page sent (``input``, ``voice``) with ``model`` set to its configured model (``tts-1``), no
   ``response_format`` (so mp3), and the whole reply read before it is played.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx
import pytest
from openai import OpenAI

from tests.helpers import decode_audio, eventually, median_f0
from tests.listen import SENTENCES, listener, wer

from .conftest import Models, Router, router_spawner, wait_router_sees

KOKORO_URI = "file:///usr/local/share/kube-tts/models/kokoro-82m-int8"  # baked into the cpu image
OPEN_WEBUI_VOICES = {v: v for v in ("alloy", "echo", "fable", "onyx", "nova", "shimmer")}
OPEN_WEBUI_MODELS = [{"id": "tts-1"}, {"id": "tts-1-hd"}]
# the headers python-requests and aiohttp add of their own
REQUESTS_HEADERS = {"User-Agent": "python-requests/2.32.4", "Accept-Encoding": "gzip, deflate", "Accept": "*/*"}
AIOHTTP_HEADERS = {"User-Agent": "Python/3.11 aiohttp/3.12.15", "Accept": "*/*", "Accept-Encoding": "gzip, deflate"}
REPLY = SENTENCES[:2]  # a chat reply of two sentences: Open WebUI asks for each on its own
WER_MAX = 0.15  # piper's measured WER is 0.00-0.01 on these sentences (docs/benchmarks.md)


@dataclass
class OpenWebUI:
    """Open WebUI's requests to an OpenAI-compatible TTS server, in its order, with its headers."""

    base_url: str  # what its admin enters as the API base URL: http://router:8080/v1
    key: str
    model: str = "tts-1"  # its TTS_MODEL default
    voice: str = "alloy"  # its TTS_VOICE default

    def models(self) -> tuple[int, list[dict]]:
        resp = httpx.get(f"{self.base_url}/audio/models", headers=REQUESTS_HEADERS, timeout=10)
        return resp.status_code, resp.json().get("models", []) if resp.is_success else OPEN_WEBUI_MODELS

    def voices(self) -> tuple[int, dict[str, str]]:
        resp = httpx.get(f"{self.base_url}/audio/voices", headers=REQUESTS_HEADERS, timeout=10)
        if not resp.is_success:
            return resp.status_code, OPEN_WEBUI_VOICES
        return resp.status_code, {v["id"]: v["name"] for v in resp.json().get("voices", [])}

    def speech(self, sentence: str, voice: str | None = None) -> httpx.Response:
        headers = {**AIOHTTP_HEADERS, "Content-Type": "application/json", "Authorization": f"Bearer {self.key}"}
        payload = {"input": sentence, "voice": voice or self.voice, "model": self.model}
        return httpx.post(f"{self.base_url}/audio/speech", content=json.dumps(payload), headers=headers, timeout=180)


@pytest.fixture(scope="module")
def hear() -> Callable[[bytes, str], str]:
    return listener().transcribe


@pytest.fixture(scope="module")
def piper(models: Models, router: Router) -> str:
    """A Piper model claiming an alias of its own."""
    name = models.create("openai-piper")
    models.kube.run(
        "patch", "ttsdeployment", name, "-n", router.namespace, "--type=merge",
        "-p", json.dumps({"spec": {"modelAliases": [f"narrator-{name[-5:]}"]}}),
    )  # fmt: skip
    wait_router_sees(router, name)
    return name


@pytest.fixture(scope="module")
def kokoro(models: Models, router: Router) -> str:
    """The kokoro-onnx sample (five Japanese voices that also speak English), nova overridden by a blend."""
    name = models.create(
        "openai-kokoro",
        engine="kokoro",
        model={"uri": KOKORO_URI},
        resources={"gpu": 0, "cpu": "1", "memory": "1Gi"},
        voiceAliases={"nova": "jf_alpha(0.5)+jf_nezumi(0.5)"},
    )
    wait_router_sees(router, name)
    return name


@pytest.fixture(scope="module")
def routers(spawn_router_module, piper: str) -> dict[str, Router]:
    """Routers as a platform team would set them for Open WebUI: tts-1 reaching the Piper model, the
    voice and model lists behind a key (the default) or open."""
    return {
        "keyed": spawn_router_module(default_model=piper),
        "open": spawn_router_module(default_model=piper, open_audio_lists="true"),
    }


@pytest.fixture(scope="module")
def spawn_router_module(router: Router, layout) -> Iterator[Callable[..., Router]]:
    yield from router_spawner(router, layout)


def check_heard(hear, audio: bytes, sentence: str) -> float:
    decoded = decode_audio(audio)
    assert decoded.duration > 1.0 and decoded.rms > 300, (decoded.duration, decoded.rms)
    score = wer(sentence, hear(audio, "en"))
    assert score <= WER_MAX, (sentence, score)
    return score


@pytest.mark.parametrize("lists", ["keyed", "open"])
def test_open_webui_defaults_get_speech(routers: dict[str, Router], piper: str, hear, lists: str, capsys):
    router = routers[lists]
    client = OpenWebUI(f"{router.url}/v1", router.key)
    status, models = client.models()
    vstatus, voices = client.voices()
    if lists == "keyed":
        # no key on the lists: 401, and Open WebUI falls back to OpenAI's names, which must speak
        assert (status, vstatus) == (401, 401)
    else:
        assert (status, vstatus) == (200, 200)
        ids = {m["id"] for m in models}
        assert {piper, "tts-1", "tts-1-hd", "gpt-4o-mini-tts", f"narrator-{piper[-5:]}"} <= ids
        # Piper's one voice first, then OpenAI's names (every one of them that voice)
        own = next(iter(voices))
        assert set(OPEN_WEBUI_VOICES) <= set(voices) and own not in OPEN_WEBUI_VOICES
        assert voices["alloy"] == f"alloy ({own})" and voices["cedar"] == f"cedar ({own})"
    assert client.model in {m["id"] for m in models} and client.voice in voices
    scores = []
    for sentence in REPLY:
        resp = client.speech(sentence)
        assert resp.status_code == 200, resp.text
        assert resp.headers["content-type"] == "audio/mpeg"
        scores.append(check_heard(hear, resp.content, sentence))
    for voice in ("echo", "shimmer", "cedar"):
        resp = client.speech(REPLY[0], voice)
        assert resp.status_code == 200, resp.text
        scores.append(check_heard(hear, resp.content, REPLY[0]))
    with capsys.disabled():
        print(f"\n# Open WebUI replay ({lists} lists): {len(scores)} mp3 replies, WER {[round(w, 3) for w in scores]}")


def test_open_webui_with_a_voice_nobody_has_gets_a_400(routers: dict[str, Router]):
    resp = OpenWebUI(f"{routers['keyed'].url}/v1", routers["keyed"].key, voice="nobody").speech(REPLY[0])
    assert resp.status_code == 400 and resp.json()["error"]["code"] == "voice_not_found"


def test_openai_sdk_with_tts_1_and_alloy(routers: dict[str, Router], router: Router, piper: str, hear):
    sdk = OpenAI(base_url=f"{routers['keyed'].url}/v1", api_key=router.key, max_retries=0)
    speech = sdk.audio.speech.create(model="tts-1", voice="alloy", input=REPLY[1])
    check_heard(hear, speech.content, REPLY[1])
    # the alias the model claims, through the platform's own router (its image)
    main = OpenAI(base_url=f"{router.url}/v1", api_key=router.key, max_retries=0)
    speech = main.audio.speech.create(model=f"narrator-{piper[-5:]}", voice="nova", input=REPLY[0])
    check_heard(hear, speech.content, REPLY[0])
    assert sdk.models.retrieve("tts-1").id == piper


def test_the_lists_carry_openai_shapes_and_aliases(router: Router, piper: str, kokoro: str):
    with httpx.Client(base_url=router.url, headers=router.headers(), timeout=30) as c:
        assert c.get("/v1/audio/models", headers={"Authorization": ""}).status_code == 401  # keyed by default
        ids = {m["id"]: m.get("alias_of") for m in c.get("/v1/audio/models").json()["models"]}
        assert ids[piper] is None and ids[f"narrator-{piper[-5:]}"] == piper and kokoro in ids
        listed = c.get("/v1/audio/voices", params={"model": kokoro}).json()
        assert {v["id"] for v in listed["data"]} <= {v["id"] for v in listed["voices"]}
        by_id = {v["id"]: v for v in listed["voices"]}
        assert by_id["nova"]["target"] == "jf_alpha(0.5)+jf_nezumi(0.5)"  # the spec's override
        assert by_id["onyx"]["target"] == "jm_kumo"  # male names to the male voice
        assert by_id["alloy"]["target"].startswith("jf_")
        model = c.get(f"/v1/models/{kokoro}").json()
        assert model["voice_blending"] is True and model["voice_aliases"]["onyx"] == "jm_kumo"
        assert c.get(f"/v1/models/{piper}").json()["aliases"] == [f"narrator-{piper[-5:]}"]


def test_a_second_claim_on_an_alias_is_a_conflict(router: Router, models: Models, piper: str):
    alias = f"narrator-{piper[-5:]}"
    rival = models.create("openai-rival", wait_ready=False, replicas=0, modelAliases=[alias, piper])
    kube = models.kube

    def conflict() -> dict | None:
        obj = kube.get("ttsdeployment", rival, router.namespace) or {}
        conds = {c["type"]: c for c in obj.get("status", {}).get("conditions", [])}
        return conds.get("Aliases") if conds.get("Aliases", {}).get("reason") == "AliasConflict" else None

    cond = eventually(conflict, timeout=60, what=f"{rival} Aliases=False AliasConflict")
    assert cond["status"] == "False" and f"already claimed by model {piper!r}" in cond["message"]
    assert f"is the name of model {piper!r}" in cond["message"]
    events = eventually(
        lambda: [e for e in kube.events(router.namespace, rival) if e["reason"] == "AliasConflict"],
        timeout=30,
        what="an AliasConflict event",
    )
    assert events[0]["type"] == "Warning"
    with httpx.Client(base_url=router.url, headers=router.headers(), timeout=30) as c:
        assert c.get(f"/v1/models/{alias}").json()["id"] == piper  # the older claimant keeps it
        rival_entry = eventually(lambda: c.get(f"/v1/models/{rival}").json(), timeout=10, what="rival listed")
        assert rival_entry["aliases"] == [] and sorted(rival_entry["alias_conflicts"]) == sorted([alias, piper])


def test_kokoro_speaks_a_blend_that_whisper_understands(router: Router, kokoro: str, hear, capsys):
    for voice in ("jf_alpha(0.7)+jf_nezumi(0.3)", "nova"):
        resp = router.speak(kokoro, REPLY[0], voice=voice)
        assert resp.status_code == 200, resp.text
        audio = decode_audio(resp.content)
        assert audio.sample_rate == 24000 and audio.duration > 1.0
        heard = hear(resp.content, "en")
        score = wer(REPLY[0], heard)
        with capsys.disabled():
            print(f"\n# kokoro blend {voice}: {audio.duration:.2f} s, WER {score:.3f}: {heard!r}")
        assert score <= 0.25, (voice, score)
    # the blend is a voice in between: mixing the high jf_alpha with the low jm_kumo moves the pitch
    # with the weights (measured through the router: 267, 229, 169, 121 and 99 Hz for these five)
    pitch = {}
    for voice in ("jf_alpha", "jf_alpha(4)+jm_kumo", "jf_alpha+jm_kumo", "jf_alpha+jm_kumo(4)", "jm_kumo"):
        resp = router.speak(kokoro, REPLY[1], voice=voice)
        assert resp.status_code == 200, resp.text
        pitch[voice] = median_f0(decode_audio(resp.content))
    with capsys.disabled():
        print("# kokoro pitch by blend: " + ", ".join(f"{v} {f:.0f} Hz" for v, f in pitch.items()))
    ordered = list(pitch.values())
    assert all(a > b * 1.05 for a, b in itertools.pairwise(ordered)), pitch


@pytest.mark.parametrize(
    ("voice", "code", "says"),
    [
        ("jf_alpha(0.7)+jf_nobody(0.3)", "voice_not_found", "'jf_nobody'"),
        ("jf_alpha(0)+jf_nezumi", "invalid_voice_blend", "weight must be > 0"),
        ("a+b+c+d+e", "invalid_voice_blend", "at most 4"),
    ],
)
def test_bad_blends_are_refused_naming_the_part(router: Router, kokoro: str, voice: str, code: str, says: str):
    resp = router.speak(kokoro, REPLY[0], voice=voice)
    assert resp.status_code == 400 and resp.json()["error"]["code"] == code and says in resp.json()["error"]["message"]


def test_engines_that_cannot_blend_refuse_blends(router: Router, piper: str):
    resp = router.speak(piper, REPLY[0], voice="joe(0.5)+joe2(0.5)")
    assert resp.status_code == 400 and resp.json()["error"]["code"] == "voice_blend_unsupported"

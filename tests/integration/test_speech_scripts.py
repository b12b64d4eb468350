"""A short script through the router's speech API on the local cluster (ADR 0052): the platform's sample
``joe`` (piper; the ``sample_model`` fixture applies it again when an earlier module removed it) and an
espeak-ng TtsDeployment of the test speak one stream, sent by the OpenAI SDK with ``extra_body``; its length
is the lines' spoken alone plus the pause, and Whisper hears both."""

from __future__ import annotations

import threading

import httpx
import pytest
from openai import OpenAI

from tests.helpers import decode_audio, decode_pcm, eventually, wav_bytes
from tests.listen import listener, wer

from .conftest import Kube, Models, Router, wait_router_sees

ALICE = "The quick brown fox jumps over the lazy dog."
BOB = "We planted three apple trees in the garden last spring."
ROLE_PAUSE_S = 0.35  # tts_crds.jobs.Pauses.role_ms
ESPEAK = {"engine": "espeak", "model": {"uri": "package://espeakng-loader"}}


@pytest.fixture(scope="module")
def robot(models: Models, router: Router) -> str:
    name = models.create("scripts-espeak", **ESPEAK)
    wait_router_sees(router, name)
    return name


def roles(robot: str) -> dict:
    return {"Alice": {"voice": "default"}, "Bob": {"voice": "en", "model": robot}}


def alone(router: Router, model: str, voice: str, text: str, rate: int) -> float:
    answer = router.speak(model, text, voice=voice, response_format="pcm", sample_rate=rate)
    assert answer.status_code == 200, answer.text
    return decode_pcm(answer.content, rate).duration


@pytest.mark.parametrize("fmt", ["mp3", "wav"])
def test_a_two_voice_script_is_one_stream_through_the_sdk(router: Router, sample_model: str, robot: str, fmt: str):
    sdk = OpenAI(base_url=f"{router.url}/v1", api_key=router.key, max_retries=0, timeout=180)
    response = sdk.audio.speech.create(
        model=sample_model,
        voice="default",
        input=f"Alice: {ALICE}\nBob: {BOB}",
        response_format=fmt,
        extra_body={"roles": roles(robot)},
    )
    rate = int(response.response.headers["x-sample-rate"])
    audio = decode_audio(response.content, fmt)
    spoken_alone = alone(router, sample_model, "default", ALICE, rate) + alone(router, robot, "en", BOB, rate)
    expected = spoken_alone + ROLE_PAUSE_S
    heard = listener().transcribe(wav_bytes(audio.samples, audio.sample_rate), language="en")
    error = wer(f"{ALICE} {BOB}", heard)
    print(f"{fmt}: {audio.duration:.3f} s; alone + pause {expected:.3f} s; WER {error:.2f} ({heard!r})")
    assert audio.duration == pytest.approx(expected, rel=0.05)
    assert error <= 0.2, heard


def test_a_bad_line_is_a_400_naming_it(router: Router, sample_model: str, robot: str):
    answer = httpx.post(
        f"{router.url}/v1/audio/speech",
        headers=router.headers(),
        json={"model": sample_model, "input": "Alice: Hi.\nCarol: Hello.", "roles": roles(robot)},
        timeout=30,
    )
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["param"] == "input" and "line 2" in error["message"] and "Carol" in error["message"]


def test_a_role_of_an_unknown_model_is_a_404(router: Router, sample_model: str):
    answer = httpx.post(
        f"{router.url}/v1/audio/speech",
        headers=router.headers(),
        json={"model": sample_model, "input": "Alice: Hi.", "roles": {"Alice": {"voice": "x", "model": "nobody-here"}}},
        timeout=30,
    )
    assert answer.status_code == 404
    assert answer.json()["error"]["param"] == "roles.Alice.model"


def test_a_later_roles_model_at_zero_is_woken_when_the_script_starts(router: Router, models: Models, kube: Kube):
    """Both models at zero: while the first line's model wakes (the response has not begun, since the
    first line is opened before it), the second role's model is already raised from zero, rather than
    when its line comes up. Both are then heard."""
    alice_model = models.create("scripts-sleepy-joe", replicas=0, wait_ready=False)
    bob_model = models.create("scripts-sleepy-espeak", replicas=0, wait_ready=False, **ESPEAK)
    for name in (alice_model, bob_model):
        wait_router_sees(router, name, ready=False)
    cast = {"Alice": {"voice": "default"}, "Bob": {"voice": "en", "model": bob_model}}
    began = threading.Event()
    answer: dict = {}

    def speak() -> None:
        body = {"model": alice_model, "input": f"Alice: {ALICE}\nBob: {BOB}", "response_format": "wav", "roles": cast}
        with router.speech_stream(timeout=180, **body) as resp:
            began.set()
            answer["status"], answer["data"] = resp.status_code, resp.read()

    client = threading.Thread(target=speak, daemon=True)
    client.start()
    replicas = lambda name: kube.get("ttsdeployment", name, router.namespace)["spec"]["replicas"]  # noqa: E731
    eventually(lambda: replicas(bob_model) == 1, timeout=30, what=f"{bob_model} raised from zero")
    assert not began.is_set(), "the second role's model was woken only after the first line began"
    client.join(timeout=180)
    assert answer["status"] == 200, answer
    audio = decode_audio(answer["data"], "wav")
    heard = listener().transcribe(wav_bytes(audio.samples, audio.sample_rate), language="en")
    assert wer(f"{ALICE} {BOB}", heard) <= 0.2, heard

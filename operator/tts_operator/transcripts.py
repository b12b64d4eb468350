"""Reference clips transcribed by the namespace's transcription model (ADR 0041).

A TtsVoice whose ``spec.reference.text`` is empty gets ``status.transcript`` from a TtsDeployment
with engine ``whisper`` in its namespace: woken if it sleeps (0 → 1 and a fresh
``lastActivityTime``, so its idle window starts again), asked on a ready pod, the answer written
with a ``Transcribed`` condition. Nothing is written into the spec, and a transcript in the spec
always wins. ``next_step`` decides (pure); ``transcribe`` does the I/O.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import aiohttp
from tts_crds import names
from tts_crds.models import NEEDS_REFERENCE_TEXT, Capability, Engine, Transcript, TtsVoiceSpec, capability_of
from tts_crds.times import now_iso

from .runtime import Runtime, key_of
from .status import ready_pod_ip

log = logging.getLogger("tts_operator")

CONDITION = "Transcribed"
CALL_TIMEOUT = aiohttp.ClientTimeout(total=180, connect=5)
# what may change within seconds: look at the voice again soon
SOON = ("Transcribing", "TranscriptionFailed")


@dataclass(frozen=True)
class Transcriber:
    """A transcription model in the voice's namespace, as the operator sees it now."""

    name: str
    replicas: int  # spec.replicas
    ready_ip: str | None  # a Ready pod to ask, if any


@dataclass(frozen=True)
class Step:
    """What to do about a voice's transcript, and the ``Transcribed`` condition meanwhile."""

    action: str  # none | keep | missing | wake | wait | call | failed
    ok: bool | None = None
    reason: str = ""
    message: str = ""
    model: str | None = None


def wants_transcript(spec: TtsVoiceSpec) -> bool:
    return spec.reference is not None and not spec.reference.text.strip()


def next_step(
    spec: TtsVoiceSpec, namespace: str, clip_sha256: str | None, current: Transcript | None, found: list[Transcriber]
) -> Step:
    """The next step for one voice: nothing to do (a transcript in the spec, no valid clip yet), keep
    the transcript of this very clip, say that no model exists, wake one, wait for it, or ask it."""
    if not wants_transcript(spec) or clip_sha256 is None:
        return Step("none")
    if current is not None and current.audio_sha256 == clip_sha256:
        if not current.text:  # asked already: the same clip is not asked again
            return Step("keep", False, "NothingHeard", f"{current.model} heard no speech in the clip")
        return Step("keep", True, "Transcribed", f"transcribed by {current.model}")
    if not found:
        return Step(
            "missing",
            False,
            "NoTranscriptionModel",
            f"no TtsDeployment with engine: whisper in namespace {namespace!r} to transcribe the clip; deploy one "
            "(examples/ttsdeployment-whisper.yaml) or set spec.reference.text",
        )
    model = sorted(found, key=lambda t: t.name)[0]
    if model.ready_ip:
        return Step("call", None, "Transcribing", f"{model.name} is transcribing the clip", model.name)
    if model.replicas == 0:
        return Step("wake", None, "Transcribing", f"waking {model.name} to transcribe the clip", model.name)
    return Step("wait", None, "Transcribing", f"waiting for {model.name} to become ready", model.name)


def needs_text_verdict(engine: str | None, step: Step) -> tuple[str, str] | None:
    """(reason, message) that keeps a voice from Ready: its engine cannot clone without a transcript
    and none is to be had; None when the voice may be Ready."""
    if engine is None or step.action in ("none", "keep") or Engine(engine) not in NEEDS_REFERENCE_TEXT:
        return None
    return "TranscriptNeeded", f"engine {engine} needs the clip's transcript: {step.message}"


def language_hint(tag: str) -> str | None:
    """Whisper's language code from a BCP 47 tag (``zh-CN`` → ``zh``); None for ``und``."""
    primary = tag.replace("_", "-").split("-")[0].lower()
    return primary if len(primary) == 2 else None


# --- I/O --------------------------------------------------------------------------------------


async def transcribers(rt: Runtime, namespace: str) -> list[Transcriber]:
    """The namespace's transcription models, from the operator's cache, with a Ready pod each if any."""
    out = []
    for body in list(rt.cache.deployments.values()):
        ns, name = key_of(body)
        spec = body.get("spec") or {}
        if ns != namespace or body["metadata"].get("deletionTimestamp"):
            continue
        if capability_of(str(spec.get("engine") or "")) != Capability.TRANSCRIPTION:
            continue
        ready = int((body.get("status") or {}).get("readyReplicas") or 0)
        ip = None
        if ready:
            ip = ready_pod_ip(await rt.kube.list_pods(ns, names.selector_string(names.inference_selector(name))))
        out.append(Transcriber(name, int(spec.get("replicas", 1) or 0), ip))
    return out


async def wake(rt: Runtime, namespace: str, model: str) -> None:
    """0 → 1 replicas (a compare-and-swap: never undoes a concurrent change) and a fresh lastActivityTime."""
    body = rt.cache.deployments.get((namespace, model))
    if body is None:
        return
    await rt.kube.patch_status(names.DEPLOYMENT_PLURAL, namespace, model, {"lastActivityTime": now_iso()})
    if await rt.kube.scale_replicas(namespace, model, 1, body["metadata"].get("resourceVersion")):
        log.info("%s/%s: woken to transcribe a voice's reference clip", namespace, model)
        await rt.kube.event(body, "Scaled", "scaled from 0 to 1 replica(s): a voice's reference clip to transcribe")


async def call(session: aiohttp.ClientSession, ip: str, clip: bytes, language: str | None) -> tuple[str, str | None]:
    """Ask an inference pod for the clip's text; (text, the language it heard, as Whisper names it:
    "english"). Raises on any failure."""
    form = aiohttp.FormData()
    form.add_field("file", clip, filename="reference", content_type="application/octet-stream")
    form.add_field("response_format", "verbose_json")
    if language:
        form.add_field("language", language)
    url = f"http://{ip}:{names.INFERENCE_PORT}/v1/audio/transcriptions"
    async with session.post(url, data=form, timeout=CALL_TIMEOUT) as resp:
        body: Any = await resp.json(content_type=None)
        if resp.status != 200:
            message = (body.get("error") or {}).get("message") if isinstance(body, dict) else None
            raise RuntimeError(f"{resp.status}: {message or 'no message'}")
    return str(body.get("text", "")).strip(), body.get("language") or language


async def settle(
    rt: Runtime, namespace: str, spec: TtsVoiceSpec, sha: str | None, clip: bytes | None, current: Transcript | None
) -> tuple[Step, Transcript | None]:
    """Decide the voice's next step and take it: wake the model, or ask it. Returns the step as it
    ended and the new transcript, if one was made."""
    found = await transcribers(rt, namespace) if wants_transcript(spec) else []
    step = next_step(spec, namespace, sha, current, found)
    if step.action == "wake":
        assert step.model is not None
        await wake(rt, namespace, step.model)
    if step.action != "call":
        return step, None
    assert step.model is not None and clip is not None and sha is not None
    ip = next(t.ready_ip for t in found if t.name == step.model)
    assert ip is not None  # next_step calls only a model with a ready pod
    try:
        hint = language_hint(spec.language)
        text, heard_in = await call(rt.http, ip, clip, hint)
    except (aiohttp.ClientError, TimeoutError, OSError, RuntimeError, ValueError) as exc:
        log.warning("%s: transcribing a reference clip with %s failed: %s", namespace, step.model, exc)
        return Step("failed", False, "TranscriptionFailed", f"{step.model} could not transcribe the clip: {exc}"), None
    # the model was used: its idle window starts again, as a router request would have it
    await rt.kube.patch_status(names.DEPLOYMENT_PLURAL, namespace, step.model, {"lastActivityTime": now_iso()})
    transcript = Transcript(text=text, model=step.model, audio_sha256=sha, language=hint or heard_in, time=now_iso())
    return next_step(spec, namespace, sha, transcript, []), transcript

"""TtsVoice checks: validate each voice against its TtsDeployment and its clip, on change and every so often.

A changed ConfigMap or Secret, or speakers a model publishes later, are picked up by the re-check
loop without watching every ConfigMap and Secret (which would need far broader RBAC). The
judging of a clip or speaker is ``voices`` (pure).
"""

from __future__ import annotations

import asyncio
import copy
import logging
import time
from dataclasses import dataclass
from typing import Any

import kopf
from kubernetes_asyncio.client.exceptions import ApiException
from tts_crds import names
from tts_crds.models import AudioInfo, InvalidSpec, Transcript, TtsVoiceSpec, TtsVoiceStatus, parse_spec
from tts_crds.times import now_iso

from . import transcripts, voices
from .runtime import Runtime, key_of, runtime_of
from .status import changed, condition_of, conditions_of, set_condition

log = logging.getLogger("tts_operator")

RECHECK_PERIOD = 30.0
# what may appear shortly (a clip written just after its TtsVoice, a model about to be created or
# to publish its speakers): look again soon, backing off to the normal re-check period
SOON = ("AudioNotFound", "DeploymentNotFound", "SpeakersUnknown", *transcripts.SOON)


@kopf.on.resume(names.GROUP, names.VERSION, names.VOICE_PLURAL)
@kopf.on.create(names.GROUP, names.VERSION, names.VOICE_PLURAL)
@kopf.on.update(names.GROUP, names.VERSION, names.VOICE_PLURAL, field="spec")
async def reconcile_voice(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    await validate_voice(runtime_of(memo), copy.deepcopy(dict(body)))


@kopf.on.event(names.GROUP, names.VERSION, names.VOICE_PLURAL)
async def voice_seen(body: kopf.Body, type: str | None, memo: kopf.Memo, **_: Any) -> None:
    rt = runtime_of(memo)
    rt.cache.update(rt.cache.voices, type, body)


async def voice_loop(rt: Runtime) -> None:
    """Re-validate every voice when it is due."""
    while True:
        await asyncio.sleep(1)
        now = time.monotonic()
        for key, body in list(rt.cache.voices.items()):
            due, delay = rt.cache.voice_schedule.get(key, (0.0, 1.0))
            if now < due or body["metadata"].get("deletionTimestamp"):
                continue
            try:
                reason = await validate_voice(rt, body)
            except ApiException as exc:
                log.warning("voice %s/%s: %s %s", *key, exc.status, exc.reason)
                reason = "ApiError"
            except Exception:
                log.exception("voice %s/%s: validation failed", *key)
                reason = "Error"
            delay = min(delay * 2, RECHECK_PERIOD) if reason in SOON else RECHECK_PERIOD
            rt.cache.voice_schedule[key] = (now + delay, delay if reason in SOON else 1.0)


async def validate_voice(rt: Runtime, body: dict[str, Any]) -> str:
    """Validate the voice against its TtsDeployment and its clip; returns the Ready reason."""
    ns, name = key_of(body)
    try:
        spec = parse_spec(TtsVoiceSpec, body.get("spec"))
    except InvalidSpec as exc:
        verdict = voices.Verdict(False, "InvalidSpec", str(exc))
        judged = Judged(verdict)
    else:
        judged = await judge_voice(rt, ns, spec)
        verdict = judged.verdict
    status = dict(body.get("status") or {})
    gen = body["metadata"].get("generation")
    typed = TtsVoiceStatus(observed_generation=gen)
    step, typed.transcript, verdict = await transcribed(rt, ns, judged, status)
    now = now_iso()
    conditions = conditions_of(status)
    if step.action == "none":
        conditions = [c for c in conditions if c.type != transcripts.CONDITION]
    else:
        conditions = set_condition(conditions, transcripts.CONDITION, step.ok, step.reason, step.message, gen, now)
    ok: bool | None = None if verdict.reason == "SpeakersUnknown" else verdict.ok
    typed.conditions = set_condition(conditions, "Ready", ok, verdict.reason, verdict.message, gen, now)
    if verdict.clip is not None:
        typed.audio = AudioInfo(
            duration_seconds=verdict.clip.duration, sample_rate=verdict.clip.sample_rate, sha256=verdict.clip.sha256
        )
    new = typed.patch()
    # the re-check loop looks again soon at a voice whose transcript is on its way
    result = step.reason if step.reason in transcripts.SOON else verdict.reason
    if not changed(status, new):
        return result
    await rt.kube.patch_status(names.VOICE_PLURAL, ns, name, new)
    body["status"] = {**status, **new}
    before = condition_of({"status": status}, "Ready") or {}
    if ok is False and (before.get("reason") != verdict.reason or before.get("status") != "False"):
        await rt.kube.event(body, verdict.reason, verdict.message, warning=True)
    if made := typed.transcript:
        await rt.kube.event(body, step.reason, f"{step.message}: {made.text[:200]!r}", warning=step.ok is False)
    return result


async def transcribed(
    rt: Runtime, ns: str, judged: Judged, status: dict[str, Any]
) -> tuple[transcripts.Step, Transcript | None, voices.Verdict]:
    """The transcript step for a voice with a valid clip (``transcripts.settle``), the transcript it
    made, and the Ready verdict as it stands after it (not Ready where the engine needs the text)."""
    if judged.spec is None:
        return transcripts.Step("none"), None, judged.verdict
    step, made = await transcripts.settle(rt, ns, judged.spec, judged.sha256, judged.data, transcript_of(status))
    verdict = judged.verdict
    if blocked := transcripts.needs_text_verdict(judged.engine, step):
        verdict = voices.Verdict(False, *blocked, verdict.clip)
    return step, made, verdict


@dataclass(frozen=True)
class Judged:
    """A voice's verdict and, for a valid reference clip, what transcribing it needs."""

    verdict: voices.Verdict
    spec: TtsVoiceSpec | None = None
    data: bytes | None = None
    engine: str | None = None

    @property
    def sha256(self) -> str | None:
        return self.verdict.clip.sha256 if self.verdict.ok and self.verdict.clip else None


def transcript_of(status: dict[str, Any]) -> Transcript | None:
    raw = status.get("transcript")
    try:
        return Transcript.model_validate(raw) if isinstance(raw, dict) else None
    except ValueError:
        return None


async def judge_voice(rt: Runtime, ns: str, spec: TtsVoiceSpec) -> Judged:
    verdict, data, engine = await _judge(rt, ns, spec)
    return Judged(verdict, spec if data is not None else None, data, engine)


async def _judge(rt: Runtime, ns: str, spec: TtsVoiceSpec) -> tuple[voices.Verdict, bytes | None, str | None]:
    deployment = await rt.kube.get_tts_deployment(ns, spec.deployment)
    if deployment is None:
        missing = f"TtsDeployment {spec.deployment!r} does not exist"
        return voices.Verdict(False, "DeploymentNotFound", missing), None, None
    engine = str((deployment.get("spec") or {}).get("engine") or "piper")
    if spec.speaker is not None:
        return voices.check_speaker(spec.speaker, (deployment.get("status") or {}).get("speakers")), None, engine
    assert spec.reference is not None
    audio = spec.reference.audio
    kind, ref = (
        ("configMapKeyRef", audio.config_map_key_ref)
        if audio.config_map_key_ref
        else ("secretKeyRef", audio.secret_key_ref)
    )
    assert ref is not None
    data = await rt.kube.read_key(ns, kind, ref.name, ref.key)
    if data is None:
        what = "ConfigMap" if kind == "configMapKeyRef" else "Secret"
        message = f"{what} {ref.name!r} has no key {ref.key!r} (or does not exist)"
        return voices.Verdict(False, "AudioNotFound", message), None, engine
    return voices.inspect_clip(data), data, engine

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
from typing import Any

import kopf
from kubernetes_asyncio.client.exceptions import ApiException
from tts_crds import names
from tts_crds.models import AudioInfo, InvalidSpec, TtsVoiceSpec, TtsVoiceStatus, parse_spec
from tts_crds.times import now_iso

from . import voices
from .runtime import Runtime, key_of, runtime_of
from .status import changed, condition_of, conditions_of, set_condition

log = logging.getLogger("tts_operator")

RECHECK_PERIOD = 30.0
# what may appear shortly (a clip written just after its TtsVoice, a model about to be created or
# to publish its speakers): look again soon, backing off to the normal re-check period
SOON = ("AudioNotFound", "DeploymentNotFound", "SpeakersUnknown")


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
    else:
        verdict = await judge_voice(rt, ns, spec)
    status = dict(body.get("status") or {})
    gen = body["metadata"].get("generation")
    ok: bool | None = None if verdict.reason == "SpeakersUnknown" else verdict.ok
    typed = TtsVoiceStatus(
        observed_generation=gen,
        conditions=set_condition(conditions_of(status), "Ready", ok, verdict.reason, verdict.message, gen, now_iso()),
    )
    if verdict.clip is not None:
        typed.audio = AudioInfo(
            duration_seconds=verdict.clip.duration, sample_rate=verdict.clip.sample_rate, sha256=verdict.clip.sha256
        )
    new = typed.patch()
    if not changed(status, new):
        return verdict.reason
    await rt.kube.patch_status(names.VOICE_PLURAL, ns, name, new)
    body["status"] = {**status, **new}
    before = condition_of({"status": status}, "Ready") or {}
    if ok is False and (before.get("reason") != verdict.reason or before.get("status") != "False"):
        await rt.kube.event(body, verdict.reason, verdict.message, warning=True)
    return verdict.reason


async def judge_voice(rt: Runtime, ns: str, spec: TtsVoiceSpec) -> voices.Verdict:
    deployment = await rt.kube.get_tts_deployment(ns, spec.deployment)
    if deployment is None:
        return voices.Verdict(False, "DeploymentNotFound", f"TtsDeployment {spec.deployment!r} does not exist")
    if spec.speaker is not None:
        return voices.check_speaker(spec.speaker, (deployment.get("status") or {}).get("speakers"))
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
        return voices.Verdict(False, "AudioNotFound", f"{what} {ref.name!r} has no key {ref.key!r} (or does not exist)")
    return voices.inspect_clip(data)

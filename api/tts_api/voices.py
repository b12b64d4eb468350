"""Voices (pure logic): checking an uploaded clip, the objects that store it, and what a request's
``voice`` means for the inference pod.

A request's ``voice`` is, in order: ``default``/empty (the model's default speaker), the name of a
TtsVoice of the same deployment (its ``speaker``, or its reference clip sent as ``ref_audio`` with
``ref_text``), or else a built-in speaker name passed through for the pod to check.
"""

from __future__ import annotations

import base64
import hashlib
import io
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import soundfile as sf
from tts_crds import clips, models, names
from tts_crds.http_errors import ApiError
from tts_crds.models import (
    MAX_NAME_LENGTH,
    NAME_PATTERN,
    Capability,
    Engine,
    InvalidSpec,
    SpecT,
    TtsDeploymentSpec,
    TtsVoiceSpec,
    parse_spec,
)

JSON = dict[str, Any]

# A ConfigMap holds at most 1 MiB in all; leave room for its metadata.
CONFIGMAP_CLIP_LIMIT = 1_000_000
ROUTER_MANAGER = "kube-tts-router"
_NAME = re.compile(NAME_PATTERN)


def check_resource_name(name: str, what: str) -> str:
    """A name the router gives a resource (a ``what``: voice, job) is a DNS-1035 label of at most 50
    characters (its children add prefixes and suffixes): no paths, dots or upper case. A 400 with code
    ``invalid_<what>_name`` naming the field otherwise."""
    code = f"invalid_{what}_name"
    if not name:
        raise ApiError(400, "name is required", code, "name")
    if len(name) > MAX_NAME_LENGTH or not _NAME.match(name):
        raise ApiError(
            400,
            f"name {name[:80]!r} is not a valid {what} name: use at most {MAX_NAME_LENGTH} lower-case letters, "
            "digits and '-', starting with a letter (no '/', '.', or spaces)",
            code,
            "name",
        )
    return name


def check_voice_name(name: str) -> str:
    return check_resource_name(name, "voice")


def configmap_name(voice: str) -> str:
    return f"tts-voice-{voice}"


@dataclass(frozen=True)
class Clip:
    data: bytes
    format: str  # wav or flac
    sample_rate: int
    channels: int
    frames: int
    samples: np.ndarray  # int16, shape (frames, channels)

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


# the kinds of clip problem (tts_crds.clips) as the API's (status, code)
CLIP_ERRORS: dict[str, tuple[int, str]] = {
    "empty": (400, "empty_audio"),
    "too_large": (413, "audio_too_large"),
    "format": (400, "unsupported_audio_format"),
    "channels": (400, "unsupported_audio_format"),
    "sample_rate": (400, "unsupported_sample_rate"),
    "too_short": (400, "audio_too_short"),
    "too_long": (400, "audio_too_long"),
    "silent": (400, "silent_audio"),
}


def _refuse(problem: clips.Problem) -> ApiError:
    status, code = CLIP_ERRORS[problem.kind]
    return ApiError(status, problem.message, code, "file")


def inspect_clip(data: bytes, max_bytes: int, min_seconds: float, max_seconds: float) -> Clip:
    """Decode an uploaded reference clip and check it against the reference-clip rules (``tts_crds.clips``)."""
    early = clips.size_problem(len(data), max_bytes)
    if early:
        raise _refuse(early)
    try:
        container = sf.info(io.BytesIO(data)).format
        samples, rate = sf.read(io.BytesIO(data), dtype="int16", always_2d=True)
    except (sf.SoundFileError, RuntimeError, ValueError, TypeError) as exc:
        message = f"the file is not audio that can be decoded (send {clips.FORMATS_TEXT})"
        raise ApiError(400, message, "invalid_audio", "file") from exc
    peak = float(np.max(np.abs(samples.astype(np.int32)))) / 32768 if samples.size else 0.0
    facts = clips.ClipFacts(len(data), container, int(rate), samples.shape[1], len(samples), peak)
    problem = clips.clip_problem(facts, max_bytes, min_seconds, max_seconds)
    if problem:
        raise _refuse(problem)
    return Clip(data, clips.FORMATS[container], int(rate), samples.shape[1], len(samples), samples)


def storable(clip: Clip, limit: int = CONFIGMAP_CLIP_LIMIT) -> Clip:
    """The clip as stored in a ConfigMap: as uploaded if it fits, else re-encoded losslessly as mono FLAC."""
    if len(clip.data) <= limit:
        return clip
    mono = clip.samples.astype(np.int32).mean(axis=1).round().astype(np.int16)
    buf = io.BytesIO()
    sf.write(buf, mono, clip.sample_rate, format="FLAC", subtype="PCM_16")
    data = buf.getvalue()
    if len(data) > limit:
        raise ApiError(
            413,
            f"the clip takes {len(data)} bytes even as mono FLAC; a Kubernetes ConfigMap holds at most about "
            f"{limit} bytes — send a shorter clip or one at a lower sample rate (16-24 kHz is plenty for cloning)",
            "audio_too_large",
            "file",
        )
    return Clip(data, "flac", clip.sample_rate, 1, len(mono), mono.reshape(-1, 1))


def voice_labels(model: str) -> dict[str, str]:
    return {
        names.LABEL_NAME: names.PROJECT,
        names.LABEL_COMPONENT: "voice",
        names.LABEL_MANAGED_BY: ROUTER_MANAGER,
        names.LABEL_DEPLOYMENT: model,
    }


def voice_objects(
    name: str, namespace: str, model: str, clip: Clip, transcript: str, language: str, description: str
) -> tuple[JSON, JSON]:
    """The TtsVoice and the ConfigMap with its clip (the owner reference is added once the voice exists)."""
    key = f"reference.{clip.format}"
    cm_name = configmap_name(name)
    spec = TtsVoiceSpec.model_validate(
        {
            "deployment": model,
            "reference": {"audio": {"configMapKeyRef": {"name": cm_name, "key": key}}, "text": transcript},
            "language": language,
            "description": description,
        }
    )
    voice = {
        "apiVersion": names.API_VERSION,
        "kind": names.VOICE_KIND,
        "metadata": {"name": name, "namespace": namespace, "labels": voice_labels(model)},
        "spec": spec.model_dump(by_alias=True, exclude_none=True),
    }
    configmap = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": cm_name,
            "namespace": namespace,
            "labels": voice_labels(model),
            "annotations": {
                f"{names.GROUP}/sha256": clip.sha256,
                f"{names.GROUP}/duration-seconds": f"{clip.duration:.3f}",
                f"{names.GROUP}/sample-rate": str(clip.sample_rate),
            },
        },
        "binaryData": {key: base64.b64encode(clip.data).decode()},
    }
    return voice, configmap


def _spec_or_none(model: type[SpecT], obj: JSON | None) -> SpecT | None:
    if obj is None:
        return None
    try:
        return parse_spec(model, obj.get("spec"))
    except InvalidSpec:
        return None


def capability_of(obj: JSON | None) -> Capability | None:
    """What a TtsDeployment serves, by its engine (ADR 0041); None when it does not exist."""
    if obj is None:
        return None
    return models.capability_of(str((obj.get("spec") or {}).get("engine") or Engine.PIPER))


def deployment_spec(obj: JSON | None) -> TtsDeploymentSpec | None:
    """A TtsDeployment's spec through the shared model (its defaults); None when missing or invalid."""
    return _spec_or_none(TtsDeploymentSpec, obj)


def voice_spec(obj: JSON | None) -> TtsVoiceSpec | None:
    """A TtsVoice's spec through the shared model; None when missing or invalid."""
    return _spec_or_none(TtsVoiceSpec, obj)


def voice_model(obj: JSON) -> str | None:
    """The TtsDeployment a TtsVoice belongs to."""
    spec = voice_spec(obj)
    return spec.deployment if spec else None


def condition(obj: JSON, ctype: str = "Ready") -> JSON | None:
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c.get("type") == ctype), None)


def voice_entry(obj: JSON) -> JSON:
    """A TtsVoice as the voices API lists it."""
    spec = voice_spec(obj)
    ready = condition(obj)
    return {
        "id": obj["metadata"]["name"],
        "object": "voice",
        "model": spec.deployment if spec else None,
        "type": "speaker" if spec and spec.speaker else "clone",
        "speaker": spec.speaker if spec else None,
        "language": spec.language if spec else None,
        "description": spec.description if spec else "",
        "ready": None if ready is None else ready.get("status") == "True",
        "reason": (ready or {}).get("reason"),
        "message": (ready or {}).get("message"),
        "audio": (obj.get("status") or {}).get("audio"),
        **transcript_fields(obj, spec),
        "created": obj["metadata"].get("creationTimestamp"),
    }


def transcript_of(obj: JSON, spec: TtsVoiceSpec | None) -> tuple[str | None, str | None]:
    """A cloned voice's transcript and where it came from: the spec's (``user``) always wins over the
    transcription model's in status (``transcribed``, ADR 0041)."""
    if spec is None or spec.reference is None:
        return None, None
    if spec.reference.text.strip():
        return spec.reference.text, "user"
    made = (obj.get("status") or {}).get("transcript") or {}
    text = made.get("text") if isinstance(made, dict) else None
    return (str(text), "transcribed") if text else (None, None)


def transcript_fields(obj: JSON, spec: TtsVoiceSpec | None) -> JSON:
    text, source = transcript_of(obj, spec)
    if spec is None or spec.reference is None:
        return {}
    transcribing = condition(obj, "Transcribed") or {}
    return {"transcript": text, "transcript_source": source, "transcription": transcribing.get("reason")}


@dataclass(frozen=True)
class Resolved:
    """What the pod is sent for a request's ``voice``."""

    voice: str
    clip: tuple[str, str, str] | None = None  # ("configmap" | "secret", name, key)
    ref_text: str | None = None
    speed: float | None = None  # the voice's default speed


def resolve(requested: str, model: str, voice: JSON | None, ad_hoc_reference: bool) -> Resolved:
    """Map a request's ``voice`` to what the inference pod needs; ``voice`` is the TtsVoice of that name."""
    if voice is None:
        return Resolved(requested or "default")
    try:
        spec = parse_spec(TtsVoiceSpec, voice.get("spec"))
    except InvalidSpec as exc:
        raise ApiError(400, f"voice {requested!r} has an invalid spec ({exc})", "voice_unavailable", "voice") from exc
    if spec.deployment != model:
        raise ApiError(
            400,
            f"voice {requested!r} belongs to model {spec.deployment!r}, not {model!r}",
            "voice_model_mismatch",
            "voice",
        )
    speed = spec.defaults.speed
    if spec.speaker:
        # the pod checks speaker names itself; the operator may not know them yet (model never served)
        return Resolved(spec.speaker, speed=speed)
    assert spec.reference is not None  # the CRD's CEL rule: exactly one of speaker or reference
    ready = condition(voice)
    if ready is not None and ready.get("status") == "False":
        # the operator decoded the clip and found it unusable: say why instead of sending it
        raise ApiError(
            400,
            f"voice {requested!r} is not ready: {ready.get('message') or ready.get('reason') or 'unknown reason'}",
            "voice_not_ready",
            "voice",
        )
    if ad_hoc_reference:
        raise ApiError(
            400,
            f"voice {requested!r} is a cloned voice; do not also send ref_audio",
            "conflicting_voice",
            "ref_audio",
        )
    source = spec.reference.audio
    if source.config_map_key_ref is not None:
        ref = ("configmap", source.config_map_key_ref.name, source.config_map_key_ref.key)
    else:
        assert source.secret_key_ref is not None
        ref = ("secret", source.secret_key_ref.name, source.secret_key_ref.key)
    return Resolved("default", clip=ref, ref_text=transcript_of(voice, spec)[0], speed=speed)

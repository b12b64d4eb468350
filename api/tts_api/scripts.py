"""A short script spoken straight through ``POST /v1/audio/speech`` (ADR 0052): the pure parts.

A request with ``roles`` has a plain-text script in ``input`` (the TtsJob script format). The script is
planned by the TtsJob planner itself (:func:`tts_crds.plan.build_plan`, so its lines, sentences and
pauses are exactly a TtsJob's), and each chunk of the plan becomes one :class:`Segment`: one ordinary
speech request to its role's model, which the router sends through its proxy one after another. The
segments are asked for as pcm at one sample rate (:func:`preset_rate`, then the first answer's), so
their bytes and the silences between them join into one stream that the router encodes
(``script_audio.ScriptEncoder``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pydantic import ValidationError
from tts_crds.http_errors import ApiError
from tts_crds.jobs import Role, TextFormat, TtsJobSpec
from tts_crds.plan import PlanError, build_plan
from tts_crds.speech import SpeechRequest

#: what the router encodes itself (libsndfile); aac has no encoder in the router image
SCRIPT_FORMATS = ("mp3", "opus", "flac", "wav", "pcm")
#: the rates Opus takes; it codes at 48 kHz inside, so asking every line at 48 kHz loses nothing
OPUS_RATES = (8000, 12000, 16000, 24000, 48000)
#: the rates MPEG audio (LAME) takes
MP3_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)


@dataclass(frozen=True)
class Segment:
    """One line (or a sentence-packed piece of a long line) of the script: one request to ``model``."""

    model: str
    voice: str
    text: str
    role: str
    pause_after_ms: int


def script_problem(body: SpeechRequest) -> ApiError | None:
    """What a script request asks that the router cannot do with a script; checked before any model wakes."""
    if body.response_format not in SCRIPT_FORMATS:
        return ApiError(
            400,
            f"response_format {body.response_format!r} is not available for a script (roles): "
            f"use one of {', '.join(SCRIPT_FORMATS)}",
            "unsupported_response_format",
            "response_format",
        )
    if body.timestamps is not None:
        return ApiError(
            400,
            "timestamps is not available for a script (roles): ask each line on its own, or render a TtsJob",
            "unsupported_parameter",
            "timestamps",
        )
    if body.ref_audio is not None or body.ref_text is not None:
        field = "ref_audio" if body.ref_audio is not None else "ref_text"
        return ApiError(
            400,
            f"{field} is not available for a script (roles): give the role a TtsVoice as its voice",
            "unsupported_parameter",
            field,
        )
    return None


def plan_segments(body: SpeechRequest, model: str, model_of: Callable[[str], str | None]) -> list[Segment]:
    """The script's segments in order. ``model`` is the request's TtsDeployment (the roles' default);
    ``model_of`` is the TtsDeployment a role's ``model`` (a name or an alias) names, or None when there
    is none (a 404 naming the role). A bad line is a 400 naming ``input`` and the line."""
    roles: dict[str, Role] = {}
    for name, role in (body.roles or {}).items():
        deployment = model
        if role.model is not None:
            found = model_of(role.model)
            if found is None:
                raise ApiError(
                    404,
                    f"roles.{name}.model: model {role.model!r} does not exist (see GET /v1/models)",
                    "model_not_found",
                    f"roles.{name}.model",
                )
            deployment = found
        roles[name] = Role(voice=role.voice, deployment=deployment)
    try:
        spec = TtsJobSpec(
            deployment=model, text=body.input, text_format=TextFormat.SCRIPT, roles=roles, speed=body.speed
        )
        plan = build_plan(spec, None, name="speech", namespace="speech", uid="", fields=("input", "roles"))
    except PlanError as exc:
        raise ApiError(400, str(exc), "invalid_script", exc.field) from exc
    except ValidationError as exc:  # the roles and the text passed SpeechRequest's checks: not expected
        raise ApiError(400, f"input: {exc.errors()[0]['msg']}", "invalid_script", "input") from exc
    return [Segment(c.model, c.voice, c.text, c.role, c.pause_after_ms) for c in plan.chunks()]


def preset_rate(fmt: str, asked: int | None) -> int | None:
    """The rate every segment is asked at before any has answered: the client's ``sample_rate`` (for
    opus the next rate Opus takes, else 48 kHz), 48 kHz for opus, else None: the first segment's
    model's own, which then every later segment is asked at."""
    if fmt == "opus":
        return next((r for r in OPUS_RATES if asked is not None and r >= asked), OPUS_RATES[-1])
    return asked


def codec_rate(fmt: str, rate: int) -> int:
    """The rate ``fmt`` is encoded at for audio at ``rate``: ``rate`` where the codec takes it, else the
    next one up that it does (the router then resamples what comes at another rate)."""
    rates = {"opus": OPUS_RATES, "mp3": MP3_RATES}.get(fmt)
    if rates is None or rate in rates:
        return rate
    return next((r for r in rates if r >= rate), rates[-1])


def pause_bytes(pause_ms: int, rate: int) -> bytes:
    """``pause_ms`` of 16-bit mono silence at ``rate``, rounded to the sample (as the TtsJob join does)."""
    return bytes(2 * round(pause_ms * rate / 1000))

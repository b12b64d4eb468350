"""The transcription contract shared by the router and the inference server (ADR 0041): OpenAI's
response formats, timestamp granularities and the checks of the fields both judge, so a client gets
the same 400 whichever of the two refuses it (the router before waking a model)."""

from __future__ import annotations

from collections.abc import Sequence

from .http_errors import ApiError

#: response_format -> the media type of the answer
TRANSCRIPTION_MEDIA_TYPES: dict[str, str] = {
    "json": "application/json",
    "text": "text/plain; charset=utf-8",
    "verbose_json": "application/json",
    "srt": "text/plain; charset=utf-8",  # what OpenAI sends; application/x-subrip is not registered
    "vtt": "text/vtt; charset=utf-8",
}
TRANSCRIPTION_FORMATS = frozenset(TRANSCRIPTION_MEDIA_TYPES)
GRANULARITIES = frozenset({"word", "segment"})


def check_response_format(raw: str) -> str:
    """One of OpenAI's five formats; empty means json."""
    fmt = raw.strip() or "json"
    if fmt not in TRANSCRIPTION_FORMATS:
        raise ApiError(
            400,
            f"response_format {fmt!r} is not one of {', '.join(sorted(TRANSCRIPTION_FORMATS))}",
            "invalid_value",
            "response_format",
        )
    return fmt


def check_temperature(raw: str) -> float:
    """Between 0 and 1, as OpenAI takes it; empty means 0."""
    if not raw.strip():
        return 0.0
    try:
        value = float(raw)
    except ValueError:
        raise ApiError(400, f"temperature {raw!r} is not a number", "invalid_value", "temperature") from None
    if not 0.0 <= value <= 1.0:  # NaN fails this too
        raise ApiError(400, f"temperature must be between 0 and 1, not {raw}", "invalid_value", "temperature")
    return value


def check_granularities(values: Sequence[str], response_format: str) -> frozenset[str]:
    """``word`` and/or ``segment``; they shape verbose_json only, so any other format refuses them."""
    wanted = frozenset(v.strip() for v in values if v.strip())
    unknown = wanted - GRANULARITIES
    if unknown:
        raise ApiError(
            400,
            f"timestamp_granularities takes word and segment, not {', '.join(sorted(unknown))}",
            "invalid_value",
            "timestamp_granularities",
        )
    if wanted and response_format != "verbose_json":
        raise ApiError(
            400,
            "timestamp_granularities needs response_format verbose_json",
            "invalid_value",
            "timestamp_granularities",
        )
    return wanted

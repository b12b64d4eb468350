"""The router's side of /v1/audio/transcriptions without a cluster: which model, which options."""

from __future__ import annotations

import pytest
from tts_api.routes.transcriptions import check_options, pick_model, upstream_form
from tts_crds.http_errors import ApiError
from tts_crds.models import Capability, capability_of


def _dep(engine: str) -> dict:
    return {"metadata": {"name": "x"}, "spec": {"engine": engine, "model": {"uri": "package://x"}}}


DEPLOYMENTS = {"joe": _dep("piper"), "ears": _dep("whisper"), "big-ears": _dep("whisper")}


def test_every_engine_has_a_capability_and_whisper_transcribes():
    assert capability_of("whisper") == Capability.TRANSCRIPTION
    assert {capability_of(e) for e in ("piper", "espeak", "kokoro", "pocket-tts")} == {Capability.SPEECH}
    assert capability_of("an-engine-from-a-newer-crd") == Capability.SPEECH


def test_whisper_1_means_the_default_or_first_transcription_model():
    assert pick_model("ears", DEPLOYMENTS) == "ears"
    assert pick_model("whisper-1", DEPLOYMENTS) == "big-ears"  # the first by name
    assert pick_model("whisper-1", DEPLOYMENTS, default="ears") == "ears"
    assert pick_model("whisper-1", {"joe": _dep("piper")}) == "whisper-1"  # none: the caller says 404
    # a TtsDeployment really called whisper-1 is taken at its word
    assert pick_model("whisper-1", {**DEPLOYMENTS, "whisper-1": _dep("whisper")}) == "whisper-1"
    assert pick_model("nope", DEPLOYMENTS) == "nope"


@pytest.mark.parametrize(
    ("fmt", "grains", "temperature", "field"),
    [
        ("xml", [], None, "response_format"),
        ("verbose_json", ["sentence"], None, "timestamp_granularities"),
        ("json", ["word"], None, "timestamp_granularities"),  # words need verbose_json, as at OpenAI
        ("json", [], 1.5, "temperature"),
    ],
)
def test_bad_options_are_400s_that_name_the_field(fmt, grains, temperature, field):
    with pytest.raises(ApiError) as err:
        check_options(fmt, grains, temperature)
    assert err.value.status == 400 and err.value.param == field


def test_good_options_pass():
    for fmt in ("json", "text", "verbose_json", "srt", "vtt"):
        check_options(fmt, [], None)
    check_options("verbose_json", ["word", "segment"], 0.0)


def test_the_upstream_form_repeats_list_fields_and_can_be_built_again():
    fields = {"model": "ears", "timestamp_granularities[]": ["word", "segment"]}
    first, second = (upstream_form(b"RIFF", "a.wav", "audio/wav", fields) for _ in range(2))
    assert first is not second
    names = [f[0]["name"] for f in first._fields]
    assert names == ["file", "model", "timestamp_granularities[]", "timestamp_granularities[]"]

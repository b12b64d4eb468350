"""Which step a voice's transcript takes next (tts_operator.transcripts.next_step, pure)."""

from __future__ import annotations

import pytest
from tts_api.voices import transcript_of
from tts_crds.models import Transcript, TtsVoiceSpec
from tts_operator.transcripts import Step, Transcriber, language_hint, needs_text_verdict, next_step

SHA = "a" * 64


def _spec(text: str = "", speaker: bool = False) -> TtsVoiceSpec:
    if speaker:
        return TtsVoiceSpec.model_validate({"deployment": "joe", "speaker": "alba"})
    ref = {"audio": {"configMapKeyRef": {"name": "c", "key": "k"}}, "text": text}
    return TtsVoiceSpec.model_validate({"deployment": "joe", "reference": ref, "language": "zh-CN"})


def test_nothing_to_do_with_a_transcript_in_the_spec_a_speaker_or_no_valid_clip():
    ears = [Transcriber("ears", 0, None)]
    assert next_step(_spec("I said this."), "ns", SHA, None, ears).action == "none"
    assert next_step(_spec(speaker=True), "ns", SHA, None, ears).action == "none"
    assert next_step(_spec(), "ns", None, None, ears).action == "none"  # the clip is not valid (yet)


def test_a_transcript_of_this_very_clip_is_kept_and_a_new_clip_is_heard_again():
    made = Transcript(text="hello there", model="ears", audio_sha256=SHA)
    kept = next_step(_spec(), "ns", SHA, made, [])
    assert (kept.action, kept.ok, kept.reason) == ("keep", True, "Transcribed")
    again = next_step(_spec(), "ns", "b" * 64, made, [Transcriber("ears", 1, "10.0.0.9")])
    assert (again.action, again.model) == ("call", "ears")
    silent = next_step(_spec(), "ns", SHA, Transcript(text="", model="ears", audio_sha256=SHA), [])
    assert (silent.action, silent.ok, silent.reason) == ("keep", False, "NothingHeard")


def test_without_a_transcription_model_the_condition_says_what_to_deploy():
    step = next_step(_spec(), "team-a", SHA, None, [])
    assert (step.action, step.ok, step.reason) == ("missing", False, "NoTranscriptionModel")
    assert "engine: whisper" in step.message and "team-a" in step.message and "spec.reference.text" in step.message


@pytest.mark.parametrize(
    ("found", "action"),
    [
        ([Transcriber("ears", 0, None)], "wake"),
        ([Transcriber("ears", 1, None)], "wait"),
        ([Transcriber("ears", 1, "10.0.0.9")], "call"),
        # the first by name is the namespace's transcription model
        ([Transcriber("zz", 1, "10.0.0.8"), Transcriber("ears", 0, None)], "wake"),
    ],
)
def test_a_sleeping_model_is_woken_a_starting_one_awaited_a_ready_one_asked(found, action):
    step = next_step(_spec(), "ns", SHA, None, found)
    assert (step.action, step.model, step.reason) == (action, "ears", "Transcribing")
    assert step.ok is None


def test_only_engines_that_need_the_text_keep_a_voice_from_ready():
    missing = Step("missing", False, "NoTranscriptionModel", "deploy one")
    assert needs_text_verdict("pocket-tts", missing) is None  # clones from the audio alone
    assert needs_text_verdict("piper", Step("keep", True, "Transcribed")) is None


def test_language_hints_are_whisper_codes():
    assert language_hint("zh-CN") == "zh"
    assert language_hint("en") == "en"
    assert language_hint("yue") is None  # three-letter tags: let the model detect


def test_the_router_prefers_the_spec_transcript_over_the_models():
    status = {"transcript": {"text": "what the model heard", "audioSha256": SHA}}
    assert transcript_of({"status": status}, _spec()) == ("what the model heard", "transcribed")
    assert transcript_of({"status": status}, _spec("what I said")) == ("what I said", "user")
    assert transcript_of({}, _spec()) == (None, None)
    assert transcript_of({}, _spec(speaker=True)) == (None, None)


def test_an_engine_that_needs_the_text_is_not_ready_without_one(monkeypatch):
    from tts_crds.models import Engine
    from tts_operator import transcripts

    monkeypatch.setattr(transcripts, "NEEDS_REFERENCE_TEXT", frozenset({Engine.POCKET_TTS}))
    missing = Step("missing", False, "NoTranscriptionModel", "deploy one")
    reason, message = transcripts.needs_text_verdict("pocket-tts", missing)
    assert reason == "TranscriptNeeded" and "deploy one" in message
    assert transcripts.needs_text_verdict("pocket-tts", Step("keep", True, "Transcribed")) is None

"""OpenAI-client names and voice blends (ADR 0042), as pure logic: the blend grammar, who answers to a
model alias (and the conflict rules), the default voice mapping, the router's voice resolution, the
operator's Aliases condition and the engines' fallback resolution and style mixing."""

from __future__ import annotations

import numpy as np
import pytest
from tts_api.aliases import ModelVoices, model_table, model_voices, resolve_voice
from tts_crds import aliases, blends
from tts_crds.aliases import OPENAI_MODELS, OPENAI_VOICES, Claimant, alias_table, default_voice_aliases
from tts_crds.http_errors import ApiError
from tts_inference.engines.base import Engine, EngineError, SynthesisOptions, Voice
from tts_inference.engines.kokoro_common import base_voice, style_pack
from tts_operator.status import aliases_verdict, rivals

# the kokoro-onnx sample's voices (the cpu image bakes them) and part of Kokoro-82M's English set
JA = [("jf_alpha", "ja"), ("jf_gongitsune", "ja"), ("jf_nezumi", "ja"), ("jf_tebukuro", "ja"), ("jm_kumo", "ja")]
EN = [
    ("af_alloy", "en-US"),
    ("af_bella", "en-US"),
    ("af_heart", "en-US"),
    ("af_nova", "en-US"),
    ("af_sky", "en-US"),
    ("am_echo", "en-US"),
    ("am_michael", "en-US"),
    ("am_onyx", "en-US"),
    ("bf_emma", "en-GB"),
    ("bm_fable", "en-GB"),
    ("bm_george", "en-GB"),
    ("jf_alpha", "ja"),
]


# --- blends -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "parts"),
    [
        ("af_bella(0.7)+af_sky(0.3)", (("af_bella", 0.7), ("af_sky", 0.3))),
        ("af_bella(7) + af_sky(3)", (("af_bella", 0.7), ("af_sky", 0.3))),  # weights are normalised
        ("af_bella+af_sky", (("af_bella", 0.5), ("af_sky", 0.5))),  # a weight left out is 1
        ("af_bella(2)+af_sky", (("af_bella", 2 / 3), ("af_sky", 1 / 3))),
        ("af_bella(.5)", (("af_bella", 1.0),)),
    ],
)
def test_blends_parse_with_normalised_weights(text, parts):
    blend = blends.parse(text)
    assert blend.voices == tuple(v for v, _ in parts)
    assert [w for _, w in blend.parts] == pytest.approx([w for _, w in parts])
    assert sum(w for _, w in blend.parts) == pytest.approx(1.0)


def test_a_blend_has_one_canonical_form():
    assert blends.parse("af_bella(7)+af_sky(3)").canonical() == "af_bella(0.7)+af_sky(0.3)"
    once = blends.parse("a(1)+b(2)").canonical()
    assert once == "a(0.3333)+b(0.6667)" and blends.parse(once).canonical() == once


@pytest.mark.parametrize(
    ("text", "match", "part"),
    [
        ("af_bella(0)+af_sky", "weight must be > 0", "af_bella"),
        ("af_bella(101)+af_sky", "<= 100", "af_bella"),
        ("af_bella(-1)+af_sky", "not voice or voice\\(weight\\)", "af_bella(-1)"),
        ("af_bella(x)+af_sky", "not voice or voice\\(weight\\)", "af_bella(x)"),
        ("af_bella++af_sky", "not voice or voice\\(weight\\)", ""),
        ("af_bella+af_bella", "appears twice", "af_bella"),
        ("a+b+c+d+e", "at most 4 voices", None),
        ("af bella+af_sky", "not voice or voice\\(weight\\)", "af bella"),
    ],
)
def test_bad_blends_say_what_is_wrong_and_name_the_part(text, match, part):
    with pytest.raises(blends.BlendError, match=match) as caught:
        blends.parse(text)
    assert caught.value.part == part


def test_only_plus_or_parentheses_make_a_blend():
    assert not blends.is_blend("af_bella") and not blends.is_blend("en-us")
    assert blends.is_blend("a+b") and blends.is_blend("af_bella(1)")


def test_check_voices_names_the_first_unknown_part():
    with pytest.raises(blends.BlendError, match="'af_nobody' is not a voice") as caught:
        blends.check_voices(blends.parse("af_bella+af_nobody"), {"af_bella"})
    assert caught.value.part == "af_nobody"


def test_only_kokoro_blends():
    assert blends.can_blend("kokoro")
    assert not any(blends.can_blend(e) for e in ("piper", "espeak", "pocket-tts", "whisper", "newer-engine"))


# --- model aliases ------------------------------------------------------------------------------
def test_openai_model_names_reach_the_default_model_unless_a_model_claims_them():
    table = alias_table([Claimant("joe", "2026-01-01T00:00:00Z", ("tts-1-hd",)), Claimant("k", "2026", ())], "k")
    assert table.owners == {"tts-1-hd": "joe", "tts-1": "k", "gpt-4o-mini-tts": "k"}
    assert table.resolve("tts-1", ["joe", "k"]) == "k" and table.resolve("joe", ["joe", "k"]) == "joe"
    assert table.resolve("nothing", ["joe"]) == "nothing"  # the caller answers 404
    assert table.aliases_of("joe") == ["tts-1-hd"] and table.aliases_of("k") == ["gpt-4o-mini-tts", "tts-1"]


def test_the_older_claimant_keeps_an_alias_and_the_later_one_is_in_conflict():
    older = Claimant("b-old", "2026-01-01T00:00:00Z", ("narrator",))
    newer = Claimant("a-new", "2026-02-01T00:00:00Z", ("narrator", "reader"))
    table = alias_table([newer, older], None)
    assert table.owners == {"narrator": "b-old", "reader": "a-new"}
    assert table.conflicts == {"a-new": [("narrator", "alias 'narrator' is already claimed by model 'b-old'")]}
    # same creation time: the name decides, so every router and the operator agree
    tie = alias_table([Claimant("y", "t", ("x1",)), Claimant("x", "t", ("x1",))], None)
    assert tie.owners["x1"] == "x" and list(tie.conflicts) == ["y"]


def test_an_alias_that_is_a_model_name_is_a_conflict_and_the_model_wins():
    table = alias_table([Claimant("joe", "1", ()), Claimant("kokoro", "2", ("joe", "tts-1"))], "joe")
    assert table.conflicts == {"kokoro": [("joe", "alias 'joe' is the name of model 'joe'")]}
    assert table.resolve("joe", ["joe", "kokoro"]) == "joe"
    assert table.owners["tts-1"] == "kokoro"  # a claim beats the platform default


def test_a_model_named_like_an_openai_model_answers_as_itself():
    table = alias_table([Claimant("tts-1", "1", ())], "tts-1")
    assert "tts-1" not in table.owners and table.resolve("tts-1", ["tts-1"]) == "tts-1"


def test_the_default_model_is_the_configured_speech_model_or_the_first_by_name():
    assert aliases.default_model(["kokoro", "joe"], "") == "joe"
    assert aliases.default_model(["kokoro", "joe"], "kokoro") == "kokoro"
    assert aliases.default_model(["kokoro"], "gone") is None  # never a model that is not there
    assert aliases.default_model([], "") is None


def _obj(name, created, engine="piper", **spec):
    return {
        "metadata": {"name": name, "creationTimestamp": created},
        "spec": {"engine": engine, "model": {"uri": "package://x"}, **spec},
    }


def test_the_router_table_gives_openai_names_to_speech_models_only():
    objs = {
        "asr": _obj("asr", "1", engine="whisper"),
        "joe": _obj("joe", "2"),
        "bad": {"metadata": {"name": "bad"}, "spec": {"model": {"uri": "nope"}}},  # invalid: claims nothing
    }
    table = model_table(objs, "")
    assert table.owners == dict.fromkeys(OPENAI_MODELS, "joe")
    assert model_table(objs, "asr").owners == {}  # a transcription model is no default for speech


def test_the_operator_reports_the_later_claimant_and_its_rivals():
    objs = [_obj("first", "2026-01-01T00:00:00Z", modelAliases=["narrator"])]
    objs.append(_obj("second", "2026-01-02T00:00:00Z", modelAliases=["narrator", "first"]))
    ok, reason, message = aliases_verdict("second", objs)
    assert (ok, reason) == (False, "AliasConflict")
    assert "'narrator' is already claimed by model 'first'" in message and "name of model 'first'" in message
    assert aliases_verdict("first", objs) == (True, "Claimed", "answers to narrator")
    assert aliases_verdict("plain", [*objs, _obj("plain", "3")]) is None
    assert rivals("first", objs) == ["second"] and rivals("second", objs) == ["first"]


# --- voice aliases ------------------------------------------------------------------------------
def test_every_openai_voice_maps_to_a_voice_of_a_one_voice_model():
    assert default_voice_aliases([("joe", "en-US")], "joe") == dict.fromkeys(OPENAI_VOICES, "joe")
    assert default_voice_aliases([], None) == {}


def test_kokoro_voices_named_like_openai_ones_are_taken_and_the_rest_match_gender():
    mapping = default_voice_aliases(EN, "af_heart")
    assert set(mapping) == set(OPENAI_VOICES)
    for alias, voice in {"alloy": "af_alloy", "nova": "af_nova", "echo": "am_echo", "onyx": "am_onyx"}.items():
        assert mapping[alias] == voice
    assert mapping["fable"] == "bm_fable"
    for alias, gender in OPENAI_VOICES.items():
        assert mapping[alias][1] == gender, (alias, mapping[alias])
    # English before other languages, the better-graded voices first
    assert mapping["coral"] == "af_heart" and not any(v.startswith("j") for v in mapping.values())


def test_a_model_with_one_gender_only_uses_it_for_all_names():
    mapping = default_voice_aliases([("jf_alpha", "ja"), ("jf_nezumi", "ja")], "jf_alpha")
    assert set(mapping.values()) == {"jf_alpha", "jf_nezumi"}


def test_the_japanese_sample_maps_male_names_to_its_male_voice():
    mapping = default_voice_aliases(JA, "jf_alpha")
    assert {mapping[a] for a, g in OPENAI_VOICES.items() if g == "m"} == {"jm_kumo"}
    assert {mapping[a][:3] for a, g in OPENAI_VOICES.items() if g == "f"} == {"jf_"}


def test_espeak_languages_map_to_english_ones_default_first():
    voices = [("cmn", "cmn"), ("en-gb", "en-GB"), ("en-us", "en-US"), ("fr-fr", "fr-FR")]
    mapping = default_voice_aliases(voices, "en-us")
    assert set(mapping.values()) == {"en-us", "en-gb"}
    assert mapping["alloy"] == "en-us"


def test_the_mapping_is_deterministic_whatever_the_order():
    assert default_voice_aliases(list(reversed(EN)), "af_heart") == default_voice_aliases(EN, "af_heart")


def test_overrides_win_and_real_voice_names_are_never_shadowed():
    table = aliases.voice_aliases([("alloy", "en"), ("af_bella", "en")], {"nova": "af_bella", "alloy": "x"}, None)
    assert table["nova"] == "af_bella" and "alloy" not in table


# --- the router's resolution --------------------------------------------------------------------
def _kokoro(builtin=frozenset(v for v, _ in EN), **overrides) -> ModelVoices:
    known = builtin if builtin is None else frozenset(builtin)
    pairs = [p for p in EN if known is None or p[0] in known]
    table = aliases.voice_aliases(pairs, overrides, "af_heart") if known is not None else dict(overrides)
    return ModelVoices("kokoro", "kokoro", known, table)


def _refused(mv: ModelVoices, voice: str) -> ApiError:
    with pytest.raises(ApiError) as caught:
        resolve_voice(mv, voice)
    return caught.value


def test_real_voices_pass_and_aliases_resolve():
    mv = _kokoro()
    assert resolve_voice(mv, "af_bella") == "af_bella" and resolve_voice(mv, "default") == "default"
    assert resolve_voice(mv, "alloy") == "af_alloy" and resolve_voice(mv, "cedar")[1] == "m"
    assert resolve_voice(_kokoro(alloy="af_bella"), "alloy") == "af_bella"


def test_unknown_names_pass_through_for_the_pod_to_refuse():
    assert resolve_voice(_kokoro(), "nobody") == "nobody"


def test_an_override_naming_a_missing_voice_is_voice_not_found():
    err = _refused(_kokoro(alloy="af_gone"), "alloy")
    assert (err.status, err.code, err.param) == (400, "voice_not_found", "voice") and "'af_gone'" in err.message


def test_blends_are_checked_and_normalised_aliases_included():
    mv = _kokoro()
    assert resolve_voice(mv, "af_bella(7)+af_sky(3)") == "af_bella(0.7)+af_sky(0.3)"
    assert resolve_voice(mv, "alloy+echo") == "af_alloy(0.5)+am_echo(0.5)"
    assert resolve_voice(_kokoro(nova="af_bella(0.7)+af_sky(0.3)"), "nova") == "af_bella(0.7)+af_sky(0.3)"


def test_a_blend_part_the_model_lacks_is_named_in_a_400():
    err = _refused(_kokoro(), "af_bella(0.7)+af_nobody(0.3)")
    assert (err.status, err.code) == (400, "voice_not_found") and "'af_nobody'" in err.message


def test_a_malformed_blend_is_invalid_voice_blend():
    err = _refused(_kokoro(), "af_bella(0)+af_sky")
    assert (err.status, err.code, err.param) == (400, "invalid_voice_blend", "voice")
    assert _refused(_kokoro(mix="af_bella+af_sky"), "mix+af_sky").code == "invalid_voice_blend"  # no nesting


def test_engines_that_cannot_blend_refuse_blends():
    mv = ModelVoices("joe", "piper", frozenset({"joe"}), {})
    err = _refused(mv, "joe(0.5)+joe2(0.5)")
    assert (err.status, err.code) == (400, "voice_blend_unsupported") and "kokoro" in err.message


def test_without_known_voices_blends_pass_normalised_for_the_pod_to_check():
    assert resolve_voice(_kokoro(builtin=None), "af_bella(7)+af_x(3)") == "af_bella(0.7)+af_x(0.3)"
    assert resolve_voice(_kokoro(builtin=None), "alloy") == "alloy"  # the pod maps it the same way


def test_model_voices_reads_the_spec_and_the_pods_list():
    obj = _obj("k", "1", engine="kokoro", voiceAliases={"alloy": "af_bella"})
    listed = {"default": "af_heart", "data": [{"id": v, "language": lang} for v, lang in EN]}
    mv = model_voices("k", obj, listed)
    assert mv.engine == "kokoro" and "af_sky" in (mv.builtin or ()) and mv.aliases["alloy"] == "af_bella"
    assert model_voices("k", obj, None) == ModelVoices("k", "kokoro", None, {"alloy": "af_bella"})


# --- the engines --------------------------------------------------------------------------------
class Mixer(Engine):
    name = "mixer"
    blends = True

    def load(self) -> None: ...

    @property
    def sample_rate(self) -> int:
        return 24000

    def voices(self) -> list[Voice]:
        return [Voice(v, v, lang) for v, lang in EN]

    @property
    def default_voice(self) -> str:
        return "af_heart"

    def synthesize(self, sentences, voice, options: SynthesisOptions):
        yield np.zeros(1, dtype=np.int16)


def test_engines_map_openai_names_as_the_router_does_and_check_blends():
    engine = Mixer("", "")
    assert engine.resolve_voice("alloy") == default_voice_aliases(EN, "af_heart")["alloy"]
    assert engine.resolve_voice("af_bella(3)+nova(1)") == "af_bella(0.75)+af_nova(0.25)"
    with pytest.raises(EngineError, match="'af_nobody' is not a voice"):
        engine.resolve_voice("af_bella+af_nobody")
    with pytest.raises(EngineError, match="unknown voice 'nobody'"):
        engine.resolve_voice("nobody")
    engine.blends = False
    with pytest.raises(EngineError, match="cannot blend"):
        engine.resolve_voice("af_bella+af_sky")


def test_style_packs_mix_by_weight_and_the_first_voice_sets_the_language():
    packs = {"af_bella": np.ones((510, 1, 256), np.float32), "jf_alpha": np.full((510, 1, 256), 3.0, np.float32)}
    mixed = style_pack(packs, "af_bella(0.75)+jf_alpha(0.25)")
    assert mixed.shape == (510, 1, 256) and np.allclose(mixed, 1.5)
    assert style_pack(packs, "af_bella") is packs["af_bella"]
    assert base_voice("jf_alpha(0.5)+af_bella(0.5)") == "jf_alpha" and base_voice("af_bella") == "af_bella"

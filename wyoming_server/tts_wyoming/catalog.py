"""The router's models and voices as Wyoming ``info``, and Wyoming voice requests as (model, voice).

Pure: built from the JSON of ``GET /v1/models`` and ``GET /v1/audio/voices``. Each voice a speech
model speaks is one Wyoming voice named ``<model>/<voice>`` (Home Assistant lists voices, not
speakers, in its pipeline settings); a model whose voices are not known yet (it never woke since
the router started) is one voice named after the model, speaking its default voice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from wyoming.info import Attribution, Info, TtsProgram, TtsVoice
from wyoming.tts import SynthesizeVoice

JSON = dict[str, Any]
PROJECT_URL = "https://github.com/kube-tts/kube-tts"
DEFAULT_VOICE = "default"
# where each engine (and so the voice's origin and licence) is described
ENGINE_URLS = {
    "piper": "https://github.com/OHF-Voice/piper1-gpl",
    "espeak": "https://github.com/espeak-ng/espeak-ng",
    "kokoro": "https://huggingface.co/hexgrad/Kokoro-82M",
    "pocket-tts": "https://github.com/kyutai-labs/pocket-tts",
}
SEPARATOR = "/"


class UnknownVoice(LookupError):
    """No model or voice answers to the name; the message lists what does."""


def language_tag(value: str | None) -> str | None:
    """``en-us`` / ``en_US`` as ``en-US`` (BCP 47 case); None when there is none."""
    if not value:
        return None
    parts = value.replace("_", "-").split("-")
    return "-".join([parts[0].lower(), *(p.upper() if len(p) == 2 else p for p in parts[1:])])


@dataclass(frozen=True)
class Entry:
    """One Wyoming voice: a model's voice (or the model itself, when ``voice`` is the default)."""

    name: str
    model: str
    voice: str
    engine: str | None
    languages: tuple[str, ...]
    default: bool = False

    def as_tts_voice(self) -> TtsVoice:
        engine = self.engine or "unknown engine"
        return TtsVoice(
            name=self.name,
            description=f"{self.voice} ({self.model}, {engine})"
            if self.name != self.model
            else f"{self.model} ({engine})",
            attribution=Attribution(name=f"{engine} via kube-tts", url=ENGINE_URLS.get(self.engine or "", PROJECT_URL)),
            installed=True,
            version=None,
            languages=list(self.languages),
        )


@dataclass(frozen=True)
class Catalog:
    entries: tuple[Entry, ...] = ()
    default_model: str | None = None
    speakers: dict[str, list[str]] = field(default_factory=dict)  # model -> its voices

    @classmethod
    def build(cls, models: list[JSON], voices: list[JSON], preferred: str = "") -> Catalog:
        speech = [m for m in models if (m.get("capability") or "speech") == "speech" and m.get("id")]
        entries: list[Entry] = []
        speakers: dict[str, list[str]] = {}
        for model in speech:
            mine = [v for v in voices if v.get("model") == model["id"] and v.get("id")]
            speakers[model["id"]] = [str(v["id"]) for v in mine]
            entries.extend(_entries(model, mine))
        names = [m["id"] for m in speech]
        default = preferred if preferred in names else (names[0] if names else None)
        return cls(tuple(entries), default, speakers)

    def info(self, version: str, description: str) -> Info:
        program = TtsProgram(
            name="kube-tts",
            description=description,
            attribution=Attribution(name="kube-tts", url=PROJECT_URL),
            installed=True,
            version=version,
            voices=[e.as_tts_voice() for e in self.entries],
            supports_synthesize_streaming=True,
        )
        return Info(tts=[program])

    def resolve(self, wanted: SynthesizeVoice | None) -> tuple[str, str]:
        """The (model, voice) to ask the router for; raises UnknownVoice."""
        if wanted is not None and wanted.name:
            return self._by_name(wanted.name, wanted.speaker)
        if wanted is not None and wanted.language:
            return self._by_language(wanted.language)
        if self.default_model is None:
            raise UnknownVoice("the router lists no speech model: create a TtsDeployment first")
        return self.default_model, DEFAULT_VOICE

    def _by_name(self, name: str, speaker: str | None) -> tuple[str, str]:
        model, sep, voice = name.partition(SEPARATOR)
        if sep:
            return model, voice or DEFAULT_VOICE  # the router checks both and answers 404/400
        if name in self.speakers:
            return name, speaker or DEFAULT_VOICE
        owners = [e for e in self.entries if e.voice == name]
        if len(owners) == 1:
            return owners[0].model, name
        known = ", ".join(e.name for e in self.entries) or "none"
        if owners:
            raise UnknownVoice(f"voice {name!r} is spoken by several models: name one as <model>/{name} ({known})")
        raise UnknownVoice(f"no model or voice is called {name!r}; the voices are: {known}")

    def _by_language(self, language: str) -> tuple[str, str]:
        tag = language_tag(language) or ""
        base = tag.split("-")[0]
        matches = [e for e in self.entries if tag in e.languages] or [
            e for e in self.entries if any(lang.split("-")[0] == base for lang in e.languages)
        ]
        if not matches:
            raise UnknownVoice(f"no voice speaks {language!r}")
        best = sorted(matches, key=lambda e: (e.model != self.default_model, not e.default))[0]
        return best.model, best.voice


def _entries(model: JSON, voices: list[JSON]) -> list[Entry]:
    name, engine = str(model["id"]), model.get("engine")
    if not voices:
        return [Entry(name, name, DEFAULT_VOICE, engine, (), default=True)]
    default = model.get("default_voice")
    return [
        Entry(
            f"{name}{SEPARATOR}{v['id']}",
            name,
            str(v["id"]),
            engine,
            tuple(t for t in [language_tag(v.get("language"))] if t),
            default=bool(v.get("default")) or v.get("id") == default,
        )
        for v in voices
    ]

"""OpenAI-client names (pure; ADR 0042): model aliases such as ``tts-1`` and OpenAI's voice names
such as ``alloy``, and what they mean on this platform.

Model aliases. A TtsDeployment may claim aliases (``spec.modelAliases``); OpenAI's own model names
(:data:`OPENAI_MODELS`) that no TtsDeployment claims reach the platform's default model. No two
models answer to one name:

1. a real model name always means that model (an alias equal to a model's name is a conflict);
2. of two claims on one alias, the older TtsDeployment (creation time, then name) keeps it and
   the later claimant is in conflict (the operator reports ``AliasConflict`` on it; the router
   ignores its claim).

Voice aliases. OpenAI's voice names map to a model's own voices: by the TtsDeployment's
``spec.voiceAliases`` where it names one, else by :func:`default_voice_aliases`, a deterministic
choice over the model's voices (gender-matched where voice ids say it, Kokoro-style ``af_``/``am_``).
Real names win: a TtsVoice or a built-in speaker called ``alloy`` is never shadowed by an alias.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

OPENAI_MODELS: tuple[str, ...] = ("tts-1", "tts-1-hd", "gpt-4o-mini-tts")

# OpenAI's voices and the voice each is usually heard as (f: female, m: male)
OPENAI_VOICES: dict[str, str] = {
    "alloy": "f",
    "ash": "m",
    "ballad": "m",
    "coral": "f",
    "echo": "m",
    "fable": "m",
    "nova": "f",
    "onyx": "m",
    "sage": "f",
    "shimmer": "f",
    "verse": "m",
    "marin": "f",
    "cedar": "m",
}

ALIAS_PATTERN = r"^[a-z0-9]([-a-z0-9._]*[a-z0-9])?$"
VOICE_ALIAS_PATTERN = r"^[a-z][a-z0-9_-]*$"
MAX_ALIASES = 16
MAX_VOICE_ALIASES = 64

# Kokoro's voices in the order of their published quality grades: the default mapping takes the
# better ones first (voices not listed follow in name order)
PREFERRED: tuple[str, ...] = (
    "af_heart",
    "af_bella",
    "af_nicole",
    "af_aoede",
    "af_kore",
    "af_sarah",
    "af_nova",
    "am_fenrir",
    "am_michael",
    "am_puck",
    "am_echo",
    "am_eric",
    "am_liam",
    "am_onyx",
    "bf_emma",
    "bf_isabella",
    "bm_george",
    "bm_fable",
    "bm_lewis",
)


# --- model aliases -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Claimant:
    """A model as the alias rules see it: its name, when it was made and the aliases it claims."""

    name: str
    created: str  # RFC 3339 creationTimestamp (sorts in time order)
    aliases: tuple[str, ...]


@dataclass(frozen=True)
class AliasTable:
    """Who answers to each alias, and the claims that lost (model -> [(alias, why)])."""

    owners: dict[str, str]
    conflicts: dict[str, list[tuple[str, str]]]

    def resolve(self, name: str, models: Iterable[str]) -> str:
        """The model a request's ``model`` means: itself if it is a model, else its alias's owner,
        else the name as given (the caller answers 404)."""
        if name in set(models):
            return name
        return self.owners.get(name, name)

    def aliases_of(self, model: str) -> list[str]:
        return sorted(a for a, owner in self.owners.items() if owner == model)


def alias_table(claimants: Sequence[Claimant], default_model: str | None) -> AliasTable:
    """Apply the rules above; ``default_model`` takes the OpenAI names nobody claims (None: none)."""
    names = {c.name for c in claimants}
    owners: dict[str, str] = {}
    conflicts: dict[str, list[tuple[str, str]]] = {}
    for c in sorted(claimants, key=lambda c: (c.created, c.name)):
        for alias in c.aliases:
            if alias in names:
                why = f"alias {alias!r} is the name of model {alias!r}"
            elif alias in owners and owners[alias] != c.name:
                why = f"alias {alias!r} is already claimed by model {owners[alias]!r}"
            else:
                owners[alias] = c.name
                continue
            conflicts.setdefault(c.name, []).append((alias, why))
    if default_model:
        for alias in OPENAI_MODELS:
            if alias not in owners and alias not in names:
                owners[alias] = default_model
    return AliasTable(owners, conflicts)


def default_model(speech_models: Iterable[str], configured: str) -> str | None:
    """The model OpenAI's names reach: the configured one if it is a speech model, else (not
    configured) the first speech model by name; None when there is none."""
    models = sorted(speech_models)
    if configured:
        return configured if configured in models else None
    return models[0] if models else None


# --- voice aliases -----------------------------------------------------------------------------


def gender_of(voice: str) -> str | None:
    """``f`` or ``m`` for Kokoro-style ids (``af_bella``, ``jm_kumo``), else None."""
    if len(voice) > 3 and voice[2] == "_" and voice[1] in "fm" and voice[0].isalpha():
        return voice[1]
    return None


def _english_first(voice: str, language: str) -> tuple[int, int, str]:
    lang = language.lower().replace("_", "-")
    rank = 0 if lang in ("en-us", "en") else 1 if lang.startswith("en") else 2
    grade = PREFERRED.index(voice) if voice in PREFERRED else len(PREFERRED)
    return rank, grade, voice


def default_voice_aliases(voices: Sequence[tuple[str, str]], default: str | None = None) -> dict[str, str]:
    """OpenAI voice name -> one of ``voices`` (``(id, language)`` pairs), deterministically:

    - a voice named like the alias (``alloy``, or ``af_alloy`` in Kokoro's naming) is taken;
    - else, where ids carry a gender, the aliases of each gender are dealt out over that gender's
      voices, English and better-graded first (a model with one gender only uses it for all);
    - else they are dealt out over the English voices (or all of them), the default voice first.

    A model with one voice maps every alias to it; a model without voices maps nothing.
    """
    if not voices:
        return {}
    ids = [v for v, _ in voices]
    ordered = [v for v, _ in sorted(voices, key=lambda p: _english_first(*p))]
    if default in ids:
        ordered = [default] + [v for v in ordered if v != default]
    english = [v for v, lang in voices if lang.lower().startswith("en")]
    plain = [v for v in ordered if v in english] or ordered
    by_gender = {g: [v for v in ordered if gender_of(v) == g] for g in ("f", "m")}
    out: dict[str, str] = {}
    dealt: dict[str, int] = {}
    for alias, gender in OPENAI_VOICES.items():
        exact = next((v for v in ids if v == alias or v.split("_", 1)[-1] == alias), None)
        pool = by_gender.get(gender) or by_gender["f"] or by_gender["m"] or plain
        if exact is not None:
            out[alias] = exact
            continue
        key = gender if by_gender.get(gender) else "*"
        index = dealt.get(key, 0)
        out[alias] = pool[index % len(pool)]
        dealt[key] = index + 1
    return out


def voice_aliases(
    voices: Sequence[tuple[str, str]], overrides: Mapping[str, str], default: str | None = None
) -> dict[str, str]:
    """The model's voice aliases: the default mapping with the TtsDeployment's own on top; names
    that are real voices of the model are left out (a real name is never shadowed)."""
    ids = {v for v, _ in voices}
    merged = {**default_voice_aliases(voices, default), **overrides}
    return {alias: target for alias, target in sorted(merged.items()) if alias not in ids}

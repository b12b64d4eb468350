"""OpenAI-client names at the router (pure; ADR 0042): which TtsDeployment a request's ``model``
means (model aliases, the platform's default model) and which voice a request's ``voice`` means
(voice aliases, blends), before anything wakes.

The rules themselves live in ``tts_crds.aliases`` and ``tts_crds.blends``, shared with the operator
(which reports alias conflicts) and the inference server (which applies the same default voice
mapping when the router could not, and mixes blends).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tts_crds import aliases, blends
from tts_crds.aliases import AliasTable, Claimant
from tts_crds.http_errors import ApiError
from tts_crds.models import Capability

from .voices import capability_of, deployment_spec

JSON = dict[str, Any]


def claimants(deployments: Mapping[str, JSON]) -> list[Claimant]:
    """Every TtsDeployment with the aliases its spec claims (an invalid spec claims nothing)."""
    out = []
    for name, obj in deployments.items():
        spec = deployment_spec(obj)
        created = str(obj.get("metadata", {}).get("creationTimestamp") or "")
        out.append(Claimant(name, created, tuple(spec.model_aliases) if spec else ()))
    return out


def model_table(deployments: Mapping[str, JSON], configured_default: str) -> AliasTable:
    """Who answers to each alias now; OpenAI's model names that nobody claims go to the default
    speech model (``KUBETTS_DEFAULT_MODEL``, else the first speech model by name)."""
    speech = [
        n for n, o in deployments.items() if capability_of(o) == Capability.SPEECH and deployment_spec(o) is not None
    ]
    return aliases.alias_table(claimants(deployments), aliases.default_model(speech, configured_default))


@dataclass(frozen=True)
class ModelVoices:
    """What the router knows of one model's voices when it resolves a request's ``voice``."""

    model: str
    engine: str
    builtin: frozenset[str] | None  # None: never seen awake, speakers unknown (the pod will judge)
    aliases: dict[str, str]  # alias -> target (a speaker, or a blend)


def model_voices(model: str, obj: JSON, builtin: JSON | None) -> ModelVoices:
    """A model's voices and aliases from its TtsDeployment and its pods' voice list (if known)."""
    spec = deployment_spec(obj)
    overrides = dict(spec.voice_aliases) if spec else {}
    engine = spec.engine.value if spec else ""
    if not builtin:
        return ModelVoices(model, engine, None, overrides)
    pairs = [(str(v.get("id")), str(v.get("language") or "")) for v in builtin.get("data", []) if isinstance(v, dict)]
    table = aliases.voice_aliases(pairs, overrides, builtin.get("default"))
    return ModelVoices(model, engine, frozenset(v for v, _ in pairs), table)


def _not_found(message: str) -> ApiError:
    return ApiError(400, message + " (see GET /v1/audio/voices?model=…)", "voice_not_found", "voice")


def _blend(mv: ModelVoices, text: str, named: str) -> str:
    """A blend, checked: the engine can mix, it parses, each part is a voice (aliases allowed)."""
    if not blends.can_blend(mv.engine):
        raise ApiError(
            400,
            f"model {mv.model!r} (engine {mv.engine or 'unknown'}) cannot blend voices; only engines whose voices are "
            f"style vectors can ({', '.join(sorted(e.value for e in blends.BLENDABLE))})",
            "voice_blend_unsupported",
            "voice",
        )
    try:
        blend = blends.parse(text)
    except blends.BlendError as exc:
        raise ApiError(400, f"voice {named!r}: {exc}", "invalid_voice_blend", "voice") from exc

    def plain(part: str) -> str:
        if mv.builtin is not None and part in mv.builtin:
            return part
        target = mv.aliases.get(part, part)
        if blends.is_blend(target):
            raise ApiError(400, f"blend part {part!r} is itself a blend; mix speakers", "invalid_voice_blend", "voice")
        return target

    blend = blend.renamed(plain)
    if mv.builtin is not None:
        try:
            blends.check_voices(blend, mv.builtin)
        except blends.BlendError as exc:
            raise _not_found(f"voice {named!r}: {exc} ({mv.model})") from exc
    return blend.canonical()


def resolve_voice(mv: ModelVoices, requested: str) -> str:
    """The voice the pod is sent for a ``voice`` that is not a TtsVoice: a real speaker as is, an
    alias as its target, a blend checked and normalised. Anything else passes through unchanged,
    for the pod to refuse (400 ``voice_not_found``) or, when the router has never seen the model's
    speakers, to map by the same default aliases."""
    if requested in ("", "default") or (mv.builtin is not None and requested in mv.builtin):
        return requested
    if blends.is_blend(requested):
        return _blend(mv, requested, requested)
    target = mv.aliases.get(requested)
    if target is None:
        return requested
    if blends.is_blend(target):
        return _blend(mv, target, requested)
    if mv.builtin is not None and target not in mv.builtin:
        raise _not_found(f"voice alias {requested!r} of model {mv.model!r} names {target!r}, which the model lacks")
    return target

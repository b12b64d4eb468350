"""Typed model of the TtsJob custom resource (issue 17, ADR 0049): a long text or a multi-role script
rendered to chapter files by an Indexed ``batch/v1`` Job of renderer pods.

Like :mod:`tts_crds.models`, these classes are the single source of truth of the CRD
(``python -m tts_crds`` renders ``crds/ttsjobs.tts.kubetts.io.yaml``). The cross-field rules are CEL
rules in the CRD *and* a model validator here, so the apiserver refuses a bad TtsJob at ``kubectl
apply`` and the router and operator, which parse specs with :func:`tts_crds.models.parse_spec`, refuse
it with the same message. What needs the text itself (an empty text, a bad line of a plain-text
script) is checked when the plan is built (:mod:`tts_crds.plan`).

Size limits: a TtsJob lives in etcd, whose objects are at most 1.5 MiB, so inline ``text`` is capped at
:data:`MAX_TEXT_CHARACTERS` characters (up to 4 bytes each in UTF-8) and a ``script`` at
:data:`MAX_SCRIPT_LINES` lines; a whole book goes into a ConfigMap (``textFrom``, up to 1 MiB) instead.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal, Self

from pydantic import ConfigDict, Field, field_validator, model_validator

from .models import CONDITIONS_EXTRA, MAX_NAME_LENGTH, NAME_PATTERN, Condition, KeyReference, _Model, cel
from .roles import MAX_ROLE_LENGTH as MAX_ROLE_LENGTH
from .roles import MAX_ROLES as MAX_ROLES
from .roles import ROLE_PATTERN as ROLE_PATTERN
from .roles import check_role_names as check_role_names

MAX_TEXT_CHARACTERS = 300_000
MAX_SCRIPT_LINES = 5_000
MAX_LINE_CHARACTERS = 4_000
# what a TtsJob's owner may still change after creating it: read when the TtsJob is deleted
MUTABLE_SPEC_FIELDS = frozenset({"retain"})
MAX_PAUSE_MS = 10_000
# a path under the claim's root: segments that do not start with a dot, so never "..", "." or hidden
STORAGE_PATH_PATTERN = r"^([A-Za-z0-9_-][A-Za-z0-9._-]*(/[A-Za-z0-9_-][A-Za-z0-9._-]*)*)?$"

JobFormat = Literal["mp3", "opus", "flac", "wav"]


class TextFormat(StrEnum):
    """How ``text`` and ``textFrom`` are read."""

    PLAIN = "plain"
    SCRIPT = "script"


class ChapterSplit(StrEnum):
    """Where a text is cut into chapters (one audio file each)."""

    NONE = "none"
    HEADINGS = "headings"
    SECTIONS = "sections"
    SIZE = "size"


class Phase(StrEnum):
    PENDING = "Pending"
    RENDERING = "Rendering"
    JOINING = "Joining"
    COMPLETE = "Complete"
    FAILED = "Failed"


class TextSource(_Model):
    config_map_key_ref: KeyReference = Field(
        description="ConfigMap key (data, UTF-8) holding the text: up to 1 MiB, for texts too long to inline."
    )


class ScriptLine(_Model):
    role: str = Field(
        description="Who speaks the line: a key of spec.roles.",
        min_length=1,
        max_length=MAX_ROLE_LENGTH,
        pattern=ROLE_PATTERN,
    )
    text: str = Field(description="What the role says.", min_length=1, max_length=MAX_LINE_CHARACTERS)
    pause_after_ms: int | None = Field(
        default=None,
        ge=0,
        le=MAX_PAUSE_MS,
        description="Silence after the line in milliseconds; unset: spec.pauses.roleMs when the next line is "
        "another role's, else spec.pauses.paragraphMs.",
    )


class Role(_Model):
    voice: str = Field(
        description="The voice: a built-in speaker of the deployment's model or a TtsVoice of that deployment.",
        min_length=1,
        max_length=253,
    )
    deployment: str | None = Field(
        default=None,
        description="The TtsDeployment that speaks the role; unset: spec.deployment (so one script can mix engines).",
        pattern=NAME_PATTERN,
        max_length=MAX_NAME_LENGTH,
    )


class Chapters(_Model):
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "self.split != 'size' || has(self.maxCharacters)",
                    "chapters.maxCharacters is required with split size",
                    ".maxCharacters",
                ),
            ]
        }
    )

    split: ChapterSplit = Field(
        default=ChapterSplit.NONE,
        description="none: one chapter. headings: a chapter at each markdown heading (# Title) or line such as "
        "'Chapter 1' or 'CHAPTER ONE'. sections: at lines of *** (or * * *, ---) or two blank lines. size: "
        "chapters of at most maxCharacters, cut between paragraphs (or sentences).",
    )
    max_characters: int | None = Field(
        default=None,
        ge=1_000,
        le=1_000_000,
        description="With split size: the most characters in one chapter.",
    )


class Pauses(_Model):
    sentence_ms: int = Field(
        default=0,
        ge=0,
        le=MAX_PAUSE_MS,
        description="Extra silence between sentences (0: the engine's own phrasing; above 0 each sentence is "
        "rendered on its own).",
    )
    paragraph_ms: int = Field(default=500, ge=0, le=MAX_PAUSE_MS, description="Silence between paragraphs.")
    role_ms: int = Field(
        default=350, ge=0, le=MAX_PAUSE_MS, description="Silence where a script passes to another role."
    )
    chapter_lead_ms: int = Field(
        default=0, ge=0, le=MAX_PAUSE_MS, description="Silence at the start of each chapter file."
    )


class Storage(_Model):
    claim_name: str = Field(
        default="",
        max_length=253,
        pattern=r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?)?$",
        description="PersistentVolumeClaim (same namespace) the files are written to; empty: the platform's "
        "jobs volume, which the chart creates.",
    )
    path: str = Field(
        default="",
        max_length=512,
        pattern=STORAGE_PATH_PATTERN,
        description="Directory under the claim's root; empty: <namespace>/<name>.",
    )


class TtsJobSpec(_Model):
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "(has(self.text) ? 1 : 0) + (has(self.textFrom) ? 1 : 0) + (has(self.script) ? 1 : 0) == 1",
                    "exactly one of spec.text, spec.textFrom or spec.script must be set",
                ),
                cel(
                    "!has(self.textFormat) || !has(self.script)",
                    "spec.textFormat applies to text and textFrom; a spec.script is already a script",
                    ".textFormat",
                ),
                cel(
                    "!has(self.script) || (has(self.roles) && self.script.all(l, l.role in self.roles))",
                    "every role of spec.script must be a key of spec.roles",
                    ".script",
                ),
                cel(
                    "!has(self.script) || !has(self.chapters) || self.chapters.split == 'none' "
                    "|| self.chapters.split == 'size'",
                    "a spec.script has no headings or sections: chapters.split must be none or size",
                    ".chapters.split",
                ),
            ]
        }
    )

    deployment: str = Field(
        description="The TtsDeployment (same namespace) that speaks the text, and the roles that name none.",
        pattern=NAME_PATTERN,
        max_length=MAX_NAME_LENGTH,
    )
    voice: str = Field(
        default="default",
        min_length=1,
        max_length=253,
        description="The voice of plain text: a built-in speaker of the deployment or a TtsVoice.",
    )
    text: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_TEXT_CHARACTERS,
        description="The text to speak (prose, or a 'Role: line' script with textFormat script; "
        "docs/adr/0049-ttsjob.md). One of text, textFrom or script.",
    )
    text_from: TextSource | None = Field(default=None, description="Where to read the text from instead.")
    text_format: TextFormat | None = Field(
        default=None,
        description="plain (the default): prose. script: 'Role: line' lines, each role a key of spec.roles.",
    )
    script: list[ScriptLine] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_SCRIPT_LINES,
        description="A structured script: the lines in order, each spoken by its role.",
    )
    roles: dict[str, Role] | None = Field(
        default=None,
        description="The voice (and optionally the deployment) of each role of a script.",
        json_schema_extra={
            "maxProperties": MAX_ROLES,
            "x-kubernetes-validations": [
                cel(
                    f'self.all(k, size(k) <= {MAX_ROLE_LENGTH} && k.matches("{ROLE_PATTERN}"))',
                    f"role names are at most {MAX_ROLE_LENGTH} characters of letters, digits, space, '_', '.', "
                    "\"'\" and '-', starting with a letter",
                    reason="FieldValueInvalid",
                )
            ],
        },
    )
    speed: float = Field(default=1.0, ge=0.25, le=4.0, description="Speaking speed.")
    chapters: Chapters = Field(
        default_factory=Chapters,
        description="How the text is cut into chapters.",
        # not {}: the apiserver checks a default against the CEL rules without its nested defaults
        json_schema_extra={"default": {"split": "none"}},
    )
    pauses: Pauses = Field(
        default_factory=Pauses, description="Silences inserted when joining.", json_schema_extra={"default": {}}
    )
    format: JobFormat = Field(default="mp3", description="Format of the chapter files.")
    storage: Storage = Field(
        default_factory=Storage, description="Where the files are written.", json_schema_extra={"default": {}}
    )
    retain: bool = Field(default=True, description="Keep the files when the TtsJob is deleted.")
    parallelism: int = Field(default=1, ge=1, le=32, description="Renderer pods at once (the Job's completions).")
    backoff_limit: int = Field(default=6, ge=0, le=100, description="Pod failures before the job fails.")
    active_deadline_seconds: int | None = Field(
        default=None, ge=1, le=7 * 24 * 3600, description="Wall-clock limit of the rendering; unset: none."
    )

    @field_validator("roles")
    @classmethod
    def _role_names(cls, value: dict[str, Role] | None) -> dict[str, Role] | None:
        check_role_names(value or {})
        return value

    @model_validator(mode="after")
    def _cross_field(self) -> Self:
        """The CRD's CEL rules, for specs that did not come through the apiserver (the router's)."""
        given = [name for name, value in (("text", self.text), ("textFrom", self.text_from)) if value is not None]
        if self.script is not None:
            given.append("script")
        if len(given) != 1:
            raise ValueError("exactly one of spec.text, spec.textFrom or spec.script must be set")
        if self.script is not None:
            if self.text_format is not None:
                raise ValueError("spec.textFormat applies to text and textFrom; a spec.script is already a script")
            missing = [line.role for line in self.script if line.role not in (self.roles or {})]
            if missing:
                raise ValueError(f"role {missing[0]!r} of spec.script is not a key of spec.roles")
            if self.chapters.split not in (ChapterSplit.NONE, ChapterSplit.SIZE):
                raise ValueError("a spec.script has no headings or sections: chapters.split must be none or size")
        if self.chapters.split == ChapterSplit.SIZE and self.chapters.max_characters is None:
            raise ValueError("chapters.maxCharacters is required with split size")
        return self

    @property
    def is_script(self) -> bool:
        """Whether the input is a script (structured, or plain text with textFormat script)."""
        return self.script is not None or self.text_format == TextFormat.SCRIPT


class JobProgress(_Model):
    characters_done: int = Field(default=0, ge=0, description="Characters of the chunks rendered.")
    characters_total: int = Field(default=0, ge=0, description="Characters of the plan.")
    chunks_done: int = Field(default=0, ge=0, description="Chunks rendered and verified.")
    chunks_total: int = Field(default=0, ge=0, description="Chunks in the plan.")
    chapters_done: int = Field(default=0, ge=0, description="Chapter files joined.")
    chapters_total: int = Field(default=0, ge=0, description="Chapters in the plan.")
    audio_seconds: float = Field(default=0.0, ge=0, description="Seconds of audio rendered so far.")
    eta_seconds: int | None = Field(default=None, ge=0, description="Estimated seconds until the chunks are done.")
    summary: str = Field(default="", max_length=256, description="e.g. '12/40 chunks (30%)' (for kubectl get).")


class ChapterStatus(_Model):
    number: int = Field(ge=1, description="Chapter number, from 1.")
    title: str = Field(default="", max_length=256, description="Its heading (or 'Chapter N').")
    file: str = Field(default="", max_length=1024, description="Path of the file relative to the claim's root.")
    duration_seconds: float | None = Field(default=None, ge=0, description="Length of the file.")
    sha256: str = Field(default="", max_length=64, description="SHA-256 of the file.")
    bytes: int | None = Field(default=None, ge=0, description="Size of the file.")


class TtsJobStatus(_Model):
    observed_generation: int | None = Field(default=None, description="Generation the status describes.")
    phase: Phase | None = Field(default=None, description="Pending, Rendering, Joining, Complete or Failed.")
    job_name: str | None = Field(default=None, description="The batch/v1 Job that renders it.")
    start_time: str | None = Field(
        default=None, json_schema_extra={"format": "date-time"}, description="When rendering started."
    )
    completion_time: str | None = Field(
        default=None, json_schema_extra={"format": "date-time"}, description="When the last chapter was written."
    )
    duration: str | None = Field(default=None, description="Wall time so far or in all, e.g. 3m12s (for kubectl get).")
    progress: JobProgress | None = Field(default=None, description="How far the rendering is.")
    chapters: list[ChapterStatus] | None = Field(
        default=None, max_length=10_000, description="The chapter files written so far."
    )
    conditions: list[Condition] = Field(
        default_factory=list, description="Ready, Complete, Failed.", json_schema_extra=CONDITIONS_EXTRA
    )


class TtsJob(_Model):
    spec: TtsJobSpec
    status: TtsJobStatus = Field(default_factory=TtsJobStatus)

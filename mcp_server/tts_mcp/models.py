"""What the tools return (their structured output, and so their published output schemas).

Built from the router's JSON answers by the ``from_router`` constructors: unknown fields are
dropped, missing optional ones default, so a newer router does not break an older MCP server.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

JSON = dict[str, Any]


class ModelInfo(BaseModel):
    name: str = Field(description="The model's name (a TtsDeployment): pass it as `model`.")
    engine: str | None = Field(default=None, description="The engine (piper, espeak, kokoro, pocket-tts, whisper).")
    capability: str = Field(
        default="speech", description="speech (synthesize_speech) or transcription (transcribe_audio)."
    )
    ready: bool = Field(description="True when a replica is ready to speak now.")
    replicas: int = Field(description="Desired replicas; 0 means the model sleeps and the next request wakes it.")
    ready_replicas: int = 0
    scaled_to_zero: bool = False
    status: str = Field(default="Unknown", description="The reason of the model's Ready condition.")
    voices: list[str] = Field(default_factory=list, description="Built-in speakers and custom voices of the model.")
    default_voice: str | None = None

    @classmethod
    def from_router(cls, entry: JSON) -> ModelInfo:
        return cls(
            name=entry["id"],
            engine=entry.get("engine"),
            capability=entry.get("capability") or "speech",
            ready=bool(entry.get("ready")),
            replicas=int(entry.get("replicas") or 0),
            ready_replicas=int(entry.get("ready_replicas") or 0),
            scaled_to_zero=bool(entry.get("scaled_to_zero")),
            status=entry.get("status") or "Unknown",
            voices=[str(v) for v in entry.get("voices") or []],
            default_voice=entry.get("default_voice"),
        )


class ModelList(BaseModel):
    models: list[ModelInfo]


class VoiceInfo(BaseModel):
    name: str = Field(description="Pass it as `voice` to synthesize_speech (with its model).")
    model: str | None = Field(default=None, description="The model that speaks this voice.")
    type: Literal["builtin", "speaker", "clone"] | str = Field(
        description="builtin: a speaker of the model; speaker: a TtsVoice naming one; clone: a reference clip."
    )
    language: str | None = None
    default: bool = Field(default=False, description="The model's default speaker.")
    ready: bool | None = Field(default=None, description="For custom voices: validated by the operator.")
    reason: str | None = None
    description: str = ""
    transcript: str | None = Field(default=None, description="For clone voices: what is said in the clip.")
    transcript_source: str | None = Field(
        default=None, description="user (given when created) or transcribed (by the transcription model)."
    )

    @classmethod
    def from_router(cls, entry: JSON) -> VoiceInfo:
        return cls(
            name=entry["id"],
            model=entry.get("model"),
            type=entry.get("type") or "builtin",
            language=entry.get("language"),
            default=bool(entry.get("default")),
            ready=entry.get("ready"),
            reason=entry.get("reason"),
            description=entry.get("description") or "",
            transcript=entry.get("transcript"),
            transcript_source=entry.get("transcript_source"),
        )


class Transcription(BaseModel):
    text: str = Field(description="What the model heard.")
    model: str = Field(description="The transcription model that heard it.")
    language: str | None = Field(default=None, description="The language it was told or detected.")
    duration_seconds: float | None = Field(default=None, description="Length of the audio.")

    @classmethod
    def from_router(cls, model: str, body: JSON) -> Transcription:
        duration = body.get("duration")
        return cls(
            text=str(body.get("text", "")).strip(),
            model=model,
            language=body.get("language"),
            duration_seconds=float(duration) if isinstance(duration, int | float) else None,
        )


class VoiceList(BaseModel):
    voices: list[VoiceInfo]


class ClipInfo(BaseModel):
    format: str
    bytes: int
    duration_seconds: float
    sample_rate: int
    channels: int
    sha256: str


class CreatedVoice(BaseModel):
    name: str
    model: str
    language: str | None = None
    clip: ClipInfo | None = None
    note: str = Field(
        default="",
        description="What to expect when speaking with the voice (only cloning engines can use a reference clip).",
    )

    @classmethod
    def from_router(cls, entry: JSON, note: str = "") -> CreatedVoice:
        audio = entry.get("audio") or {}
        clip = None
        if audio:
            clip = ClipInfo(
                format=audio.get("format", ""),
                bytes=int(audio.get("bytes") or 0),
                duration_seconds=float(audio.get("durationSeconds") or 0.0),
                sample_rate=int(audio.get("sampleRate") or 0),
                channels=int(audio.get("channels") or 0),
                sha256=audio.get("sha256", ""),
            )
        return cls(
            name=entry["id"], model=entry.get("model") or "", language=entry.get("language"), clip=clip, note=note
        )


class DeletedVoice(BaseModel):
    name: str
    deleted: bool


class ScaleResult(BaseModel):
    model: str
    action: Literal["sleep", "wake"]
    changed: bool = Field(description="False when the model was already asleep (or awake).")
    replicas_before: int | None = None
    ready_replicas: int | None = None
    message: str

    @classmethod
    def from_router(cls, model: str, action: Literal["sleep", "wake"], answer: JSON) -> ScaleResult:
        changed = bool(answer.get("changed"))
        if action == "sleep":
            message = "is scaling to zero; its GPUs are released as its pods stop" if changed else "was asleep already"
        else:
            message = (
                "is waking up: a replica is being scheduled and loads the model" if changed else "was awake already"
            )
        return cls(
            model=model,
            action=action,
            changed=changed,
            replicas_before=answer.get("replicas_before"),
            ready_replicas=answer.get("ready_replicas"),
            message=f"{model!r} {message}",
        )


class PodGpu(BaseModel):
    name: str
    node: str | None = None
    ready: bool = False
    device: str | None = None
    gpu_memory_used_bytes: int | None = None
    gpu_memory_total_bytes: int | None = None


class DeploymentStatus(BaseModel):
    name: str
    engine: str | None = None
    replicas: int = 0
    ready_replicas: int = 0
    scaled_to_zero: bool = False
    waking: bool = False
    gpu_per_replica: int = 0
    inflight_requests: int = 0
    queued_requests: int = 0
    last_activity: str | None = None
    pods: list[PodGpu] = Field(default_factory=list)


class GpuResource(BaseModel):
    resource: str = Field(description="The extended resource, e.g. nvidia.com/gpu.")
    capacity: int = 0
    allocatable: int = 0
    requested: int = Field(default=0, description="GPUs that scheduled pods request on this node.")


class NodeGpu(BaseModel):
    name: str
    product: str | None = None
    memory_mib_per_gpu: int | None = None
    ready: bool = False
    unschedulable: bool = False
    gpus: list[GpuResource] = Field(default_factory=list)


class GpuStatus(BaseModel):
    namespace: str | None = None
    deployments: list[DeploymentStatus]
    nodes: list[NodeGpu] | None = Field(
        default=None, description="GPU capacity per node; null when the router could not read nodes."
    )
    errors: list[str] = Field(default_factory=list)

    @classmethod
    def from_router(cls, status: JSON) -> GpuStatus:
        deployments = [
            DeploymentStatus(
                name=d["name"],
                engine=d.get("engine"),
                replicas=int(d.get("replicas") or 0),
                ready_replicas=int(d.get("ready_replicas") or 0),
                scaled_to_zero=bool(d.get("scaled_to_zero")),
                waking=bool(d.get("waking")),
                gpu_per_replica=int(d.get("gpu_per_replica") or 0),
                inflight_requests=int(d.get("inflight_requests") or 0),
                queued_requests=int(d.get("queued_requests") or 0),
                last_activity=d.get("last_activity"),
                pods=[_pod(p) for p in d.get("pods") or []],
            )
            for d in status.get("deployments") or []
        ]
        nodes = None
        if status.get("nodes") is not None:
            nodes = [_node(n) for n in status["nodes"]]
        return cls(
            namespace=status.get("namespace"), deployments=deployments, nodes=nodes, errors=status.get("errors") or []
        )


def _pod(pod: JSON) -> PodGpu:
    inference = pod.get("inference") or {}
    memory = inference.get("gpu_memory") or {}
    return PodGpu(
        name=pod["name"],
        node=pod.get("node"),
        ready=bool(pod.get("ready")),
        device=inference.get("device"),
        gpu_memory_used_bytes=memory.get("used_bytes"),
        gpu_memory_total_bytes=memory.get("total_bytes"),
    )


def _node(node: JSON) -> NodeGpu:
    return NodeGpu(
        name=node.get("node", "?"),
        product=node.get("product"),
        memory_mib_per_gpu=node.get("memory_mib_per_gpu"),
        ready=bool(node.get("ready")),
        unschedulable=bool(node.get("unschedulable")),
        gpus=[
            GpuResource(
                resource=name,
                capacity=int(r.get("capacity") or 0),
                allocatable=int(r.get("allocatable") or 0),
                requested=int(r.get("requested") or 0),
            )
            for name, r in sorted((node.get("resources") or {}).items())
        ],
    )


class SpeechResult(BaseModel):
    model: str
    voice: str
    format: str
    mime_type: str
    bytes: int
    sample_rate: int | None = Field(default=None, description="Of the decoded audio, when the model reports it.")
    audio_seconds: float | None = Field(default=None, description="Length of the audio, when the model reports it.")
    woke_model: bool = Field(description="True when the model was asleep and this request woke it.")
    waited_seconds: float = Field(description="Seconds the request waited for the model before synthesis began.")
    file: str | None = Field(default=None, description="Where the audio was saved (output modes both and file).")


# --- productions (TtsJobs) --------------------------------------------------------------------------

FINISHED_PHASES = ("Complete", "Failed")


class ScriptLine(BaseModel):
    role: str = Field(description="Who speaks: a key of roles.")
    text: str = Field(description="What the role says.", min_length=1)
    pause_after_ms: int | None = Field(default=None, ge=0, le=10_000, description="Silence after the line.")


class RoleVoice(BaseModel):
    voice: str = Field(description="The role's voice (list_voices).")
    model: str | None = Field(default=None, description="The model that speaks the role; default: the production's.")


class ProductionProgress(BaseModel):
    chunks_done: int = Field(default=0, description="Chunks rendered (a chunk is a few sentences).")
    chunks_total: int = Field(default=0, description="Chunks in the plan.")
    chapters_done: int = Field(default=0, description="Chapter files written.")
    chapters_total: int = Field(default=0, description="Chapters in the plan.")
    audio_seconds: float = Field(default=0.0, description="Seconds of audio rendered so far.")
    eta_seconds: int | None = Field(default=None, description="Estimated seconds until the chunks are done.")
    summary: str = ""

    @classmethod
    def from_router(cls, entry: JSON | None) -> ProductionProgress | None:
        if not entry:
            return None
        return cls(
            chunks_done=int(entry.get("chunksDone") or 0),
            chunks_total=int(entry.get("chunksTotal") or 0),
            chapters_done=int(entry.get("chaptersDone") or 0),
            chapters_total=int(entry.get("chaptersTotal") or 0),
            audio_seconds=float(entry.get("audioSeconds") or 0.0),
            eta_seconds=entry.get("etaSeconds"),
            summary=entry.get("summary") or "",
        )


class ChapterInfo(BaseModel):
    number: int
    title: str = ""
    duration_seconds: float | None = None
    bytes: int | None = None
    url: str = Field(description="Download it with GET and the router API key (Authorization: Bearer).")


class ProductionInfo(BaseModel):
    name: str = Field(description="The production's name: pass it to get_production.")
    phase: str | None = Field(
        default=None,
        description="Pending, Rendering, Joining, Complete or Failed; null until the operator has picked it up.",
    )
    finished: bool = Field(default=False, description="True once the phase is Complete or Failed.")
    created_at: str | None = None
    progress: ProductionProgress | None = None
    planned_chunks: int | None = Field(default=None, description="Chunks the plan has (when it was just started).")
    planned_chapters: int | None = None
    chapters: list[ChapterInfo] = Field(default_factory=list, description="The chapter files written so far.")
    message: str | None = Field(default=None, description="Why it failed, or what it is doing (its conditions).")
    timed_out: bool = Field(default=False, description="True when get_production(wait=true) stopped waiting.")

    @classmethod
    def from_router(cls, entry: JSON, base_url: str) -> ProductionInfo:
        status = entry.get("status") or {}
        plan = entry.get("plan") or {}
        conditions = status.get("conditions") or []
        failed = next((c for c in conditions if c.get("type") == "Failed" and c.get("status") == "True"), None)
        latest = failed or next((c for c in conditions if c.get("type") == "Ready"), None)
        return cls(
            name=entry["name"],
            phase=entry.get("phase"),
            finished=entry.get("phase") in FINISHED_PHASES,
            created_at=entry.get("createdAt"),
            progress=ProductionProgress.from_router(entry.get("progress")),
            planned_chunks=plan.get("chunks"),
            planned_chapters=plan.get("chapters"),
            chapters=[
                ChapterInfo(
                    number=int(c["number"]),
                    title=c.get("title") or "",
                    duration_seconds=c.get("durationSeconds"),
                    bytes=c.get("bytes"),
                    url=f"{base_url.rstrip('/')}{c['url']}",
                )
                for c in status.get("chapters") or []
                if c.get("url")
            ],
            message=(latest or {}).get("message") or None,
        )


class ProductionSummary(BaseModel):
    name: str
    phase: str | None = None
    created_at: str | None = None
    chapters_done: int = 0
    chapters_total: int | None = None
    summary: str = Field(default="", description="e.g. '12/40 chunks (30%)'.")

    @classmethod
    def from_router(cls, entry: JSON) -> ProductionSummary:
        chapters = entry.get("chapters") or {}
        return cls(
            name=entry["name"],
            phase=entry.get("phase"),
            created_at=entry.get("createdAt"),
            chapters_done=int(chapters.get("done") or 0),
            chapters_total=chapters.get("total"),
            summary=(entry.get("progress") or {}).get("summary") or "",
        )


class ProductionList(BaseModel):
    productions: list[ProductionSummary] = Field(description="Newest first.")

"""``/v1/audio/jobs``: productions — long texts and multi-role scripts rendered to chapter files by a
TtsJob (ADR 0049, 0050). Creating and deleting needs an admin key, as for voices; reading, listing and
downloading a user key. The router creates the TtsJob (and the ConfigMap of an uploaded text); the
operator renders it; the chapters are served from the jobs volume, read-only.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import FileResponse, JSONResponse
from starlette.datastructures import UploadFile
from tts_crds.crd import model_schema
from tts_crds.http_errors import ApiError
from tts_crds.jobs import TtsJobSpec
from tts_crds.models import Capability, InvalidSpec, parse_spec

from ..deps import Admin, Authenticated, State
from ..jobs import (
    MAX_UPLOAD_BYTES,
    chapter_files,
    check_job_name,
    check_plan,
    decode_text,
    deployments_named,
    form_spec,
    generate_name,
    inside,
    job_manifest,
    job_status,
    job_summary,
    job_view,
    parse_job_spec,
    split_body,
    text_configmap,
    text_source,
)
from ..kube import answering
from ..voices import capability_of

router = APIRouter(tags=["productions"], dependencies=[Authenticated])
PATH = "/v1/audio/jobs"
JSON = dict[str, Any]
UPLOAD_RENAMES = {"textFrom": "file"}
JobName = Annotated[str, Path(description="The job's name (a DNS label).", examples=["podcast"])]

_SCRIPT_EXAMPLE = {
    "name": "podcast",
    "deployment": "joe",
    "script": [
        {"role": "Alice", "text": "Welcome back to the show."},
        {"role": "Bob", "text": "Thanks, Alice. It is good to be here.", "pauseAfterMs": 800},
    ],
    "roles": {"Alice": {"voice": "joe"}, "Bob": {"voice": "en-us", "deployment": "espeak"}},
    "format": "mp3",
}
_TEXT_EXAMPLE = {
    "deployment": "joe",
    "text": "# Chapter 1\n\nIt was a bright cold day in April.\n\n# Chapter 2\n\nThe clocks were striking thirteen.",
    "chapters": {"split": "headings"},
    "format": "opus",
    "parallelism": 2,
}
_REQUEST_SCHEMA: JSON = {
    **model_schema(TtsJobSpec),
    "title": "JobRequest",
    "description": "A TtsJob's spec (camelCase, as in the CRD; textFrom excepted) and optionally its name.",
}
_REQUEST_SCHEMA["properties"] = {
    "name": {"type": "string", "description": "The job's name (a DNS label); default: prod-xxxxx."},
    **{k: v for k, v in _REQUEST_SCHEMA["properties"].items() if k != "textFrom"},
}
_FORM_SCHEMA: JSON = {
    "type": "object",
    "required": ["file", "deployment"],
    "properties": {
        "file": {"type": "string", "format": "binary", "description": "The text: UTF-8, at most 1 MiB."},
        "name": {"type": "string", "description": "The job's name; default: prod-xxxxx."},
        "deployment": {"type": "string", "description": "The TtsDeployment that speaks it."},
        "voice": {"type": "string", "default": "default"},
        "format": {"type": "string", "enum": ["mp3", "opus", "flac", "wav"], "default": "mp3"},
        "textFormat": {"type": "string", "enum": ["plain", "script"], "description": "script: 'Role: line' lines."},
        "roles": {"type": "string", "description": 'JSON: {"Alice": {"voice": "joe"}, …}.'},
        "chapters": {"type": "string", "description": "The split: none, headings, sections or size (or JSON)."},
        "maxCharacters": {"type": "integer", "description": "With chapters=size: the most characters a chapter."},
        "pauses": {"type": "string", "description": 'JSON: {"paragraphMs": 500, "roleMs": 350, …}.'},
        "speed": {"type": "number", "default": 1.0},
        "parallelism": {"type": "integer", "default": 1},
        "retain": {"type": "boolean", "default": True},
    },
}
_CREATED_EXAMPLE: JSON = {
    "id": "podcast",
    "object": "audio.job",
    "name": "podcast",
    "createdAt": "2026-12-03T12:00:00Z",
    "phase": None,
    "progress": None,
    "chapters": {"done": 0, "total": None},
    "plan": {"characters": 64, "chunks": 2, "chapters": 1},
    "spec": {"deployment": "joe", "format": "mp3"},
    "status": {"chapters": [], "conditions": []},
}
CREATE_DOCS: JSON = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": _REQUEST_SCHEMA,
                "examples": {
                    "script": {"summary": "A two-voice script", "value": _SCRIPT_EXAMPLE},
                    "text": {"summary": "A text cut into chapters at its headings", "value": _TEXT_EXAMPLE},
                },
            },
            "multipart/form-data": {
                "schema": _FORM_SCHEMA,
                "example": {"deployment": "joe", "chapters": "headings", "format": "mp3"},
            },
        },
    }
}


def check_deployments(state: State, spec: TtsJobSpec) -> None:
    """Every deployment the job names exists and speaks (the operator would fail the job otherwise)."""
    for field, name in deployments_named(spec):
        obj = state.deployment(name)
        if obj is None:
            raise ApiError(
                404, f"{field}: TtsDeployment {name!r} does not exist (see GET /v1/models)", "model_not_found", field
            )
        if capability_of(obj) != Capability.SPEECH:
            raise ApiError(400, f"{field}: {name!r} is a transcription model", "not_a_speech_model", field)


async def _read_form(request: Request) -> tuple[str | None, JSON, str]:
    """(name, spec fields, text) of a multipart request."""
    form = await request.form(max_files=1, max_fields=32)
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise ApiError(400, "file is required: the text to speak, UTF-8", "invalid_value", "file")
    fields: dict[str, str] = {}
    for key, value in form.multi_items():
        if key == "file":
            continue
        if not isinstance(value, str):
            raise ApiError(400, f"{key}: only 'file' may be a file", "invalid_value", key)
        fields[key] = value
    text = decode_text(await upload.read(MAX_UPLOAD_BYTES + 1))
    name = fields.pop("name", None)
    return name or None, form_spec(fields), text


async def _read_json(request: Request) -> tuple[str | None, JSON]:
    try:
        body = await request.json()
    except ValueError as exc:
        raise ApiError(400, "the body is not valid JSON", "invalid_json") from exc
    return split_body(body)


@router.post(
    PATH,
    status_code=201,
    summary="Start a production",
    openapi_extra=CREATE_DOCS,
    responses={
        201: {"description": "The TtsJob was created.", "content": {"application/json": {"example": _CREATED_EXAMPLE}}},
        400: {"description": "A field is invalid (``param`` names it), or the text has nothing to speak."},
        403: {"description": "Creating a job needs an admin key."},
        404: {"description": "A deployment the job names does not exist."},
        409: {"description": "A job of that name exists."},
        413: {"description": "The uploaded file is over 1 MiB."},
        415: {"description": "The body is neither JSON nor multipart/form-data."},
    },
)
async def create_job(request: Request, state: State, _: Admin) -> JSONResponse:
    """Create a TtsJob from a JSON spec (``text`` or ``script``), or from an uploaded text file
    (multipart: ``file`` plus the spec's fields as form fields; the file is stored in the ConfigMap
    ``ttsjob-<name>-text``, owned by the job). The plan is checked before anything is created."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    text: str | None = None
    renames: dict[str, str] | None = None
    if kind in ("multipart/form-data", "application/x-www-form-urlencoded"):  # a form without its file: a 400
        name, raw, text = await _read_form(request)
        renames = UPLOAD_RENAMES
    elif kind in ("application/json", ""):
        name, raw = await _read_json(request)
    else:
        raise ApiError(415, f"send application/json or multipart/form-data, not {kind!r}", "unsupported_media_type")
    name = check_job_name(name) if name is not None else generate_name()
    if text is not None:
        raw["textFrom"] = text_source(name)
    spec = parse_job_spec(raw, renames)
    check_deployments(state, spec)
    totals = await asyncio.to_thread(check_plan, spec, text, name, state.namespace, renames)
    job = job_manifest(name, state.namespace, spec)
    configmap = text_configmap(name, state.namespace, text) if text is not None else None
    exists = ApiError(409, f"job {name!r} (or its text's ConfigMap) already exists", "job_exists", "name")
    with answering(f"job {name!r}", {409: exists}):
        created = await state.kube.create_job(job, configmap)
    return JSONResponse({**job_view(created), "plan": totals.model_dump(mode="json")}, 201)


@router.get(PATH, summary="List productions")
async def list_jobs(state: State) -> JSON:
    """The namespace's TtsJobs, newest first: name, phase, progress, chapters done, creation time."""
    with answering("the jobs"):
        items = await state.kube.list_jobs()
    items.sort(key=lambda o: (o["metadata"].get("creationTimestamp") or "", o["metadata"]["name"]), reverse=True)
    return {"object": "list", "data": [job_summary(o) for o in items]}


async def _get(state: State, name: str) -> JSON:
    check_job_name(name)
    missing = ApiError(404, f"job {name!r} does not exist", "job_not_found", "name")
    with answering(f"job {name!r}", {404: missing}):
        return await state.kube.get_job(name)


@router.get(PATH + "/{name}", summary="Get a production")
async def get_job(name: JobName, state: State) -> JSON:
    """One TtsJob in full: spec, phase, progress, conditions, and the chapters written (with URLs)."""
    return job_view(await _get(state, name))


@router.get(
    PATH + "/{name}/chapters/{n}",
    summary="Download a chapter",
    response_class=FileResponse,
    responses={
        200: {
            "description": "The chapter's audio file.",
            "content": {t: {} for t in ("audio/mpeg", "audio/ogg", "audio/flac", "audio/wav")},
        },
        404: {"description": "No such job, or the chapter is not written yet."},
        409: {"description": "The job writes to another claim than the jobs volume this router reads."},
    },
)
async def get_chapter(
    name: JobName, n: Annotated[int, Path(description="The chapter number, from 1.", examples=[1])], state: State
) -> FileResponse:
    """Stream chapter ``n`` once the renderer has written it (its json sidecar exists)."""
    obj = await _get(state, name)
    try:
        spec = parse_spec(TtsJobSpec, obj.get("spec"))
    except InvalidSpec as exc:
        raise ApiError(409, f"job {name!r} has an invalid spec ({exc})", "invalid_job") from exc
    claim = spec.storage.claim_name
    if claim and claim != state.settings.jobs_claim:
        raise ApiError(
            409,
            f"job {name!r} writes to the claim {claim!r}; the router reads only the default jobs volume: "
            "read its files from that claim",
            "job_on_other_claim",
        )
    root = state.settings.jobs_root
    files = chapter_files(root, obj, spec, n)
    ready = await asyncio.to_thread(
        lambda: files.sidecar.is_file() and files.audio.is_file() and inside(root, files.audio)
    )
    if not ready:
        progress = job_status(obj).progress
        total = progress.chapters_total if progress and progress.chapters_total else None
        if total is not None and n > total:
            raise ApiError(404, f"job {name!r} has {total} chapters, not {n}", "chapter_not_found", "n")
        done = f" ({progress.chapters_done} of {total} written)" if progress and total else ""
        raise ApiError(404, f"chapter {n} of job {name!r} is not written yet{done}", "chapter_not_ready", "n")
    return FileResponse(
        files.audio, media_type=files.media_type, filename=files.filename, content_disposition_type="inline"
    )


@router.delete(PATH + "/{name}", summary="Delete a production")
async def delete_job(name: JobName, state: State, _: Admin) -> JSON:
    """Delete the TtsJob; its Job, plan and uploaded text go with it. Its files stay on the volume
    unless the job says ``retain: false``."""
    check_job_name(name)
    missing = ApiError(404, f"job {name!r} does not exist", "job_not_found", "name")
    with answering(f"job {name!r}", {404: missing}):
        await state.kube.delete_job(name)
    return {"id": name, "object": "audio.job", "deleted": True}

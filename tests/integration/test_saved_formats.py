"""Speech saved through the router with the OpenAI SDK (``write_to_file`` and the streaming
response's ``stream_to_file``) reads back whole in libsndfile, sox and FFmpeg: the router relays
the pods' bytes as they are (ADR 0036), so a FLAC or WAV states its true length here too (ADR 0046).

The exact lengths are shown in-process (tests/component/test_saved_formats.py, where Piper speaks
with steady durations); here the model is the sample joe voice, whose lengths vary by a few tens of
milliseconds from one request to the next, so each file is checked for every reader agreeing with
what FFmpeg decodes from it, and for a length near the pcm of the same text.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from openai import OpenAI

from tests.readback import EXTENSIONS, EXTRA, Saved, lengths, read_pyav

from .conftest import Router

pytestmark = pytest.mark.skipif(shutil.which("soxi") is None, reason="needs sox (make deps installs it)")

TEXT = "Saved through the router. The file states its true length. Every reader agrees on it."
PIPER_JITTER = 0.25  # seconds: the joe voice's stochastic durations, request to request, for this text


def sdk(router: Router) -> OpenAI:
    return OpenAI(base_url=f"{router.url}/v1", api_key=router.key, max_retries=0)


def write_whole(router: Router, model: str, fmt: str, path: Path) -> Saved:
    answer = sdk(router).audio.speech.create(model=model, voice="default", input=TEXT, response_format=fmt)
    answer.write_to_file(path)
    return Saved(path, fmt, int(answer.response.headers["x-sample-rate"]))


def stream_to_file(router: Router, model: str, fmt: str, path: Path) -> Saved:
    speech = sdk(router).audio.speech.with_streaming_response
    with speech.create(model=model, voice="default", input=TEXT, response_format=fmt) as answer:
        answer.stream_to_file(path)
        return Saved(path, fmt, int(answer.headers["x-sample-rate"]))


@pytest.mark.parametrize("fmt", ["flac", "wav", "mp3", "opus", "aac", "pcm"])
def test_files_saved_with_the_openai_sdk_read_back_whole(router: Router, speaker: str, tmp_path: Path, fmt: str):
    reference = read_pyav(write_whole(router, speaker, "pcm", tmp_path / "reference.pcm"))
    assert reference > 2.0
    low, high = EXTRA.get(fmt, (0.0, 0.0))
    for save in (write_whole, stream_to_file):
        saved = save(router, speaker, fmt, tmp_path / f"{save.__name__}.{EXTENSIONS[fmt]}")
        got = lengths(saved)
        decoded = got["pyav"]
        if fmt not in EXTRA:  # lossless: the header's length is the decoded one, to the sample
            assert max(got.values()) - min(got.values()) < 0.5 / saved.rate, (save.__name__, got)
        else:
            assert all(abs(s - decoded) <= high for s in got.values()), (save.__name__, got)
        assert low - PIPER_JITTER <= decoded - reference <= high + PIPER_JITTER, (save.__name__, got, reference)

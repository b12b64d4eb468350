"""tts_render's files on the claim: a chunk is done only when key, size and sha256 agree; chapter sources."""

import json

import numpy as np
import pytest
from tts_crds.jobs import TtsJobSpec
from tts_crds.plan import build_plan
from tts_render.chapters import chapter_source, is_joined, join_chapter
from tts_render.files import chunk_paths, is_done, write_chunk

from tests.helpers import wav_bytes

ROLES = {"Alice": {"voice": "joe"}, "Bob": {"voice": "en-us", "deployment": "espeak"}}


def make_plan(text="Alice: Hello Bob.\nBob: Hello Alice.\nAlice: Bye now.", **spec):
    body = {"deployment": "joe", "text": text, "textFormat": "script", "roles": ROLES, "format": "wav", **spec}
    return build_plan(TtsJobSpec.model_validate(body), None, name="j", namespace="ns", uid="u")


def wav(seconds=0.5, rate=22050):
    t = np.arange(int(seconds * rate)) / rate
    return wav_bytes((0.2 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), rate)


@pytest.fixture
def chunk_on_disk(tmp_path):
    chunk = next(make_plan().chunks())
    sidecar = write_chunk(tmp_path, chunk, wav())
    return tmp_path, chunk, sidecar


def test_a_written_chunk_is_done_and_describes_its_wav(chunk_on_disk):
    root, chunk, sidecar = chunk_on_disk
    audio, meta = chunk_paths(root, chunk)
    assert audio.name == "00001.wav" and audio.parent.name == "001" and meta.suffix == ".json"
    assert is_done(root, chunk)
    assert sidecar == json.loads(meta.read_text())
    assert sidecar["key"] == chunk.key and sidecar["bytes"] == audio.stat().st_size
    assert sidecar["sampleRate"] == 22050 and sidecar["samples"] == 11025 and sidecar["seconds"] == 0.5
    assert not list(audio.parent.glob(".*"))  # no temporary names left


def test_a_missing_sidecar_or_wav_is_not_done(tmp_path):
    chunk = next(make_plan().chunks())
    assert not is_done(tmp_path, chunk)
    write_chunk(tmp_path, chunk, wav())
    chunk_paths(tmp_path, chunk)[0].unlink()
    assert not is_done(tmp_path, chunk)


def test_a_changed_key_is_not_done(chunk_on_disk):
    root, chunk, _ = chunk_on_disk
    assert not is_done(root, chunk.model_copy(update={"key": "0" * 64}))


def test_a_truncated_wav_is_not_done(chunk_on_disk):
    root, chunk, _ = chunk_on_disk
    audio = chunk_paths(root, chunk)[0]
    audio.write_bytes(audio.read_bytes()[:-100])
    assert not is_done(root, chunk)


def test_a_wav_of_the_right_size_but_other_bytes_is_not_done(chunk_on_disk):
    root, chunk, _ = chunk_on_disk
    audio = chunk_paths(root, chunk)[0]
    data = bytearray(audio.read_bytes())
    data[-1] ^= 0xFF
    audio.write_bytes(bytes(data))
    assert not is_done(root, chunk)


def test_a_garbled_sidecar_is_not_done(chunk_on_disk):
    root, chunk, _ = chunk_on_disk
    chunk_paths(root, chunk)[1].write_text("{not json")
    assert not is_done(root, chunk)


def test_a_streamed_wav_is_stored_with_its_true_sizes(tmp_path):
    chunk = next(make_plan().chunks())
    data = bytearray(wav())
    data[4:8] = b"\xff\xff\xff\xff"  # what a streamed WAV's header says
    write_chunk(tmp_path, chunk, bytes(data))
    stored = chunk_paths(tmp_path, chunk)[0].read_bytes()
    assert int.from_bytes(stored[4:8], "little") == len(stored) - 8 and is_done(tmp_path, chunk)


def test_chapter_source_is_the_keys_in_order():
    chapter = make_plan().chapters[0]
    again = make_plan().chapters[0]
    reordered = chapter.model_copy(update={"chunks": chapter.chunks[::-1]})
    changed = make_plan(text="Alice: Hello Bob.\nBob: Hello Alice.\nAlice: Bye!").chapters[0]
    assert chapter_source(chapter) == chapter_source(again)
    assert len({chapter_source(chapter), chapter_source(reordered), chapter_source(changed)}) == 3


def test_a_joined_chapter_is_not_joined_again_until_its_plan_changes(tmp_path):
    plan = make_plan()
    chapter = plan.chapters[0]
    for chunk in chapter.chunks:
        write_chunk(tmp_path, chunk, wav(0.4))
    assert not is_joined(tmp_path, chapter)
    sidecar = join_chapter(tmp_path, chapter, "wav")
    assert is_joined(tmp_path, chapter)
    pauses = sum(c.pause_after_ms for c in chapter.chunks) / 1000
    assert sidecar["durationSeconds"] == pytest.approx(3 * 0.4 + pauses, abs=0.001)
    assert set(sidecar) == {"number", "title", "file", "durationSeconds", "sha256", "bytes", "format", "source"}
    changed = make_plan(text="Alice: Hello Bob.\nBob: Hello Alice.\nAlice: Bye!").chapters[0]
    assert not is_joined(tmp_path, changed)
    (tmp_path / chapter.file).write_bytes(b"short")
    assert not is_joined(tmp_path, chapter)

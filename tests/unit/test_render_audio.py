"""tts_render's pure audio: BS.1770 loudness, per-role gain, the join, its fades, resampling, encoding."""

import io
import math

import numpy as np
import pytest
import soundfile as sf
from tts_render.encode import encode
from tts_render.join import Piece, fade, join, pause_samples, resample, role_gains
from tts_render.loudness import CEILING_DBFS, TARGET_LUFS, gain_db, integrated_loudness, k_weight, k_weighting_ir


def sine(freq: float, dbfs: float, seconds: float, rate: int) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (10 ** (dbfs / 20) * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.mark.parametrize("rate", [16000, 22050, 24000, 44100, 48000])
def test_a_997_hz_sine_at_minus_20_dbfs_is_minus_23_lufs(rate):
    # BS.1770's reference: a 0 dBFS 997 Hz sine reads −3.01 LKFS (mean square ½, K-weighting ≈ 0 dB there)
    assert integrated_loudness(sine(997, -20, 3.0, rate), rate) == pytest.approx(-23.01, abs=0.1)


def test_k_weighting_lifts_highs_and_cuts_lows():
    rate = 48000
    low, mid, high = (integrated_loudness(sine(f, -20, 2.0, rate), rate) for f in (30, 997, 8000))
    assert low < mid - 1.0 and high > mid + 3.0  # the shelf adds ≈4 dB above 2 kHz, the high-pass cuts 38 Hz


def test_k_weighting_in_segments_is_the_whole_convolution():
    x = np.random.default_rng(1).standard_normal(5000).astype(np.float32)
    whole = np.convolve(x.astype(np.float64), k_weighting_ir(16000))[: len(x)]
    assert np.allclose(k_weight(x, 16000, segment=1024), whole, atol=1e-9)


def test_gating_ignores_silence_around_speech():
    rate = 22050
    tone = sine(997, -20, 10.0, rate)
    padded = np.concatenate([np.zeros(rate * 4, np.float32), tone, np.zeros(rate * 4, np.float32)])
    # ungated, 8 s of silence beside 10 s of tone would read 2.6 dB quieter; only the blocks the tone's
    # edges share with silence still count (BS.1770 keeps them: they pass both gates)
    assert integrated_loudness(padded, rate) == pytest.approx(integrated_loudness(tone, rate), abs=0.3)


def test_silence_has_no_loudness_and_no_gain():
    assert integrated_loudness(np.zeros(22050, np.float32), 22050) == -math.inf
    assert gain_db(-math.inf, 0.0) == 0.0


def test_gain_reaches_the_target_unless_a_peak_would_pass_the_ceiling():
    assert gain_db(-30.0, 0.1) == pytest.approx(10.0)  # peak −20 dBFS + 10 dB stays under −1
    assert gain_db(-30.0, 0.5) == pytest.approx(CEILING_DBFS - 20 * math.log10(0.5))  # held at −1 dBFS
    assert gain_db(-10.0, 0.9) == pytest.approx(-10.0)


def test_roles_are_matched_to_the_target_each():
    rate = 22050
    quiet, loud = sine(440, -35, 2.0, rate), sine(440, -12, 2.0, rate)
    gains = role_gains([Piece(quiet, rate, 0, "Alice"), Piece(loud, rate, 0, "Bob")], rate)
    for samples, role in ((quiet, "Alice"), (loud, "Bob")):
        after = samples * gains[role]
        assert integrated_loudness(after, rate) == pytest.approx(TARGET_LUFS, abs=0.2)
        assert 20 * math.log10(np.max(np.abs(after))) <= CEILING_DBFS + 1e-6


def test_join_length_is_the_chunks_plus_the_pauses_to_the_sample():
    pieces = [
        Piece(sine(200, -20, 1.3, 22050), 22050, 350, "Alice"),
        Piece(sine(300, -20, 0.7, 24000), 24000, 1500, "Bob"),
        Piece(sine(250, -20, 0.9, 16000), 16000, 0, "Alice"),
    ]
    samples, rate = join(pieces)
    assert rate == 24000
    expected = sum(len(resample(p.samples, p.rate, rate)) + pause_samples(p.pause_after_ms, rate) for p in pieces)
    assert len(samples) == expected
    assert pause_samples(350, 24000) == 8400 and pause_samples(1500, 22050) == 33075


def test_joins_have_no_jump_and_the_pauses_are_silent():
    rate = 22050
    # chunks that start and end at full swing: without the fades each join would jump by ~0.5
    loud = np.full(rate, 0.5, np.float32)
    samples, _ = join([Piece(loud, rate, 100, "A"), Piece(-loud, rate, 0, "A")])
    assert np.max(np.abs(np.diff(samples))) < 0.05
    assert samples[0] == 0 and samples[-1] == 0
    gap = samples[rate : rate + pause_samples(100, rate)]
    assert np.all(gap == 0)


def test_fade_is_a_raised_cosine_of_5_ms():
    out = fade(np.ones(1000, np.float32), 22050)
    n = round(22050 * 0.005)
    assert out[0] == 0 and out[n] == 1 and out[n // 2] == pytest.approx(0.5, abs=0.02)
    assert np.all(np.diff(out[:n]) > 0) and np.array_equal(out[::-1], out)


def test_resampling_keeps_the_duration():
    x = sine(440, -20, 2.0, 22050)
    for target in (16000, 24000, 44100, 48000):
        assert abs(len(resample(x, 22050, target)) - len(x) * target / 22050) <= 1
    assert resample(x, 22050, 22050) is x or np.array_equal(resample(x, 22050, 22050), x)


@pytest.mark.parametrize(
    ("fmt", "rate", "out_rate"),
    [("wav", 22050, 22050), ("flac", 22050, 22050), ("mp3", 22050, 22050), ("opus", 22050, 48000)],
)
def test_every_format_decodes_to_the_same_duration(fmt, rate, out_rate):
    x = sine(440, -20, 2.0, rate)
    data, got = sf.read(io.BytesIO(encode(x, rate, fmt)), dtype="float32")
    assert got == out_rate
    assert len(data) / out_rate == pytest.approx(2.0, abs=0.06)


def test_an_unknown_format_is_refused():
    with pytest.raises(ValueError, match="aac"):
        encode(np.zeros(10, np.float32), 22050, "aac")

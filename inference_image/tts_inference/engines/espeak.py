"""espeak-ng (formant synthesis, about 100 languages including Mandarin and Cantonese), through ctypes.

The library and its data come from the ``espeakng-loader`` wheel (``package://espeakng-loader``), or
the data from a directory (``file:///usr/share/espeak-ng-data``). espeak-ng keeps global state, so one
lock serialises syntheses; each takes milliseconds.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..audio import change_tempo
from ..words import Timed, from_char_events, trim
from .base import Engine, EngineUnavailable, ModelLoadError, SynthesisOptions, Voice, model_location

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_RATE = 1
_DEFAULT_WPM = 175
_MIN_WPM, _MAX_WPM = 80, 450
_EVENT_WORD = 1
_EVENT_END = 5  # the end of a clause or sentence


class _EspeakEvent(ctypes.Structure):
    """espeak_EVENT (speak_lib.h): what the synth callback is told beside each piece of audio."""

    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),  # 1-based, in characters of the text
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),  # milliseconds
        ("sample", ctypes.c_int),  # samples from the start of the text
        ("user_data", ctypes.c_void_p),
        ("id", ctypes.c_char * 8),
    ]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_EspeakEvent))


class _EspeakVoice(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_char_p),
        ("languages", ctypes.c_void_p),
        ("identifier", ctypes.c_char_p),
        ("gender", ctypes.c_ubyte),
        ("age", ctypes.c_ubyte),
        ("variant", ctypes.c_ubyte),
        ("xx1", ctypes.c_ubyte),
        ("score", ctypes.c_int),
        ("spare", ctypes.c_void_p),
    ]


def _languages(ptr: int | None) -> list[str]:
    """espeak's ``languages`` field: (priority byte, NUL-terminated name) pairs, ended by a 0 byte."""
    out: list[str] = []
    if not ptr:
        return out
    offset = 0
    while ctypes.string_at(ptr + offset, 1) != b"\0":
        name = ctypes.string_at(ptr + offset + 1).decode("utf-8", "replace")
        out.append(name)
        offset += 2 + len(name.encode())
    return out


def wpm_and_tempo(speed: float) -> tuple[int, float]:
    """espeak speaks 80 to 450 words a minute: the rest of ``speed`` is made up by a tempo change."""
    wanted = _DEFAULT_WPM * speed
    wpm = round(min(max(wanted, _MIN_WPM), _MAX_WPM))
    return wpm, wanted / wpm


class EspeakEngine(Engine):
    name = "espeak"
    _lock = threading.Lock()  # one espeak-ng library per process

    def __init__(self, model_uri: str, model_dir: str, device: str = "auto") -> None:
        super().__init__(model_uri, model_dir, device)
        self._lib: ctypes.CDLL | None = None
        self._rate = 0
        self._voices: dict[str, Voice] = {}
        self._names: dict[str, str] = {}
        self._aliases: dict[str, str] = {}  # other language codes a voice answers to (zh -> cmn)
        self._chunks: list[np.ndarray] = []
        self._words: list[tuple[int, int]] = []  # (0-based character position, sample) of each word event
        self._breaks: list[int] = []  # samples where a clause ends
        self._stop: threading.Event | None = None
        self._callback = _CALLBACK(self._on_audio)

    def _paths(self) -> tuple[str, Path]:
        try:
            import espeakng_loader
        except ImportError as exc:
            raise EngineUnavailable("engine 'espeak' needs the Python package 'espeakng-loader'") from exc
        library = espeakng_loader.get_library_path()
        scheme = self.model_uri.partition("://")[0]
        if scheme in ("package", "espeak", ""):
            return library, Path(espeakng_loader.get_data_path())
        data = model_location(self.model_uri, self.model_dir)
        if (data / "espeak-ng-data").is_dir():
            data = data / "espeak-ng-data"
        if not (data / "phontab").exists():
            raise ModelLoadError(f"{data} is not an espeak-ng-data directory (no phontab)")
        return library, data

    def load(self) -> None:
        library, data = self._paths()
        try:
            lib = ctypes.CDLL(library)
        except OSError as exc:
            raise ModelLoadError(f"cannot load libespeak-ng from {library}: {exc}") from exc
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetSynthCallback.argtypes = [_CALLBACK]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.argtypes = [
            ctypes.c_char_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        lib.espeak_ListVoices.restype = ctypes.POINTER(ctypes.POINTER(_EspeakVoice))
        lib.espeak_ListVoices.argtypes = [ctypes.c_void_p]
        with self._lock:
            # the path is the directory holding espeak-ng-data
            rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, str(data.parent).encode(), 0)
            if rate <= 0:
                raise ModelLoadError(f"espeak_Initialize failed with {rate} (data at {data})")
            lib.espeak_SetSynthCallback(self._callback)
            listed = lib.espeak_ListVoices(None)
            i = 0
            while listed[i]:
                v = listed[i].contents
                identifier = (v.identifier or b"").decode()
                langs = _languages(v.languages)
                i += 1
                if identifier.startswith("mb/") or not langs:
                    continue  # MBROLA voices need databases this image does not ship
                lang = langs[0]
                # several voices can list one language first: prefer the one named after it
                exact = identifier.rsplit("/", 1)[-1].lower() == lang
                if lang not in self._voices or exact:
                    self._voices[lang] = Voice(lang, (v.name or b"").decode(), lang)
                    self._names[lang] = (v.name or b"").decode()
                for alias in langs[1:]:
                    self._aliases.setdefault(alias, lang)
        self._lib = lib
        self._rate = rate

    @property
    def sample_rate(self) -> int:
        return self._rate

    def voices(self) -> list[Voice]:
        return sorted(self._voices.values(), key=lambda v: v.id)

    @property
    def default_voice(self) -> str:
        return "en-us" if "en-us" in self._voices else self.voices()[0].id

    def resolve_voice(self, voice: str) -> str:
        key = voice.lower().replace("_", "-")
        if key in self._voices:
            return key
        if key in self._aliases and self._aliases[key] in self._voices:
            return self._aliases[key]
        return super().resolve_voice(voice)

    def details(self) -> dict[str, str]:
        return {"languages": str(len(self._voices))}

    def _on_audio(self, wav: ctypes._Pointer, count: int, events: ctypes._Pointer) -> int:
        if count > 0 and wav:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(count,)).copy())
        i = 0
        while events and events[i].type != 0:  # espeakEVENT_LIST_TERMINATED
            event = events[i]
            if event.type == _EVENT_WORD:
                self._words.append((event.text_position - 1, event.sample))
            elif event.type == _EVENT_END:
                self._breaks.append(event.sample)
            i += 1
        return 1 if self._stop is not None and self._stop.is_set() else 0

    def synthesize(self, sentences: list[str], voice: str, options: SynthesisOptions) -> Iterator[np.ndarray]:
        for chunk, _words in self.synthesize_timed(sentences, voice, options):
            yield chunk

    def synthesize_timed(
        self, sentences: list[str], voice: str, options: SynthesisOptions
    ) -> Iterator[tuple[np.ndarray, list[Timed]]]:
        voice = self.resolve_voice(voice)
        for text in sentences:
            if options.stop.is_set():
                return
            chunk, spoken, breaks, made = self._speak(text, voice, options)
            if not len(chunk):
                continue
            timed: list[Timed] = []
            if options.word_timestamps:
                scale = len(chunk) / made  # the tempo change stretches every position alike
                events = [(pos, round(sample * scale)) for pos, sample in spoken]
                timed = from_char_events(text, events, [round(b * scale) for b in breaks], len(chunk))
                timed = trim(timed, chunk, self._rate)
            yield chunk, timed

    def _speak(
        self, text: str, voice: str, options: SynthesisOptions
    ) -> tuple[np.ndarray, list[tuple[int, int]], list[int], int]:
        """The sentence's audio, its word events and clause breaks, and how many samples espeak made
        (before the tempo change)."""
        assert self._lib is not None, "load() first"
        wpm, tempo = wpm_and_tempo(options.speed)
        data = text.encode("utf-8")
        with self._lock:
            self._chunks, self._words, self._breaks = [], [], []
            self._stop = options.stop
            if self._lib.espeak_SetVoiceByName(self._names[voice].encode()) != 0:
                raise ModelLoadError(f"espeak-ng could not select voice {voice!r}")
            self._lib.espeak_SetParameter(_RATE, wpm, 0)
            self._lib.espeak_Synth(data, len(data) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
            chunks, self._chunks, self._stop = self._chunks, [], None
            words, breaks = self._words, self._breaks
        if not chunks:
            return np.zeros(0, dtype=np.int16), [], [], 1
        made = np.concatenate(chunks)
        return change_tempo(made, self._rate, tempo), words, breaks, len(made)

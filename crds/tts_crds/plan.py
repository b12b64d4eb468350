"""A TtsJob's plan: its text cut into chapters and chunks, each chunk with its voice and pause (ADR 0049).

Pure: the operator builds the plan from the spec (and the text of ``textFrom``), stores it gzipped in a
ConfigMap (:func:`plan_bytes`), and every renderer pod loads it (:func:`load_plan`) and renders its
:func:`shard`. Building it twice from the same input gives the same bytes, so a re-created ConfigMap
never invalidates chunks already on the volume: a chunk file is reused when its sidecar's ``key``
(sha256 of model, voice, speed and text) matches the plan's.

Input, read line by line:

- **Prose** (``textFormat: plain``): paragraphs are separated by blank lines; a markdown heading
  (``# Title``) or a line such as ``Chapter 1``, ``CHAPTER ONE``, ``Part II``, ``Prologue`` is a
  heading (spoken, ``#`` marks dropped); a line of ``***``, ``* * *``, ``---`` or ``___`` (not spoken),
  or two or more blank lines, ends a section.
- **Script** (``textFormat: script``)::

      # Episode 1                 a heading (a chapter title; not spoken)
      // a comment                ignored
      Alice: Hello, Bob.          a line: the role (a key of spec.roles), a colon, what it says
        It is good to see you.    an indented line (or any line that is not "Role: ...") continues it
      [pause 800ms]               silence after the line before (also "[pause 1.5s]", or at a line's end)

      Still Alice, a new          after a blank line, text without a role is a new paragraph
      paragraph.                  of the same role

  A line is ``Role: text`` when it does not start with white space and what precedes its first colon
  is a role name (letters, digits, space, ``_ . ' -``; at most 40 characters); a name that is not in
  ``spec.roles`` is an error, so "Note: this" in a script needs indenting. Errors are
  :class:`ScriptError` naming the field and the line.
- A structured ``spec.script`` is a list of lines already.

Chapters (``spec.chapters.split``): ``none``; ``headings`` (a chapter starts at each heading);
``sections`` (at each section break; its title is its first heading, if any); ``size`` (at most
``maxCharacters`` each, cut between paragraphs, or between sentences of a longer one). A chapter with
no title of its own is "Chapter N".

Chunks: each paragraph (or script line) is cut into sentences by :func:`tts_crds.text.split_sentences`,
the splitter the inference server streams with, and the sentences are packed into chunks of at most
:data:`CHUNK_CHARACTERS` (each sentence on its own when ``pauses.sentenceMs`` > 0). The last chunk of a
paragraph pauses ``paragraphMs`` after it, ``roleMs`` where the next line is another role's (a script
line's own ``pauseAfterMs`` wins), and the last chunk of a chapter not at all.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from pydantic import Field

from .jobs import MAX_ROLE_LENGTH, ROLE_PATTERN, ChapterSplit, TtsJobSpec
from .models import _Model
from .text import split_sentences

PLAN_VERSION = 1
CHUNK_CHARACTERS = 600
# a ConfigMap holds at most 1 MiB
MAX_PLAN_BYTES = 1024 * 1024 - 4096
_NO_FIRST_CUT = 10**9  # split_sentences's early first cut is for streaming, not for chunks

_HEADING_MD = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$")
_NUMBER_WORDS = (
    "one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen|sixteen|"
    "seventeen|eighteen|nineteen|twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety|hundred"
)
_HEADING_LINE = re.compile(
    rf"^((chapter|part|book)\s+([0-9]+|[ivxlcdm]+|({_NUMBER_WORDS})([ -]({_NUMBER_WORDS}))*)\b.*"
    r"|prologue|epilogue|preface|foreword|introduction|afterword)[.:]?$",
    re.IGNORECASE,
)
_HEADING_MAX = 80
_SECTION_MARK = re.compile(r"^\s*(([*]\s*){3,}|(-\s*){3,}|(_\s*){3,})$")
_PAUSE = re.compile(r"\[pause\s+([0-9]+(?:\.[0-9]+)?)\s*(ms|s)\]\s*$", re.IGNORECASE)
_ROLE_LINE = re.compile(ROLE_PATTERN.rstrip("$") + r"\s*:(?P<said>.*)$")


class PlanError(ValueError):
    """Input a plan cannot be made from; ``field`` names the spec field (``spec.roles``)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class ScriptError(PlanError):
    """A bad line of a plain-text script: ``line`` is its number, from 1."""

    def __init__(self, field: str, line: int, message: str) -> None:
        super().__init__(field, f"line {line}: {message}")
        self.line = line


# --- the plan --------------------------------------------------------------------------------


class PlanChunk(_Model):
    id: str = Field(description="<chapter>-<chunk>, e.g. 001-00001 (also its file's name).")
    ordinal: int = Field(ge=0, description="Position in the whole plan, from 0 (shard k of K has ordinal % K == k).")
    model: str
    voice: str
    role: str = Field(default="", description="The script role speaking it; empty for prose.")
    text: str
    speed: float
    pause_after_ms: int = Field(default=0, ge=0)
    characters: int = Field(ge=0)
    key: str = Field(description="sha256 of model, voice, speed and text: the chunk file is reused when it matches.")

    @property
    def stem(self) -> str:
        """The chunk's files without extension, under the plan's dir: ``chunks/001/00001``."""
        chapter, number = self.id.split("-")
        return f"chunks/{chapter}/{number}"


class PlanChapter(_Model):
    number: int = Field(ge=1)
    title: str
    file: str = Field(description="Its audio file under the plan's dir, e.g. chapters/001.mp3.")
    chunks: list[PlanChunk]


class PlanTotals(_Model):
    characters: int = 0
    chunks: int = 0
    chapters: int = 0


class Plan(_Model):
    version: int = PLAN_VERSION
    job: str
    namespace: str
    uid: str
    format: str
    dir: str = Field(description="The job's directory relative to the claim's root.")
    chapters: list[PlanChapter]
    totals: PlanTotals

    def chunks(self) -> Iterator[PlanChunk]:
        for chapter in self.chapters:
            yield from chapter.chunks


def chunk_key(model: str, voice: str, speed: float, text: str) -> str:
    """What a chunk's audio depends on, hashed: equal keys mean the same request to the router."""
    return hashlib.sha256(json.dumps([model, voice, speed, text], ensure_ascii=False).encode()).hexdigest()


def chapter_source(chapter: PlanChapter) -> str:
    """sha256 of a chapter's chunk keys in order, one per line: a chapter file's sidecar records it, so
    the file counts as this plan's chapter only while its chunks are the same (an edited line re-joins it)."""
    return hashlib.sha256("\n".join(c.key for c in chapter.chunks).encode()).hexdigest()


def plan_bytes(plan: Plan) -> bytes:
    """The plan as the ConfigMap stores it: gzip of its camelCase JSON, the same bytes for the same plan."""
    data = gzip.compress(plan.model_dump_json(by_alias=True).encode(), compresslevel=9, mtime=0)
    if len(data) > MAX_PLAN_BYTES:
        raise PlanError("spec", f"the plan is {len(data)} bytes gzipped, more than a ConfigMap holds; split the job")
    return data


def load_plan(data: bytes) -> Plan:
    return Plan.model_validate_json(gzip.decompress(data))


def shard(plan: Plan, index: int, shards: int) -> list[PlanChunk]:
    """The chunks renderer ``index`` of ``shards`` renders (a Job's completion index of its completions)."""
    if shards < 1 or not 0 <= index < shards:
        raise ValueError(f"shard index {index} is not in 0..{shards - 1}")
    return [chunk for chunk in plan.chunks() if chunk.ordinal % shards == index]


# --- reading the input -----------------------------------------------------------------------


@dataclass
class _Block:
    """A paragraph of prose or a script line: spoken by one role, with the pause its author asked for."""

    role: str
    text: str
    pause_after_ms: int | None = None
    line: int = 0


@dataclass
class _Break:
    kind: str  # "heading" or "section"
    title: str = ""


_Item = _Block | _Break


def _heading(line: str) -> str | None:
    """The title if ``line`` is a heading."""
    stripped = line.strip()
    if match := _HEADING_MD.match(stripped):
        return match.group(1) or None
    if len(stripped) <= _HEADING_MAX and _HEADING_LINE.match(stripped):
        return stripped.rstrip(".:")
    return None


def parse_prose(text: str) -> list[_Item]:
    """Paragraphs, headings (spoken too) and section breaks of prose."""
    items: list[_Item] = []
    paragraph: list[str] = []
    blanks = 0

    def flush() -> None:
        if paragraph:
            items.append(_Block("", " ".join(paragraph)))
            paragraph.clear()

    for line in text.splitlines():
        if not line.strip():
            blanks += 1
            flush()
            continue
        if blanks >= 2:
            items.append(_Break("section"))
        blanks = 0
        if _SECTION_MARK.match(line):
            flush()
            items.append(_Break("section"))
        elif (title := _heading(line)) is not None:
            flush()
            items.append(_Break("heading", title))
            items.append(_Block("", title))
        else:
            paragraph.append(line.strip())
    flush()
    return items


def _pause_ms(amount: str, unit: str) -> int:
    return round(float(amount) * (1000 if unit.lower() == "s" else 1))


def parse_script(text: str, roles: set[str], field: str = "spec.text", roles_field: str = "spec.roles") -> list[_Item]:
    """Lines of a plain-text script (the format in this module's docstring); :class:`ScriptError` on a bad one.
    ``field`` and ``roles_field`` are what the errors call the text and the roles (the speech API's
    ``input`` and ``roles`` for a script spoken directly, ADR 0052)."""
    items: list[_Item] = []
    current: _Block | None = None  # the line being continued
    last: _Block | None = None  # the last line, for a pause after it
    blanks = 0

    def finish() -> None:
        nonlocal current
        if current is not None and not current.text:
            raise ScriptError(field, current.line, f"{current.role}'s line has no text")
        current = None

    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.rstrip()
        if not line.strip():
            blanks += 1
            finish()
            continue
        if line.lstrip().startswith("//"):
            continue
        if blanks >= 2 and items:
            finish()
            items.append(_Break("section"))
        blanks = 0
        pause: int | None = None
        if match := _PAUSE.search(line):
            pause = _pause_ms(match.group(1), match.group(2))
            line = line[: match.start()].rstrip()
            if not line.strip():  # a pause on a line of its own: after the line before
                if last is None:
                    raise ScriptError(field, number, "a pause before the first line")
                last.pause_after_ms = pause
                finish()
                continue
        if _SECTION_MARK.match(line):
            finish()
            items.append(_Break("section"))
            continue
        if not line[0].isspace() and (title := _heading(line)) is not None and line.lstrip().startswith("#"):
            finish()
            items.append(_Break("heading", title))
            continue
        role_match = None if line[0].isspace() else _ROLE_LINE.match(line)
        role = line.split(":", 1)[0].strip()
        if role_match and len(role) <= MAX_ROLE_LENGTH:
            if role not in roles:
                known = ", ".join(sorted(roles)) or "none given"
                raise ScriptError(field, number, f"role {role!r} is not a key of {roles_field} ({known})")
            finish()
            current = _Block(role, role_match.group("said").strip(), line=number)
            items.append(current)
        elif current is not None:
            current.text = f"{current.text} {line.strip()}".strip()
        elif last is not None:  # after a blank line: a new paragraph of the same role
            current = _Block(last.role, line.strip(), line=number)
            items.append(current)
        else:
            raise ScriptError(field, number, f"expected 'Role: text' (a role of {roles_field}, a colon, the line)")
        if pause is not None:
            current.pause_after_ms = pause
        last = current
    finish()
    return items


# --- chapters and chunks ---------------------------------------------------------------------


@dataclass
class _Chapter:
    title: str = ""
    blocks: list[_Block] = field(default_factory=list)

    @property
    def characters(self) -> int:
        return sum(len(b.text) for b in self.blocks)


def _pack(sentences: list[str], limit: int) -> list[str]:
    """Sentences joined greedily into pieces of at most ``limit`` characters (none is split)."""
    out: list[str] = []
    for sentence in sentences:
        if out and len(out[-1]) + 1 + len(sentence) <= limit:
            out[-1] = f"{out[-1]} {sentence}"
        else:
            out.append(sentence)
    return out


def _sentences(text: str) -> list[str]:
    return split_sentences(text, max_chars=CHUNK_CHARACTERS, first_chars=_NO_FIRST_CUT)


def _chapters(items: list[_Item], split: ChapterSplit, max_characters: int | None) -> list[_Chapter]:
    chapters = [_Chapter()]
    for item in items:
        if isinstance(item, _Break):
            if (split, item.kind) in ((ChapterSplit.HEADINGS, "heading"), (ChapterSplit.SECTIONS, "section")):
                chapters.append(_Chapter())
            if item.kind == "heading" and not chapters[-1].title and split != ChapterSplit.SIZE:
                chapters[-1].title = item.title
            continue
        if split == ChapterSplit.SIZE and max_characters:
            pieces = [item]
            if len(item.text) > max_characters:
                texts = _pack(_sentences(item.text), max_characters)
                pieces = [_Block(item.role, t, None, item.line) for t in texts]
                pieces[-1].pause_after_ms = item.pause_after_ms
            for piece in pieces:
                if chapters[-1].blocks and chapters[-1].characters + len(piece.text) > max_characters:
                    chapters.append(_Chapter())
                chapters[-1].blocks.append(piece)
        else:
            chapters[-1].blocks.append(item)
    return [c for c in chapters if any(b.text.strip() for b in c.blocks)]


def _voice(spec: TtsJobSpec, role: str) -> tuple[str, str]:
    """(model, voice) of a role ("" is the prose's)."""
    if not role:
        return spec.deployment, spec.voice
    entry = (spec.roles or {}).get(role)
    if entry is None:
        raise PlanError("spec.roles", f"role {role!r} has no entry in spec.roles")
    return entry.deployment or spec.deployment, entry.voice


def _input(spec: TtsJobSpec, text: str | None, fields: tuple[str, str] | None = None) -> list[_Item]:
    if spec.script is not None:
        roles = spec.roles or {}
        for index, line in enumerate(spec.script):
            if line.role not in roles:
                raise PlanError(f"spec.script[{index}].role", f"role {line.role!r} is not a key of spec.roles")
        return [_Block(line.role, line.text, line.pause_after_ms, index) for index, line in enumerate(spec.script)]
    source = "spec.text" if spec.text is not None else "spec.textFrom"
    roles_field = "spec.roles"
    if fields is not None:
        source, roles_field = fields
    body = spec.text if spec.text is not None else text
    if body is None:
        raise PlanError(source, "the text was not read")
    if not body.strip():
        raise PlanError(source, "there is nothing to speak (the text is empty)")
    if spec.is_script:
        return parse_script(body, set(spec.roles or {}), source, roles_field)
    return parse_prose(body)


def build_plan(
    spec: TtsJobSpec,
    text: str | None,
    *,
    name: str,
    namespace: str,
    uid: str,
    fields: tuple[str, str] | None = None,
) -> Plan:
    """The plan of a TtsJob; ``text`` is what ``spec.textFrom`` names (None otherwise). :class:`PlanError`
    (or :class:`ScriptError`) names the field when there is nothing to speak or a role has no voice;
    ``fields`` renames the text's and the roles' fields in a script's errors (the router's speech API
    plans a short script with this function too and calls them ``input`` and ``roles``, ADR 0052)."""
    chapters = _chapters(_input(spec, text, fields), spec.chapters.split, spec.chapters.max_characters)
    if not chapters:
        field_name = "spec.script" if spec.script is not None else ("spec.text" if spec.text else "spec.textFrom")
        if fields is not None:
            field_name = fields[0]
        raise PlanError(field_name, "there is nothing to speak")
    pauses = spec.pauses
    out: list[PlanChapter] = []
    ordinal = 0
    for chapter in chapters:
        number = len(out) + 1
        chunks: list[PlanChunk] = []
        blocks = [b for b in chapter.blocks if b.text.strip()]
        for position, block in enumerate(blocks):
            model, voice = _voice(spec, block.role)
            sentences = _sentences(block.text)
            pieces = sentences if pauses.sentence_ms else _pack(sentences, CHUNK_CHARACTERS)
            following = blocks[position + 1] if position + 1 < len(blocks) else None
            if block.pause_after_ms is not None:
                end_pause = block.pause_after_ms
            elif following is None:
                end_pause = 0
            elif following.role != block.role:
                end_pause = pauses.role_ms
            else:
                end_pause = pauses.paragraph_ms
            for index, piece in enumerate(pieces):
                last = index == len(pieces) - 1
                chunks.append(
                    PlanChunk(
                        id=f"{number:03d}-{len(chunks) + 1:05d}",
                        ordinal=ordinal,
                        model=model,
                        voice=voice,
                        role=block.role,
                        text=piece,
                        speed=spec.speed,
                        pause_after_ms=end_pause if last else pauses.sentence_ms,
                        characters=len(piece),
                        key=chunk_key(model, voice, spec.speed, piece),
                    )
                )
                ordinal += 1
        if chunks:
            title = chapter.title or f"Chapter {number}"
            out.append(
                PlanChapter(number=number, title=title, file=f"chapters/{number:03d}.{spec.format}", chunks=chunks)
            )
    totals = PlanTotals(
        characters=sum(c.characters for ch in out for c in ch.chunks), chunks=ordinal, chapters=len(out)
    )
    return Plan(
        job=name,
        namespace=namespace,
        uid=uid,
        format=spec.format,
        dir=spec.storage.path or f"{namespace}/{name}",
        chapters=out,
        totals=totals,
    )

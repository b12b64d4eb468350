"""tts_crds.plan: the script format, chapters, chunks, keys and shards of a TtsJob's plan (pure)."""

import pytest
from tts_crds.jobs import TtsJobSpec
from tts_crds.plan import CHUNK_CHARACTERS, PlanError, ScriptError, build_plan, load_plan, plan_bytes, shard

ROLES = {"Alice": {"voice": "joe"}, "Bob": {"voice": "en-us", "deployment": "espeak"}}


def _plan(text=None, text_from=None, **spec):
    body = {"deployment": "joe", **spec}
    if text_from is not None:
        body["textFrom"] = {"configMapKeyRef": {"name": "t", "key": "k"}}
    elif text is not None:
        body["text"] = text
    return build_plan(TtsJobSpec.model_validate(body), text_from, name="podcast", namespace="default", uid="u1")


def _script(text, **spec):
    return _plan(text, textFormat="script", roles=ROLES, **spec)


def _chunks(plan):
    return list(plan.chunks())


def test_script_lines_continuations_pauses_and_comments():
    plan = _script(
        "# Episode 1\n// a comment\nAlice: Hello, Bob.\n  How are you?\n[pause 800ms]\n"
        "Bob: Fine, thanks Alice! [pause 1.5s]\n\nA second paragraph of Bob's.\nAlice: Good to hear."
    )
    chunks = _chunks(plan)
    assert [(c.role, c.model, c.voice, c.text, c.pause_after_ms) for c in chunks] == [
        ("Alice", "joe", "joe", "Hello, Bob. How are you?", 800),
        ("Bob", "espeak", "en-us", "Fine, thanks Alice!", 1500),
        ("Bob", "espeak", "en-us", "A second paragraph of Bob's.", 350),
        ("Alice", "joe", "joe", "Good to hear.", 0),
    ]
    assert plan.chapters[0].title == "Episode 1"
    assert [c.id for c in chunks] == ["001-00001", "001-00002", "001-00003", "001-00004"]
    assert chunks[0].stem == "chunks/001/00001"


def test_same_role_paragraphs_pause_paragraph_ms_and_role_changes_role_ms():
    plan = _script("Alice: One thing.\n\nAnother thing.\nBob: Yes.", pauses={"paragraphMs": 400, "roleMs": 250})
    assert [c.pause_after_ms for c in _chunks(plan)] == [400, 250, 0]


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("Alice: Hi there.\nCarol: Hello.", 2, ["'Carol'", "spec.roles", "Alice, Bob"]),
        ("just prose without a role", 1, ["expected 'Role: text'"]),
        ("[pause 300ms]\nAlice: Hi.", 1, ["pause before the first line"]),
        ("Alice: Hi.\nBob:\n\nAlice: Bye.", 2, ["Bob's line has no text"]),
    ],
)
def test_script_errors_name_the_field_and_the_line(text, line, words):
    with pytest.raises(ScriptError) as err:
        _script(text)
    assert err.value.line == line and err.value.field == "spec.text"
    assert f"line {line}" in str(err.value) and all(w in str(err.value) for w in words)


def test_script_from_a_config_map_names_text_from():
    with pytest.raises(ScriptError) as err:
        _plan(text_from="Zed: hi", textFormat="script", roles=ROLES)
    assert err.value.field == "spec.textFrom" and "'Zed'" in str(err.value)


def test_indented_or_long_colon_lines_continue():
    long_head = "This sentence is far too long to be a role name at all"
    plan = _script(f"Alice: Listen.\n  Note: this is still Alice.\n{long_head}: and so is this.")
    assert _chunks(plan)[0].text == f"Listen. Note: this is still Alice. {long_head}: and so is this."


def test_structured_script_and_its_roles():
    plan = _plan(
        script=[{"role": "Alice", "text": "Hi."}, {"role": "Bob", "text": "Hello.", "pauseAfterMs": 90}], roles=ROLES
    )
    assert [(c.role, c.pause_after_ms) for c in _chunks(plan)] == [("Alice", 350), ("Bob", 90)]


def test_empty_text_is_refused_naming_the_field():
    with pytest.raises(PlanError) as err:
        _plan("   \n\n  ")
    assert err.value.field == "spec.text" and "nothing to speak" in str(err.value)
    with pytest.raises(PlanError) as err:
        _plan(text_from="\n")
    assert err.value.field == "spec.textFrom"


PROSE = (
    "Front matter.\n\n# The Start\n\nIt was a dark night. The wind blew.\n\nA second paragraph.\n\n"
    "CHAPTER TWO\nThe sun rose.\n\n***\n\nAfter the break.\n\n\n\nAfter two blank lines."
)


def test_chapters_at_headings():
    plan = _plan(PROSE, chapters={"split": "headings"})
    assert [c.title for c in plan.chapters] == ["Chapter 1", "The Start", "CHAPTER TWO"]
    assert [c.file for c in plan.chapters] == ["chapters/001.mp3", "chapters/002.mp3", "chapters/003.mp3"]
    second = plan.chapters[1].chunks
    assert second[0].text == "The Start"  # headings are spoken, without their marks
    assert [c.pause_after_ms for c in second] == [500, 500, 0]


def test_chapters_at_sections_and_none():
    sections = _plan(PROSE, chapters={"split": "sections"}, format="opus")
    assert [c.chunks[0].text for c in sections.chapters] == [
        "Front matter.",
        "After the break.",
        "After two blank lines.",
    ]
    assert sections.chapters[0].title == "The Start" and sections.chapters[0].file == "chapters/001.opus"
    single = _plan(PROSE)
    assert len(single.chapters) == 1 and single.totals.chunks == len(_chunks(single))


def test_chapters_by_size_cut_between_paragraphs_and_sentences():
    paragraph = " ".join(f"Sentence number {i} of this paragraph is here." for i in range(40))  # ~1900 chars
    text = "\n\n".join([paragraph] * 5)
    plan = _plan(text, chapters={"split": "size", "maxCharacters": 2500})
    for chapter in plan.chapters:
        assert sum(c.characters for c in chapter.chunks) <= 2500
    assert len(plan.chapters) >= 4
    huge = _plan(paragraph * 3, chapters={"split": "size", "maxCharacters": 1000})
    assert all(sum(c.characters for c in ch.chunks) <= 1000 for ch in huge.chapters) and len(huge.chapters) >= 5


def test_chunks_are_at_most_the_limit_and_keep_every_word():
    text = " ".join(f"Word{i} and a few more words to make a sentence {i}." for i in range(300))
    plan = _plan(text)
    chunks = _chunks(plan)
    assert all(c.characters <= CHUNK_CHARACTERS and c.characters == len(c.text) for c in chunks)
    assert " ".join(c.text for c in chunks).split() == text.split()
    assert [c.ordinal for c in chunks] == list(range(len(chunks)))
    assert plan.totals.characters == sum(c.characters for c in chunks) and plan.totals.chapters == 1


def test_sentence_pauses_put_each_sentence_in_its_own_chunk():
    plan = _plan("First sentence here. Second sentence here. Third one here.", pauses={"sentenceMs": 120})
    assert [(c.text, c.pause_after_ms) for c in _chunks(plan)] == [
        ("First sentence here.", 120),
        ("Second sentence here.", 120),
        ("Third one here.", 0),
    ]


def test_keys_depend_on_model_voice_speed_and_text_only():
    a, b = _chunks(_plan("Same words.")), _chunks(_plan("Same words."))
    assert a[0].key == b[0].key and len(a[0].key) == 64
    assert _chunks(_plan("Same words.", speed=1.5))[0].key != a[0].key
    assert _chunks(_plan("Same words.", voice="other"))[0].key != a[0].key
    assert _chunks(_plan("Same words.", format="wav"))[0].key == a[0].key


def test_plan_bytes_are_deterministic_and_round_trip():
    plan = _script("Alice: Hi.\nBob: Hello.")
    assert plan_bytes(plan) == plan_bytes(_script("Alice: Hi.\nBob: Hello."))
    assert load_plan(plan_bytes(plan)) == plan
    dumped = plan.model_dump(by_alias=True)
    assert set(dumped) == {"version", "job", "namespace", "uid", "format", "dir", "chapters", "totals"}
    assert set(dumped["chapters"][0]["chunks"][0]) == {
        *("id", "ordinal", "model", "voice", "role", "text", "speed", "pauseAfterMs", "characters", "key")
    }
    assert dumped["dir"] == "default/podcast"
    assert _plan("x y z.", storage={"path": "books/one"}).dir == "books/one"


@pytest.mark.parametrize("shards", [1, 2, 3, 7])
def test_shards_cover_every_chunk_exactly_once(shards):
    plan = _plan(PROSE * 20, chapters={"split": "headings"})
    ids = [c.id for k in range(shards) for c in shard(plan, k, shards)]
    assert sorted(ids) == sorted(c.id for c in plan.chunks()) and len(ids) == len(set(ids))


def test_shard_index_out_of_range():
    plan = _plan("Hello there.")
    with pytest.raises(ValueError, match=r"not in 0\.\.1"):
        shard(plan, 2, 2)

"""The listener's scoring (WER, CER, English normalisation) and its model assembly, without a model."""

from __future__ import annotations

import pytest

from tests.listen import (
    SENTENCES,
    SENTENCES_JA,
    cer,
    chars_ja,
    chars_zh,
    edit_distance,
    normalise_en,
    number_words,
    wer,
)


def test_edit_distance_counts_substitutions_insertions_and_deletions():
    assert edit_distance([], []) == 0
    assert edit_distance("abc", "abc") == 0
    assert edit_distance("abc", "") == 3
    assert edit_distance("", "ab") == 2
    assert edit_distance("kitten", "sitting") == 3
    assert edit_distance(["a", "b", "c"], ["a", "c"]) == 1


@pytest.mark.parametrize(
    ("n", "words"),
    [
        (0, "zero"),
        (7, "seven"),
        (13, "thirteen"),
        (40, "forty"),
        (21, "twenty one"),
        (100, "one hundred"),
        (305, "three hundred five"),
        (1250, "one thousand two hundred fifty"),
        (20_000, "twenty thousand"),
        (1_000_000, "1000000"),
    ],
)
def test_number_words(n, words):
    assert number_words(n) == words


def test_normalise_en_ignores_case_punctuation_apostrophes_and_digit_spelling():
    assert normalise_en("Hello, World!") == ["hello", "world"]
    assert normalise_en("I don't know.") == normalise_en("i dont know") == ["i", "dont", "know"]
    assert normalise_en("It’s fine") == ["its", "fine"]
    assert normalise_en("at 7 and 21") == ["at", "seven", "and", "twenty", "one"]
    assert normalise_en("1,250 people") == normalise_en("one thousand two hundred fifty people")
    assert normalise_en("50% off") == ["fifty", "percent", "off"]
    assert normalise_en("well-known and/or") == ["well", "known", "and", "or"]
    assert normalise_en("  ") == []


def test_wer_of_one_sentence():
    ref = "The train leaves at seven."
    assert wer(ref, "the train leaves at 7") == 0
    assert wer(ref, "The train leaves at eleven.") == pytest.approx(1 / 5)
    assert wer(ref, "train leaves at seven") == pytest.approx(1 / 5)
    assert wer(ref, "The big train leaves at seven") == pytest.approx(1 / 5)
    assert wer(ref, "") == 1.0
    # insertions can take WER above 1
    assert wer("yes", "no no no") == 3.0


def test_wer_of_a_corpus_weights_by_reference_words():
    refs = ["one two three four", "five"]
    hyps = ["one two three four", "six"]
    assert wer(refs, hyps) == pytest.approx(1 / 5)  # not the mean of 0 and 1


def test_wer_rejects_empty_references_and_mixed_arguments():
    with pytest.raises(ValueError, match="no words"):
        wer("...", "hello")
    with pytest.raises(TypeError):
        wer(["a"], "a")
    with pytest.raises(ValueError, match="shorter"):
        wer(["a", "b"], ["a"])  # zip(strict=True)


def test_cer_counts_characters_without_punctuation():
    assert chars_zh("你好，世界。") == ["你", "好", "世", "界"]
    assert chars_zh("你好, 世界!") == ["你", "好", "世", "界"]  # ASCII punctuation and spaces too
    assert cer("你好，世界。", "你好世界") == 0
    assert cer("你好，世界。", "你们好，世界") == pytest.approx(1 / 4)
    assert cer("你好，世界。", "你好，世間。") == pytest.approx(1 / 4)  # another script is an error
    assert cer(["你好", "世界"], ["你好", "世"]) == pytest.approx(1 / 4)
    with pytest.raises(ValueError, match="no characters"):
        cer("。", "你")


def test_a_capped_cer_counts_a_looping_clip_as_one_wrong_clip():
    loop = "骗" * 40
    assert cer(["你好", "世界"], ["你好", loop]) == pytest.approx(40 / 4)
    assert cer(["你好", "世界"], ["你好", loop], capped=True) == pytest.approx(2 / 4)
    assert cer(["你好", "世界"], ["你好", ""], capped=True) == pytest.approx(2 / 4)  # silence is wholly wrong too
    assert cer(["你好", "世界"], ["你们好", "世"], capped=True) == cer(["你好", "世界"], ["你们好", "世"])


def test_japanese_cer_reads_katakana_as_hiragana():
    assert chars_ja("ケーキ、食べる？") == ["け", "ー", "き", "食", "べ", "る"]
    assert cer("コーヒーを飲みます。", "こーひーを飲みます", language="ja") == 0
    assert cer("今日は良い天気", "今日はいい天気", language="ja") == pytest.approx(1 / 7)  # kanji vs kana counts
    assert cer("天気", "天気") == 0  # Chinese stays the default
    assert len(set(SENTENCES_JA)) == len(SENTENCES_JA) >= 10


def test_the_sentences_are_at_least_ten_distinct_ones():
    assert len(set(SENTENCES)) == len(SENTENCES) >= 10
    assert all(len(normalise_en(s)) >= 6 for s in SENTENCES)

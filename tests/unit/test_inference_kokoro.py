"""Pure logic of the kokoro engine: which layout a model directory holds, the voices a pack lists,
which phonemiser a sentence goes through, which execution providers run the ONNX graph."""

import numpy as np
import pytest
from tts_inference.engines import ModelLoadError
from tts_inference.engines.kokoro import model_files
from tts_inference.engines.kokoro_common import JAPANESE, Layout, choose_layout, g2p_for, list_voices
from tts_inference.engines.kokoro_ja import OpenJTalkTagger
from tts_inference.engines.kokoro_onnx import providers_for, read_packs

TORCH = ["config.json", "kokoro-v1_0.pth", "voices/af_heart.pt", "voices/bf_emma.pt", "README.md"]
ONNX = ["kokoro-v1.0.int8.onnx", "voices-v1.0.bin"]


# --- layout -------------------------------------------------------------------------------------
def test_the_torch_layout_is_config_checkpoint_and_voice_files():
    assert choose_layout(TORCH, torch=True) == Layout(
        "torch", "kokoro-v1_0.pth", ("voices/af_heart.pt", "voices/bf_emma.pt"), config="config.json"
    )


@pytest.mark.parametrize("packs", [["voices-v1.0.bin"], ["voices_ja.npz"], ["voices_ja.npz", "voices-v1.0.bin"]])
def test_the_onnx_layout_is_an_export_and_npz_packs(packs):
    layout = choose_layout(["kokoro-v1.0.int8.onnx", *packs, "model.sha256"], torch=False)
    assert layout == Layout("onnx", "kokoro-v1.0.int8.onnx", tuple(sorted(packs)))


def test_with_both_layouts_torch_wins_only_where_it_is_installed():
    assert choose_layout(TORCH + ONNX, torch=True).kind == "torch"
    assert choose_layout(TORCH + ONNX, torch=False).kind == "onnx"
    # torch files alone still pick torch: its engine then says that this image lacks torch
    assert choose_layout(TORCH, torch=False).kind == "torch"


@pytest.mark.parametrize(
    "names",
    [
        [],
        ["kokoro-v1.0.onnx"],  # no voices
        ["voices-v1.0.bin", "config.json"],  # no export, no checkpoint
        ["kokoro-v1_0.pth", "voices/af_heart.pt"],  # no config.json
        ["kokoro.onnx", "data.bin"],  # a .bin that is not a voice pack
    ],
)
def test_neither_layout_is_a_clear_load_error(names):
    with pytest.raises(ModelLoadError, match=r"not a Kokoro model directory.*\*\.pth.*\*\.onnx"):
        choose_layout(names, torch=True)


def test_model_files_lists_the_directory_and_its_voice_files(tmp_path):
    (tmp_path / "voices").mkdir()
    for name in ("config.json", "m.pth", "voices/af_heart.pt", "voices/notes.txt"):
        (tmp_path / name).write_bytes(b"")
    assert sorted(model_files(tmp_path)) == ["config.json", "m.pth", "voices/af_heart.pt"]
    assert model_files(tmp_path / "absent") == []


# --- voices -------------------------------------------------------------------------------------
def test_voices_take_their_language_from_the_first_letter():
    voices = list_voices(["jm_kumo", "af_heart", "bf_emma", "zf_xiaobei", "ef_dora", "pm_santa", "xx_odd"])
    assert [(v.id, v.language) for v in voices] == [
        ("af_heart", "en-US"),
        ("bf_emma", "en-GB"),
        ("ef_dora", "es"),
        ("jm_kumo", "ja"),
        ("pm_santa", "pt-BR"),
        ("zf_xiaobei", "zh"),
    ]


def test_read_packs_merges_npz_packs_and_skips_odd_shapes(tmp_path):
    style = np.zeros((510, 1, 256), dtype=np.float32)
    np.savez(tmp_path / "voices_ja.npz", jf_alpha=style, broken=np.zeros((3, 4)))
    with open(tmp_path / "voices-v1.0.bin", "wb") as f:  # kokoro-onnx's release name, an npz inside
        np.savez(f, af_heart=style.astype(np.float64))
    packs = read_packs([tmp_path / "voices_ja.npz", tmp_path / "voices-v1.0.bin"])
    assert sorted(packs) == ["af_heart", "jf_alpha"]
    assert packs["af_heart"].dtype == np.float32 and packs["af_heart"].shape == (510, 1, 256)


def test_an_unreadable_pack_is_a_load_error(tmp_path):
    (tmp_path / "voices-v1.0.bin").write_bytes(b"not an npz")
    with pytest.raises(ModelLoadError, match=r"voices-v1\.0\.bin"):
        read_packs([tmp_path / "voices-v1.0.bin"])


# --- phonemiser choice --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("voice", "text", "japanese", "g2p"),
    [
        ("af_heart", "Hello there.", True, "en-us"),
        ("bf_emma", "Hello there.", True, "en-gb"),
        ("ff_siwis", "Bonjour à tous.", False, "fr-fr"),
        ("jf_alpha", "こんにちは。", True, JAPANESE),
        ("jf_alpha", "東京へ行きます", True, JAPANESE),
        ("jf_alpha", "GitHubで作業します。", True, JAPANESE),  # Japanese with a Latin word
        ("jf_alpha", "こんにちは。", False, "ja"),  # no Japanese G2P installed: espeak-ng's Japanese
        ("jf_alpha", "The quick brown fox.", True, "en-us"),  # English text in a Japanese voice
        ("zf_xiaobei", "你好，世界。", True, "cmn"),
        ("zf_xiaobei", "Hello there.", True, "en-us"),
    ],
)
def test_each_sentence_goes_to_the_phonemiser_of_its_script(voice, text, japanese, g2p):
    assert g2p_for(voice, text, japanese) == g2p


# --- Japanese tagger ----------------------------------------------------------------------------
class FakeOpenJTalk:
    """pyopenjtalk-plus without Sudachi's dictionary: unknown kanji need it and raise."""

    def __init__(self) -> None:
        self.calls: list[dict] = []

    def run_frontend(self, text, **options):
        self.calls.append(options)
        if not options.get("use_vanilla"):
            raise ModuleNotFoundError("Package `sudachidict_core` does not exist.")
        return [{"string": "龘", "pos": "記号", "pron": "、"}, {"string": "字", "pos": "名詞", "pron": "ジ’"}]


def test_the_tagger_reads_with_openjtalk_alone_when_sudachi_is_missing():
    jtalk = FakeOpenJTalk()
    words = OpenJTalkTagger(jtalk)("龘の字")
    assert [(w.surface, w.feature.pron) for w in words] == [("龘", "龘"), ("字", "ジ")]
    assert jtalk.calls == [{"use_sudachi_kanji_yomi": False}, {"use_vanilla": True}]


# --- execution providers ------------------------------------------------------------------------
def test_providers_follow_the_requested_device():
    cpu, gpu = ["CPUExecutionProvider"], ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert providers_for(cpu, "auto") == cpu
    assert providers_for(gpu, "auto") == gpu
    assert providers_for(gpu, "cpu") == cpu
    with pytest.raises(ModelLoadError, match="no CUDA provider"):
        providers_for(cpu, "cuda")


# --- phonemizer ---------------------------------------------------------------------------------
def test_the_phonemizer_module_has_what_kokoro_onnx_and_misaki_call():
    # phonemizer (kokoro-onnx) and phonemizer-fork (misaki) install the same module; either must do
    phonemizer = pytest.importorskip("phonemizer")
    from phonemizer.backend import EspeakBackend
    from phonemizer.backend.espeak.wrapper import EspeakWrapper

    assert callable(phonemizer.phonemize) and EspeakBackend.name() == "espeak"
    assert callable(EspeakWrapper.set_library) and callable(EspeakWrapper.set_data_path)

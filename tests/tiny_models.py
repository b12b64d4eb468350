"""Tiny, randomly initialised checkpoints for the torch engines, built by the tests themselves.

No torch TTS weights ship through a package registry, so the tests exercise each engine's real
loading and synthesis code on checkpoints of the real architecture with small dimensions. The audio
they make is noise-like, not speech: tests check rate, length and that it is not silent.
"""

from __future__ import annotations

import json
from pathlib import Path

# every symbol misaki's espeak G2P emits for English, plus punctuation: the tiny model's vocabulary
_SYMBOLS = (
    " !',-.:;?abcdefhijklmnopqrstuvwxyzAIOQSWYʣʦ"
    "æçðøħŋœǀǁǂǃɐɑɒɓɔɕɗɘəɚɛɜɞɟɠɡɢɣɤɥɦɧɨɪɫɬɭɮɯɰɱɲɳɴɵɶɸɹɺɻɽɾʀʁʂʃʄʈʉʊʋʌʍʎʏʐʑʒʔʕʘʙʛʜʝʟʡʢʤʧʰʲʷˈˌːˑ˞ˠˤ̩θχᵊᵻ"
)


def kokoro_config() -> dict:
    vocab = {ch: i + 1 for i, ch in enumerate(dict.fromkeys(_SYMBOLS))}
    return {
        "vocab": vocab,
        "n_token": len(vocab) + 1,
        "hidden_dim": 512,  # fixed too: the decoder's asr_res convolution takes 512 channels
        "style_dim": 128,  # fixed by KModel, which slices the style vector at 128
        "n_mels": 80,
        "n_layer": 1,
        "max_dur": 4,  # short random durations keep the noise-like output short
        "dropout": 0.0,
        "text_encoder_kernel_size": 5,
        "plbert": {
            "hidden_size": 32,
            "num_attention_heads": 2,
            "intermediate_size": 64,
            "max_position_embeddings": 128,
            "num_hidden_layers": 1,
            "dropout": 0.0,
        },
        "istftnet": {
            "upsample_kernel_sizes": [20, 12],
            "upsample_rates": [10, 6],
            "gen_istft_hop_size": 5,
            "gen_istft_n_fft": 20,
            "resblock_dilation_sizes": [[1, 3, 5]],
            "resblock_kernel_sizes": [3],
            "upsample_initial_channel": 512,  # the decoder hands the generator 512 channels
        },
    }


def build_kokoro(root: Path, voices: tuple[str, ...] = ("af_tiny", "bm_tiny")) -> Path:
    """config.json + tiny.pth + voices/*.pt in the Kokoro-82M layout, random weights."""
    import torch
    from kokoro.model import KModel

    torch.manual_seed(0)
    config = kokoro_config()
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.json").write_text(json.dumps(config))
    # KModel needs a checkpoint to construct: start from an empty one, then save the random weights
    empty = root / "empty.pth"
    torch.save({}, empty)
    model = KModel(repo_id="hexgrad/Kokoro-82M", config=str(root / "config.json"), model=str(empty))
    empty.unlink()
    parts = ("bert", "bert_encoder", "predictor", "text_encoder", "decoder")
    # half precision keeps the file small; load_state_dict converts back to the model's float32
    state = {p: {k: v.half() for k, v in getattr(model, p).state_dict().items()} for p in parts}
    torch.save(state, root / "tiny.pth")
    (root / "voices").mkdir(exist_ok=True)
    for name in voices:
        torch.save(torch.randn(510, 1, 256) * 0.1, root / "voices" / f"{name}.pt")
    return root


_CORPUS = [
    "Hello there. How are you today? The quick brown fox jumps over the lazy dog.",
    "Speech synthesis turns text into sound, one sentence after another!",
    "Numbers like one, two and three; names like Ada, Alan and Grace.",
]


def pocket_config(n_bins: int) -> dict:
    """A pocket-tts config (the schema of pocket_tts/config/english.yaml) with tiny dimensions."""
    return {
        "default_temperature": 0.3,
        "flow_lm": {
            "insert_bos_before_voice": True,
            "dtype": "float32",
            "flow": {"depth": 1, "dim": 32},
            "transformer": {"d_model": 64, "hidden_scale": 2, "max_period": 10000, "num_heads": 2, "num_layers": 1},
            "lookup_table": {
                "dim": 64,
                "n_bins": n_bins,
                "tokenizer": "tokenizers",
                "tokenizer_path": "tokenizer.json",
            },
        },
        "mimi": {
            "dtype": "float32",
            "sample_rate": 24000,
            "inner_dim": 8,
            "outer_dim": 32,
            "channels": 1,
            "frame_rate": 12.5,
            "seanet": {
                "dimension": 32,
                "channels": 1,
                "n_filters": 4,
                "n_residual_layers": 1,
                "ratios": [6, 5, 4],
                "kernel_size": 7,
                "residual_kernel_size": 3,
                "last_kernel_size": 3,
                "dilation_base": 2,
                "pad_mode": "constant",
                "compress": 2,
            },
            "transformer": {
                "d_model": 32,
                "num_heads": 2,
                "num_layers": 1,
                "layer_scale": 0.01,
                "context": 250,
                "dim_feedforward": 64,
                "input_dimension": 32,
                "output_dimensions": [32],
            },
            "quantizer": {"dimension": 8, "output_dimension": 32},
        },
        "weights_path": "model.safetensors",
    }


def build_pocket(root: Path, voices: tuple[str, ...] = ("tiny_voice",)) -> Path:
    """config.yaml + model.safetensors + tokenizer.json (+ voices/*.wav), random weights."""
    import numpy as np
    import safetensors.torch
    import soundfile as sf
    import torch
    import yaml
    from pocket_tts.models.tts_model import TTSModel
    from pocket_tts.utils.config import Config
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    torch.manual_seed(0)
    root.mkdir(parents=True, exist_ok=True)
    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.train_from_iterator(_CORPUS, trainers.BpeTrainer(vocab_size=120, special_tokens=["<unk>"]))
    tokenizer.save(str(root / "tokenizer.json"))
    config = pocket_config(tokenizer.get_vocab_size())
    (root / "config.yaml").write_text(yaml.safe_dump(config))
    # build the architecture from the config, as pocket-tts does, and save its random weights
    absolute = {**config}
    absolute["flow_lm"] = {**config["flow_lm"]}
    absolute["flow_lm"]["lookup_table"] = {
        **config["flow_lm"]["lookup_table"],
        "tokenizer_path": str(root / "tokenizer.json"),
    }
    absolute["weights_path"] = None
    model = TTSModel._from_pydantic_config_with_weights(Config(**absolute), 0.3, 1, None, -4.0)
    safetensors.torch.save_file(
        {k: v.contiguous() for k, v in model.state_dict().items()}, str(root / "model.safetensors")
    )
    (root / "voices").mkdir(exist_ok=True)
    t = np.arange(24000 * 2) / 24000
    for name in voices:
        clip = 0.3 * np.sin(2 * np.pi * 180 * t) * (1 + np.sin(2 * np.pi * 3 * t)) / 2
        sf.write(root / "voices" / f"{name}.wav", clip.astype(np.float32), 24000)
    return root

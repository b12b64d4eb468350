#!/bin/sh
# local-tts-studio reads its voices folder and the API's default voice from a settings file in its
# data folder. Write one there (under /tmp, the root is read-only), then start the server.
#   LOCAL_TTS_VOICES_DIR  the voices folder (default: the model kube-tts mounts, else /opt/voices)
#   LOCAL_TTS_VOICE       the default voice (default: the first .onnx file in that folder)
set -eu
voices=${LOCAL_TTS_VOICES_DIR:-${KUBETTS_MODEL_DIR:-/opt/voices}}
voice=${LOCAL_TTS_VOICE:-$(ls "$voices" | sed -n 's/\.onnx$//p' | head -n 1)}
mkdir -p "$LOCAL_TTS_DATA_DIR"
printf '{"voices_dir": "%s", "api_default_voice": "%s"}\n' "$voices" "$voice" > "$LOCAL_TTS_DATA_DIR/settings.json"
exec local-tts "$@"

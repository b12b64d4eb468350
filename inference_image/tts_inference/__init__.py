"""kube-tts inference server: one engine, one model, an OpenAI-shaped speech API. Knows nothing of Kubernetes."""

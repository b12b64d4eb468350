"""Shared contract of kube-tts: custom-resource models, the CRDs rendered from them, and names."""

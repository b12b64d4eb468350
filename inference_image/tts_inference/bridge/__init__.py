"""The bridge: kube-tts's inference API in front of a user's speech server in the same pod (ADR 0047, 0048)."""

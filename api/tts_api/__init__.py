"""kube-tts router: the one HTTP API in front of every TtsDeployment."""

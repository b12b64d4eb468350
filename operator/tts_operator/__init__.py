"""kube-tts operator: reconciles TtsDeployment and TtsVoice custom resources (Kopf)."""

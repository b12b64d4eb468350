"""kube-tts local cluster: a real control plane built from Go modules, kwok nodes and a node agent."""

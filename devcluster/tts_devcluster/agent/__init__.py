"""The node agent: a small kubelet for kwok nodes that runs each pod as local processes.

Kept import-free so ``python -m tts_devcluster.agent.launcher`` starts fast.
"""

"""kube-tts Wyoming server: Home Assistant speaks through the router (Wyoming protocol, TCP 10200)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("kube-tts")
except PackageNotFoundError:  # run from a source tree
    __version__ = "0.0.0"

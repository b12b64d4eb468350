"""kube-tts on the local cluster (filled in below)."""
from __future__ import annotations
from .layout import Layout
COMPONENTS = ("operator", "router")
def up(layout: Layout, sample: bool = True) -> None: ...
def down(layout: Layout) -> None: ...
def status(layout: Layout) -> dict[str, bool]: return {}

"""The daemon supervisor finds its own processes and never mistakes another one for them."""

from __future__ import annotations

import os
import sys

from tts_devcluster import procs
from tts_devcluster.layout import Layout


def test_a_recycled_pid_is_not_our_daemon(tmp_path):
    layout = Layout(repo=tmp_path, state=tmp_path / "state", bin=tmp_path / "bin")
    pid = procs.start(layout, "sleeper", [sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert procs.pid_of(layout, "sleeper") == pid
        # starting it again finds the running one
        assert procs.start(layout, "sleeper", [sys.executable, "-c", "pass"]) == pid
        # the same pid with another start time: what a pid file says after the pid was reused
        pidfile = layout.run / "sleeper.pid"
        recorded = pidfile.read_text()
        pidfile.write_text(f"{pid} 1")
        assert procs.pid_of(layout, "sleeper") is None
        # this process is alive but is not the daemon either
        pidfile.write_text(f"{os.getpid()} 1")
        assert procs.pid_of(layout, "sleeper") is None
        pidfile.write_text(recorded)
    finally:
        assert procs.stop(layout, "sleeper", timeout=5)
    assert procs.pid_of(layout, "sleeper") is None

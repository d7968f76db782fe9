"""`make demo`'s command line: Ctrl-C is one line, never a traceback."""

import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_ctrl_c_while_generating_is_one_line(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "mockstack.demo", "--instances", "40000", "--out", str(tmp_path)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            # as in a terminal: a runner started in the background ignores SIGINT, and
                            # a child inherits that (Python then installs no KeyboardInterrupt handler)
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    time.sleep(3)  # past start-up, inside the generator (40,000 instances take longer than that)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, (out, err)
    assert "demo: interrupted" in err and "Traceback" not in err

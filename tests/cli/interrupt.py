"""Run a ``tcomp`` command in a child process and press Ctrl-C (SIGINT) once it has reached a given point."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time


def _default_sigint() -> None:
    """In the child before it starts Python: Ctrl-C at its default. A suite started in the background (``pytest &``
    from a script) inherits SIGINT ignored, and Python then installs no handler, as it should for a background job."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def interrupt_when(argv: list[str], stream: str, prefix: str, settle: float = 0.0,
                   limit: float = 300.0) -> tuple[int, str, str]:
    """Start ``python -m tcomp.cli *argv``; once a line of ``stream`` (``"stdout"`` or ``"stderr"``) starts with
    ``prefix`` (or the stream ends), wait ``settle`` seconds and send SIGINT. Returns the exit status and what the
    command wrote after that line. The child is killed if it is still running after ``limit`` seconds."""
    child = subprocess.Popen([sys.executable, "-m", "tcomp.cli", *argv], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, preexec_fn=_default_sigint)
    watchdog = threading.Timer(limit, child.kill)
    watchdog.start()
    try:
        lines = child.stdout if stream == "stdout" else child.stderr
        assert lines is not None
        for line in lines:
            if line.startswith(prefix):
                break
        time.sleep(settle)
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=limit)
    finally:
        watchdog.cancel()
        if child.poll() is None:
            child.kill()
    return child.returncode, out, err

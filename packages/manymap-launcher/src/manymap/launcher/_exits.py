"""``exit_reason``: what a worker process's exit code says, in the words of the
errors and warnings users read (``WorkerLostError``: "... was lost (killed by SIGKILL)")."""

from __future__ import annotations

import signal

__all__ = ["exit_reason"]


def exit_reason(code: int | None, worker: str = "") -> str:
    """How a worker process ended, from its exit code (negative: the signal that killed it).

    Args:
        code: the exit code; ``None`` if the process has not exited.
        worker: what the process is (``"the ppft worker"``): the text is then a
            sentence about it; without it, a phrase (``"killed by SIGTERM"``).
    """
    if code is None:
        what = "did not exit"
    elif code < 0:
        name = signal.Signals(-code).name if -code in signal.valid_signals() else f"signal {-code}"
        what = f"{'was ' if worker else ''}killed by {name}"
        if -code == signal.SIGKILL:
            what += ": from outside, by a timeout, or by the kernel's out-of-memory killer"
    else:
        what = f"exited with code {code}"
    return f"{worker} {what}" if worker else what

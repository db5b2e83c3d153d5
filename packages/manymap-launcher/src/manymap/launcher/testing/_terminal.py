"""Run a command whose stderr is a real pseudo-terminal of a given width; replay what it drew.

:func:`run_in_terminal` captures every byte the command writes to its terminal;
:class:`TerminalScreen` replays them the way a terminal does (carriage return, line
feed, auto-wrap at the right margin, ``ESC [ K`` clear to end of line), so a
test sees what a user would be left looking at. A child may resize its
terminal mid-run by writing ``ESC ] resize;N BEL`` (a private sequence real
terminals ignore) right after the ``TIOCSWINSZ`` call: :data:`RESIZE_HELPER`
defines ``resize(columns)`` doing both, for Python children.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import struct
import subprocess
import termios
import threading
from collections.abc import Sequence

__all__ = ["RESIZE_HELPER", "TerminalScreen", "run_in_terminal"]

RESIZE = re.compile(r"\x1b\]resize;(\d+)\x07")
_CSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")

#: Child-side helper: ``resize(columns)`` narrows the terminal on stderr and tells the replay.
RESIZE_HELPER = """
import fcntl, struct, sys, termios
def resize(columns):
    sys.stderr.flush()
    fcntl.ioctl(sys.stderr.fileno(), termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    sys.stderr.write(f"\\x1b]resize;{columns}\\x07")
    sys.stderr.flush()
"""


def run_in_terminal(
    argv: Sequence[str],
    columns: int,
    *,
    stdin: bytes = b"",
    env: dict[str, str] | None = None,
    timeout: float = 120,
) -> tuple[int, str, str]:
    """Run ``argv`` with its stderr on a new pty ``columns`` wide (stdin and stdout are pipes).

    Returns:
        the exit status, what it wrote on stdout, and what it wrote on the terminal.
    """
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    child_env = {**os.environ, **(env or {})}
    child_env.pop("COLUMNS", None)
    child = subprocess.Popen(
        list(argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=slave, env=child_env
    )
    os.close(slave)
    chunks: list[bytes] = []
    reader = threading.Thread(target=_drain, args=(master, chunks), daemon=True)
    reader.start()
    try:
        out, _ = child.communicate(stdin, timeout=timeout)
        reader.join(timeout)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(timeout=30)
        reader.join(timeout)
        os.close(master)
    return child.returncode, out.decode("utf-8", "replace"), b"".join(chunks).decode("utf-8", "replace")


def _drain(master: int, chunks: list[bytes]) -> None:
    """Read the pty until every writer has closed it (Linux reports EIO then)."""
    while True:
        try:
            data = os.read(master, 65536)
        except OSError as error:
            if error.errno != errno.EIO:
                raise
            return
        if not data:
            return
        chunks.append(data)


class TerminalScreen:
    """What a terminal ``columns`` wide shows after replaying ``text``.

    Attributes:
        rows: the text of each row, trailing blanks removed.
        wrapped: whether any line ran past the right margin onto the next row.
        draws: how many carriage returns started a redraw.
    """

    def __init__(self, text: str, columns: int) -> None:
        self.columns = columns
        self.wrapped = False
        self.draws = 0
        grid: list[list[str]] = [[]]
        row = col = 0
        i = 0
        while i < len(text):
            resize = RESIZE.match(text, i)
            if resize:
                self.columns = int(resize.group(1))
                grid = [line[: self.columns] for line in grid]  # what xterm does on a narrowing
                col = min(col, self.columns)
                i = resize.end()
                continue
            csi = _CSI.match(text, i)
            if csi:
                if csi.group() == "\x1b[K":
                    del grid[row][col:]
                i = csi.end()
                continue
            char = text[i]
            i += 1
            if char == "\r":
                col = 0
                if not text.startswith("\n", i):
                    self.draws += 1
            elif char == "\n":
                row += 1
                col = 0
                if row == len(grid):
                    grid.append([])
            else:
                if col >= self.columns:  # auto-wrap
                    self.wrapped = True
                    row, col = row + 1, 0
                    if row == len(grid):
                        grid.append([])
                line = grid[row]
                line.extend(" " * (col + 1 - len(line)))
                line[col] = char
                col += 1
        self.rows = ["".join(line).rstrip() for line in grid]

    @property
    def lines(self) -> list[str]:
        """The rows that show something."""
        return [row for row in self.rows if row]

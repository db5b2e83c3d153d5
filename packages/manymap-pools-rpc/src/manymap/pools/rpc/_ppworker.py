"""The ppft worker process a ``manymap-server`` runs (``python -m manymap.pools.rpc._ppworker``).

It is ppft's own worker loop (``ppft.__main__._WorkerProcess``) with two
changes that cut the cost of a round trip without changing what goes over
the pipe:

- a message is written in one piece: ppft writes its 8-byte length and
  the message as two flushed writes, so each reply woke the server twice;
- the envelope around a job (the stub's name and source, the argument
  tuple, the ``(result, output)`` reply) goes through the stdlib pickle,
  not dill's pure-Python pickler: it holds only strings and bytes, since
  manymap's own payload is already serialized.
"""

from __future__ import annotations

import os
import pickle
import struct
import sys

import ppft.__main__ as ppft_worker
import ppft.transport

__all__ = ["LENGTH", "OneWritePipe", "main"]

LENGTH = struct.Struct("!Q")  # ppft's frame header: the length of the message


class OneWritePipe(ppft.transport.CPipeTransport):  # type: ignore[misc]
    """ppft's cached pipe transport, writing each message with one write."""

    def send(self, msg: bytes | str) -> None:
        data = msg.encode() if isinstance(msg, str) else msg
        self.wb.write(LENGTH.pack(len(data)) + data)
        self.w.flush()


def main() -> None:
    sys.path.append(os.path.dirname(ppft_worker.__file__))  # as ``python -m ppft`` does
    ppft_worker.pickle = pickle
    worker = ppft_worker._WorkerProcess()  # greets the server over ppft's own transport
    worker.t = OneWritePipe(sys.stdin, sys.__stdout__)
    worker.run()


if __name__ == "__main__":
    main()

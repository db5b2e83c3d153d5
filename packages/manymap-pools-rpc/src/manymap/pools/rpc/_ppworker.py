"""The ppft worker process a ``manymap-server`` runs (``python -m manymap.pools.rpc._ppworker``).

It is ppft's own worker loop (``ppft.__main__._WorkerProcess``) with two
changes that cut the cost of a round trip without changing what goes over
the pipe:

- a message is written in one piece (:class:`OneWritePipe`): ppft writes
  its 8-byte length and the message as two flushed writes, so each reply
  woke the server twice;
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

__all__ = ["OneWritePipe", "main"]

_LENGTH = struct.Struct("!Q")  # ppft's frame header: the length of the message


class OneWritePipe(ppft.transport.CPipeTransport):  # type: ignore[misc]
    """ppft's cached pipe transport, flushing once per :meth:`send`.

    The worker's side of the pipe; the server writes ppft's framing and
    ``csend`` cache itself (``_ppprocess.py``), as :meth:`cached` does.
    """

    def send(self, *messages: bytes | str) -> None:
        """Write ``messages`` in ppft's framing; small ones leave in one write, large ones uncopied."""
        for message in messages:
            data = message.encode() if isinstance(message, str) else message
            self.wb.write(_LENGTH.pack(len(data)))
            self.wb.write(data)
        self.w.flush()

    def cached(self, message: bytes) -> bytes:
        """What ppft's ``csend`` sends for ``message``: itself the first time, its hash after."""
        digest: str = self.hash(message)
        if digest in self.scache:
            return b"H" + digest.encode()
        self.scache[digest] = True
        return b"N" + message


def main() -> None:
    sys.path.append(os.path.dirname(ppft_worker.__file__))  # as ``python -m ppft`` does
    ppft_worker.pickle = pickle
    worker = ppft_worker._WorkerProcess()  # greets the server over ppft's own transport
    worker.t = OneWritePipe(sys.stdin, sys.__stdout__)
    worker.run()


if __name__ == "__main__":
    main()

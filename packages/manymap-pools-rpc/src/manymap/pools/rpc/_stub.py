# The stub a manymap-server's ppft worker loop runs once, as source text
# (``_wire.STUB``): it names the function the loop calls for every job. This
# module is that source again, so that the package's bytecode holds it compiled:
# a worker runs this module's code instead of compiling the text
# (``_inworker.STUB_CODE``), because a process's first ``compile()`` of source
# costs about 0.8 ms (CPython builds its syntax tree types then). Nothing imports
# it: its code object is read from its ``.pyc``. ``tests/test_ppworker.py`` keeps
# the two the same.
from manymap.pools.rpc._inworker import run_counted as manymap_rpc_batch  # noqa: F401

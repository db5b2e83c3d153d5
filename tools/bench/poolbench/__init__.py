"""The pools benchmark (``tools/bench/bench_pools.py``), one concept per module.

- ``config``: sizes, timeouts, paths, the worker count;
- ``contenders``: each library's pool behind one interface;
- ``workloads``: what is timed on a warm pool and how it is checked;
- ``measure``: one round under a watchdog, and the process bookkeeping;
- ``summary``: figures, ratios and the issues' targets;
- ``units``, ``render``, ``chart``, ``docs``: the table, the chart, the docs page;
- ``cold``: the cold table (each cell a fresh process);
- ``cli``: the command line.
"""

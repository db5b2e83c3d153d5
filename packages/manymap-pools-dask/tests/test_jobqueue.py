"""DaskPool joined to a dask-jobqueue cluster: the conformance suite and the
fault table on ``dask_jobqueue.LocalCluster``, the job queue cluster that runs
its jobs as local processes (the same job scripts, scaling and job
bookkeeping as ``SLURMCluster`` or ``PBSCluster``, with ``sbatch``/``qsub``
replaced by starting the script's command here). Its scheduler and workers
bind to 127.0.0.1; each job is a real ``dask worker`` process with its nanny.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from manymap_testhosts import wait_until

from manymap.launcher.testing import FaultConformance, PoolConformance
from manymap.launcher.testing import _tasks as tasks
from manymap.pools.dask import DaskPool

dask_jobqueue_local = pytest.importorskip(
    "dask_jobqueue.local", reason="dask-jobqueue is not installed (nox installs it for these tests)"
)

JOBS = 2
WAIT = 120.0


def worker_count(cluster: Any) -> int:
    return len(cluster.scheduler_info.get("workers", {}))


def all_up(cluster: Any) -> bool:
    """Every job's worker is known to the scheduler, and every job to the cluster
    object (which lists a job only once its start has returned, after its worker
    may have joined the scheduler)."""
    return worker_count(cluster) == JOBS and len(cluster.workers) == JOBS


@pytest.fixture(scope="module")
def job_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    import dask

    directory: Path = tmp_path_factory.mktemp("jobqueue")
    # the jobs inherit this environment: a task may start processes of its own
    saved = os.environ.get("DASK_DISTRIBUTED__WORKER__DAEMON")
    os.environ["DASK_DISTRIBUTED__WORKER__DAEMON"] = "False"
    # A job whose worker stays away from the scheduler this long is closed by the
    # cluster object (default 15 s): a worker restarted after a timeout on this
    # loaded machine can take longer than that to start.
    lost = dask.config.set({"distributed.deploy.lost-worker-timeout": f"{WAIT:.0f}s"})
    cluster = dask_jobqueue_local.LocalCluster(
        cores=1,
        processes=1,
        memory="1GiB",
        python=sys.executable,
        worker_extra_args=["--host", "127.0.0.1"],
        scheduler_options={"host": "127.0.0.1", "port": 0, "dashboard_address": "127.0.0.1:0"},
        local_directory=str(directory),
        log_directory=str(directory / "logs"),
    )
    try:
        cluster.scale(jobs=JOBS)
        wait_until(lambda: all_up(cluster), WAIT, "the job queue's workers")
        yield cluster
    finally:
        cluster.close(timeout=30)
        lost.__exit__(None, None, None)
        if saved is None:
            os.environ.pop("DASK_DISTRIBUTED__WORKER__DAEMON", None)
        else:
            os.environ["DASK_DISTRIBUTED__WORKER__DAEMON"] = saved


class _Jobs:
    cluster: ClassVar[Any]

    @pytest.fixture(autouse=True)
    def _cluster(self, job_cluster: Any) -> None:
        type(self).cluster = job_cluster
        # a worker restarted by an earlier test is back
        wait_until(lambda: all_up(job_cluster), WAIT, "the job queue's workers")

    def make_pool(self, nodes: int = 2, **options: Any) -> DaskPool:
        return DaskPool(nodes, cluster=self.cluster, **options)


class TestJobQueue(_Jobs, PoolConformance):
    timeout = 2.0


class TestJobQueueFaults(_Jobs, FaultConformance):
    # Not the pool's workers: it does not reap them when dropped, nor kill what
    # a task started on them (see the docs' "What the pool pins").
    reaps_on_gc = False
    child_kinds = ()


def test_the_pool_runs_on_the_jobs_and_leaves_them_running(job_cluster: Any) -> None:
    wait_until(lambda: all_up(job_cluster), WAIT, "the job queue's workers")
    jobs = dict(job_cluster.workers)  # job name -> the job (its worker process)
    assert len(jobs) == JOBS
    with DaskPool(cluster=job_cluster) as pool:
        assert pool.map(tasks.square, range(20), chunksize=1) == [x * x for x in range(20)]
        # every thread of the cluster, once the scheduler has told the pool of each worker
        wait_until(lambda: pool.nodes == JOBS, WAIT, "the pool to know every job's worker")
        assert 1 <= len(pool.stats().workers) <= JOBS  # whichever of them ran the tasks
        assert pool.scheduler_address == job_cluster.scheduler_address
    assert dict(job_cluster.workers) == jobs  # the pool stopped no job
    assert worker_count(job_cluster) == JOBS

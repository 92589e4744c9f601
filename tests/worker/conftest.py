"""A real Celery worker process on Redis and the PostgreSQL test database.

Skipped (with the reason) when DATABASE_URL is not PostgreSQL or Redis does not answer, unless
REQUIRE_WORKER_TESTS=1 (CI), where that is a failure.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.training.conftest import _fresh_serving, _small_ml, tiny_catalog, tiny_labels  # noqa: F401  (fixtures)

REPO = Path(__file__).resolve().parents[2]
# Celery gives the CELERY_BROKER_URL environment variable precedence over app.conf, so when it
# names Redis (as in CI) the worker must listen there; otherwise Redis db 1.
_env_broker = os.environ.get("CELERY_BROKER_URL", "")
BROKER_URL = os.environ.get("WORKER_TEST_BROKER_URL") or (
    _env_broker if _env_broker.startswith("redis://") else "redis://127.0.0.1:6379/1"
)


def _unavailable(reason: str):
    if os.environ.get("REQUIRE_WORKER_TESTS") == "1":
        pytest.fail(f"worker tests required (REQUIRE_WORKER_TESTS=1) but {reason}")
    pytest.skip(reason)


@pytest.fixture
def worker_requirements(settings):
    if settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        _unavailable("worker tests need PostgreSQL: set DATABASE_URL=postgres://... (the worker shares the test database)")
    try:
        import redis

        client = redis.Redis.from_url(BROKER_URL, socket_connect_timeout=2)
        client.ping()
    except Exception as exc:  # connection refused, DNS, timeout
        _unavailable(f"Redis at {BROKER_URL} does not answer ({exc})")
    client.flushdb()  # this database number is the worker tests' own
    return client


@pytest.fixture
def redis_broker(worker_requirements):
    """Send tasks from this process to Redis (the suite's default broker is the filesystem)."""
    from curation.celery import app

    saved = (app.conf.broker_url, app.conf.broker_transport_options, app._pool)
    app.conf.broker_url = BROKER_URL
    app.conf.broker_transport_options = {"visibility_timeout": 4 * 3600}
    app._pool = None
    app.amqp._producer_pool = None
    yield app
    from kombu import pools

    # kombu caches producer pools per connection URL process-wide: drop them with the connections,
    # or the next test would acquire from a closed pool.
    pools.reset()
    app.conf.broker_url, app.conf.broker_transport_options, app._pool = saved
    app.amqp._producer_pool = None


def _database_url(settings) -> str:
    from django.db import connection

    db = connection.settings_dict
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


class WorkerProcess:
    def __init__(self, proc: subprocess.Popen, log: Path):
        self.proc = proc
        self.log = log

    def kill(self) -> None:
        """SIGKILL the worker and its pool children: no chance to clean up, like a lost machine."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()

    def tail(self, n: int = 60) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])


@pytest.fixture
def start_worker(redis_broker, settings, tmp_path):
    """start_worker(**env) -> a running `celery -A curation worker` sharing this test's database,
    media and artifacts folders."""
    workers: list[WorkerProcess] = []

    def _start(**extra_env) -> WorkerProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CACHE_URL", "CELERY_"))}
        env.update(
            DJANGO_SETTINGS_MODULE="curation.settings",
            DATABASE_URL=_database_url(settings),
            CELERY_BROKER_URL=BROKER_URL,
            MEDIA_ROOT=str(settings.MEDIA_ROOT),
            ARTIFACTS_ROOT=str(settings.ARTIFACTS_ROOT),
            ML_WEIGHTS="none", ML_IMAGE_SIZE="64", ML_DEVICE="cpu", ML_LOADER_WORKERS="0", ML_BATCH_SIZE="16", ML_BF16="0",
            TRAIN_CATEGORY_EPOCHS="2", TRAIN_CATEGORY_MIN_STEPS="20", TRAIN_SIAMESE_EPOCHS="3", TRAIN_OUTFIT_EPOCHS="3",
            RETRAIN_LOCK_STALE_SECONDS=str(settings.RETRAIN_LOCK_STALE_SECONDS),
            MODEL_RELOAD_CHECK_SECONDS="0", CANDIDATE_BATCH="30",
            PYTHONUNBUFFERED="1",
        )
        env.update({k: str(v) for k, v in extra_env.items()})
        log = tmp_path / f"worker-{len(workers)}.log"
        proc = subprocess.Popen(
            [str(Path(sys.executable).with_name("celery")), "-A", "curation", "worker", "--loglevel=info", "--concurrency=1",
             "-Q", "default", "--without-gossip", "--without-mingle", "--without-heartbeat", "-n", f"test-{uuid.uuid4().hex[:8]}@%h"],
            cwd=REPO, env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT, start_new_session=True,
        )
        worker = WorkerProcess(proc, log)
        workers.append(worker)
        return worker

    yield _start
    for worker in workers:
        worker.stop()


def wait_for(predicate, *, timeout: float, what: str, worker: WorkerProcess | None = None, every: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if worker is not None and worker.proc.poll() is not None:
            raise AssertionError(f"the worker exited ({worker.proc.returncode}) while waiting for {what}:\n{worker.tail()}")
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}" + (f"\n{worker.tail()}" if worker else ""))

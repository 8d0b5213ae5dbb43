"""gunicorn settings for production: ``gunicorn -c python:bridge.gunicorn_conf bridge.wsgi:app``.

Environment: ``BRIDGE_BIND`` (default 0.0.0.0:8000), ``BRIDGE_WORKERS`` (default 2 per core),
``BRIDGE_WORKER_CLASS`` (default gthread), ``BRIDGE_THREADS`` (threads per gthread worker,
default 4; 1 for sync), ``BRIDGE_KEEPALIVE`` (seconds an idle kept-alive connection stays open,
default 75: longer than the proxy's idle timeout, so the proxy closes first and never reuses a
connection we are closing),
``PROMETHEUS_MULTIPROC_DIR`` (an empty, writable directory: metrics add up across workers).

Threaded workers keep connections alive: a proxy holding a pool of upstream connections
(docs/operations.md) saves the accept and the fresh parse per request that sync workers pay, as
they close every connection. The caches a process holds (keys, SP keys, IdPs) take a lock.
"""

import multiprocessing
import os

bind = os.environ.get("BRIDGE_BIND", "0.0.0.0:8000")
workers = int(os.environ.get("BRIDGE_WORKERS", str(2 * multiprocessing.cpu_count())))
worker_class = os.environ.get("BRIDGE_WORKER_CLASS", "gthread")
# gunicorn turns sync workers with more than one thread into gthread workers.
threads = int(os.environ.get("BRIDGE_THREADS", "4" if worker_class == "gthread" else "1"))
timeout = 30
graceful_timeout = 20
keepalive = int(os.environ.get("BRIDGE_KEEPALIVE", "75"))
# The application writes one JSON line per request itself (bridge.logs); gunicorn's own lines
# would carry query strings.
accesslog = None
errorlog = "-"
control_socket_disable = True
# Workers' heartbeat files: in memory, so a read-only root filesystem (the Kubernetes example) or
# a slow overlay disk cannot stall them (gunicorn's advice for containers). gunicorn makes them
# with mkstemp and unlinks them at once: no predictable name for S108 to worry about.
_SHM = "/dev/shm"  # noqa: S108
worker_tmp_dir = _SHM if os.path.isdir(_SHM) else None


def child_exit(server, worker):  # noqa: ANN001, ANN201 - gunicorn's hook signature
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)

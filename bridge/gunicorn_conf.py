"""gunicorn settings for production: ``gunicorn -c python:bridge.gunicorn_conf bridge.wsgi:app``.

Environment: ``BRIDGE_BIND`` (default 0.0.0.0:8000), ``BRIDGE_WORKERS`` (default 2 per core),
``PROMETHEUS_MULTIPROC_DIR`` (an empty, writable directory: metrics add up across workers).
"""

import multiprocessing
import os

bind = os.environ.get("BRIDGE_BIND", "0.0.0.0:8000")
workers = int(os.environ.get("BRIDGE_WORKERS", str(2 * multiprocessing.cpu_count())))
worker_class = "sync"
timeout = 30
graceful_timeout = 20
keepalive = 5
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

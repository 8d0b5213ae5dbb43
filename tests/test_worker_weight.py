"""What a production worker imports: the app as gunicorn loads it (bridge.wsgi) must not pull in
what only migrations (alembic) or SCIM requests (scim2-models, pydantic) need, which weigh about
24 MB per worker together (docs/performance.md). Run in a fresh interpreter, as a worker starts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from bridge.store.db import Database
from tests.conftest import TEST_KEK


def test_a_worker_starts_without_the_migration_and_scim_libraries(database: Database,
                                                                   tmp_path: Path) -> None:
    config = tmp_path / "bridge.toml"
    config.write_text(f'base_url = "http://127.0.0.1:8000"\ndatabase_url = "{database.url}"\n'
                      f'instance_dir = "{tmp_path}"\nbackground_jobs = false\n')
    probe = ("import json, sys\nimport bridge.wsgi\n"
             "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))")
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_")}
    # The session's key-encryption key: the SP keys this worker may make outlive the test
    # (KEPT_TABLES), and every later test of the session must be able to read them.
    env.update({"BRIDGE_CONFIG": str(config), "BRIDGE_KEY_ENCRYPTION_KEY": TEST_KEK})
    result = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True,
                            text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    loaded = set(json.loads(result.stdout.splitlines()[-1]))
    assert "bridge" in loaded and "flask" in loaded  # the app did load
    assert not loaded & {"alembic", "mako", "pygments", "scim2_models", "pydantic"}

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _threads_seen_by_wsgi(extra_env: dict) -> str:
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    env.update(extra_env, DJANGO_SETTINGS_MODULE="tests.settings")
    code = "import curation.wsgi, os; print(os.environ['OMP_NUM_THREADS'])"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=True)
    return out.stdout.strip().splitlines()[-1]


def test_web_processes_search_with_one_thread_unless_told_otherwise():
    assert _threads_seen_by_wsgi({}) == "1"
    assert _threads_seen_by_wsgi({"OMP_NUM_THREADS": "4"}) == "4"

#!/usr/bin/env bash
# Started by `make run`: a Celery worker (and beat) in the background, the web server in front.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
PORT=${PORT:-8000}
mkdir -p var/log
"$BIN/celery" -A curation worker --loglevel=info --concurrency=1 >var/log/worker.log 2>&1 &
WORKER=$!
"$BIN/celery" -A curation beat --loglevel=info --schedule var/celerybeat-schedule >var/log/beat.log 2>&1 &
BEAT=$!
trap 'kill $WORKER $BEAT 2>/dev/null || true' EXIT INT TERM
# The first models: embed the demo catalog and train, in the worker, unless a model is active.
"$BIN/python" manage.py retrain --if-no-active-model || echo "(first training not queued: see var/log/worker.log)"
echo
echo "  The app is at http://127.0.0.1:$PORT/  (logins above; worker log: var/log/worker.log)"
echo
"$BIN/python" manage.py runserver "127.0.0.1:$PORT"

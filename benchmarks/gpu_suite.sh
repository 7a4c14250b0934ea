#!/usr/bin/env bash
# The prepared GPU check, one command (the logic and its documentation: benchmarks/gpu_suite.py):
#   benchmarks/gpu_suite.sh [--dry-run] [--out DIR] [--only STEP ...] [--step-timeout [STEP=]SECONDS] ...
# The runner itself needs only Python's standard library; it picks the interpreter the steps run with.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -x .venv/bin/python ]; then python=.venv/bin/python; else python=python3; fi
exec "$python" benchmarks/gpu_suite.py "$@"

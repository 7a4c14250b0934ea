#!/usr/bin/env bash
# Run the README's test command N times in a row on a fresh clone, optionally with busy-loop processes
# competing for the cores; one line per run (exit code, seconds, pytest summary, load average).
#   tools/repeat_tests.sh [RUNS] [BUSY_LOOPS] [SOURCE_REPO]
set -uo pipefail
runs=${1:-5}
busy=${2:-0}
source_repo=${3:-$(cd "$(dirname "$0")/.." && pwd)}
work=$(mktemp -d /tmp/rd_vla_repeat.XXXXXX)
git clone -q "$source_repo" "$work/repo"
cd "$work/repo" || exit 1
echo "repeat_tests: $runs runs of make test on a fresh clone of $(git rev-parse --short HEAD), $busy busy loops, $(nproc) cores"
pids=()
for _ in $(seq 1 "$busy"); do
  ( while :; do :; done ) &
  pids+=($!)
done
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done' EXIT
failed=0
for i in $(seq 1 "$runs"); do
  start=$(date +%s)
  make test > "$work/run$i.log" 2>&1
  rc=$?
  summary=$(grep -E "^(=+ )?[0-9]+ (passed|failed)" "$work/run$i.log" | tail -1 | tr -d '=')
  echo "run $i: exit $rc, $(( $(date +%s) - start )) s,$summary, load $(cut -d' ' -f1-3 /proc/loadavg)"
  [ "$rc" -eq 0 ] || { failed=$((failed + 1)); grep -E "^FAILED|^ERROR" "$work/run$i.log" | head -5; }
done
echo "repeat_tests: $failed of $runs runs failed (logs in $work)"
[ "$failed" -eq 0 ]

#!/usr/bin/env bash
# Runs the test groups one after another, each under a timeout, and keeps going when one fails,
# so that one run shows every failure. Each group's output goes to the terminal and to
# .build/test-logs/GROUP.log; at the end the failures of all groups are printed again, together,
# because CI keeps only the end of a long output.
#   usage: run-groups.sh TIMEOUT-SECONDS NAME -- SWIFT-TEST-ARGUMENTS... [:: NAME -- ARGUMENTS...]...
set -uo pipefail
timeout_seconds=$1; shift
logs=.build/test-logs
mkdir -p "$logs"
failed=()
while [ $# -gt 0 ]; do
  name=$1; shift
  [ "${1:-}" = "--" ] || { echo "run-groups.sh: expected -- after $name" >&2; exit 2; }
  shift
  arguments=()
  while [ $# -gt 0 ] && [ "$1" != "::" ]; do arguments+=("$1"); shift; done
  [ $# -gt 0 ] && shift
  echo "== test group $name: swift test ${arguments[*]}"
  timeout "$timeout_seconds" stdbuf -oL -eL "${SWIFT:-swift}" test "${arguments[@]}" 2>&1 | tee "$logs/$name.log"
  status=${PIPESTATUS[0]}
  if [ "$status" -ne 0 ]; then
    failed+=("$name (exit $status$([ "$status" -eq 124 ] && echo ", timed out after ${timeout_seconds}s"))")
  fi
done
if [ ${#failed[@]} -eq 0 ]; then
  echo "== every test group passed"
  exit 0
fi
echo
echo "== failed test groups: ${failed[*]}"
for log in "$logs"/*.log; do
  group=$(basename "$log" .log)
  grep -E "✘|Fatal error|fatal error|error: Exited|Exited with" "$log" | sed "s|^|$group: |" | head -60
  # After a crash or a timeout: the tests that started and never ended.
  if ! grep -q "Test run with" "$log"; then
    awk '/◇ Test [^ ]+ started\./ && $3 != "run" { open[$3] = 1 }
         /[✔✘] Test [^ ]+ (passed|failed)/ { delete open[$3] }
         END { for (name in open) print "still running when it ended: " name }' "$log" | sed "s|^|$group: |"
  fi
done
exit 1

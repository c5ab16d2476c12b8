#!/usr/bin/env bash
# Builds the fuzz targets (tools/fuzz, libFuzzer with AddressSanitizer) and runs each for the
# given time over its committed seed corpus (tools/fuzz/corpus/TARGET). New inputs that reach new
# code go to .build-fuzz/corpus/TARGET (kept between runs, never committed); a crash, a leak, a
# timeout or an out-of-memory writes its reproducer to .build-fuzz/artifacts/TARGET/ and fails
# the run. Rerun a reproducer with: .build-fuzz/debug/fuzz-TARGET FILE
#   usage: tools/fuzz/run.sh SECONDS-PER-TARGET [TARGET...]      (targets: the directories of tools/fuzz/Sources)
set -uo pipefail
seconds=${1:?usage: run.sh SECONDS-PER-TARGET [TARGET...]}; shift
root=$(cd "$(dirname "$0")/../.." && pwd)
scratch=$root/.build-fuzz
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  for directory in "$root"/tools/fuzz/Sources/fuzz-*; do targets+=("$(basename "$directory" | sed 's/^fuzz-//')"); done
fi
echo "== fuzz: building ${#targets[@]} targets with -sanitize=fuzzer,address"
# --sanitize=fuzzer makes SwiftPM link libFuzzer's main instead of generating one. Its
# --sanitize=fuzzer --sanitize=address reach swiftc as two options, of which only the last takes
# effect (no coverage instrumentation), so the pair also goes to swiftc as one option, last.
mkdir -p "$scratch"
# The build plan is planned again each run: a file added to the product's modules (a path
# dependency here) was otherwise missing from a plan kept from an earlier build.
rm -f "$scratch/debug.yaml"
if ! "${SWIFT:-swift}" build --package-path "$root/tools/fuzz" --scratch-path "$scratch" --sanitize=fuzzer -Xswiftc -sanitize=fuzzer,address \
    > "$scratch/build.log" 2>&1; then
  grep -E "error" "$scratch/build.log" | head -20
  echo "== fuzz: the build failed (log: $scratch/build.log)"; exit 1
fi
tail -1 "$scratch/build.log"
# Swift's own crash backtracer reads the crashed process's memory, which AddressSanitizer reports
# as a second error that hides the first.
export SWIFT_BACKTRACE=enable=no
failed=()
total=0
printf '%-12s %12s %10s %8s  %s\n' target executions exec/s corpus result > "$scratch/fuzz-summary.txt"
for target in "${targets[@]}"; do
  binary=$scratch/debug/fuzz-$target
  work=$scratch/corpus/$target
  artifacts=$scratch/artifacts/$target
  mkdir -p "$work" "$artifacts"
  log=$scratch/fuzz-$target.log
  echo "== fuzz: $target for ${seconds}s"
  "$binary" -max_total_time="$seconds" -print_final_stats=1 -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix="$artifacts/" "$work" "$root/tools/fuzz/corpus/$target" > "$log" 2>&1
  status=$?
  # (a leak report at exit prints the statistics a second time)
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | head -1 | grep -o '[0-9]*$')
  rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | head -1 | grep -o '[0-9]*$')
  units=$(find "$work" -type f | wc -l)
  total=$((total + ${runs:-0}))
  if [ $status -eq 0 ]; then
    result=ok
  else
    result="FAILED (exit $status): $(ls -t "$artifacts" | head -1 | sed "s|^|$artifacts/|")"
    failed+=("$target")
    grep -E "ERROR: |Fatal error|SUMMARY" "$log" | head -5
  fi
  printf '%-12s %12s %10s %8s  %s\n' "$target" "${runs:-0}" "${rate:-0}" "$units" "$result" | tee -a "$scratch/fuzz-summary.txt"
done
echo "== fuzz summary (${seconds}s per target, $total executions in all)"
cat "$scratch/fuzz-summary.txt"
if [ ${#failed[@]} -gt 0 ]; then
  echo "== fuzz: failed targets: ${failed[*]} (logs: $scratch/fuzz-TARGET.log)"
  exit 1
fi
echo "== fuzz: every target ran clean"

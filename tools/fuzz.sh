#!/usr/bin/env bash
# Long fuzzing runs: every atheris harness (tests/fuzz/fuzz_*.py) and the libFuzzer target over
# the C++ core (csrc/fuzz/fuzz_core.cpp, built with clang under ASan + UBSan).
#
#   tools/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     (default 600 s; targets: model metadata image ros core)
#
# New inputs go to $FUZZ_WORK (default /tmp/edgeseg-fuzz/<target>), never into the seed corpus
# (tests/fuzz/corpus/<target>); a crash, leak, timeout or escaped exception is written as
# $FUZZ_WORK/<target>-crash-* and the script exits non-zero. Each target's last lines (runs,
# executions per second, new units) are printed. Needs: pip install atheris; clang for "core".
set -uo pipefail
cd "$(dirname "$0")/.."
secs=${1:-600}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(model metadata image ros core)
work=${FUZZ_WORK:-/tmp/edgeseg-fuzz}
flags=(-max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1)
status=0
for t in "${targets[@]}"; do
  mkdir -p "$work/$t" "$work/tmp"
  if [ "$t" = core ]; then
    bin="$work/fuzz_core"
    if [ ! -x "$bin" ] || [ -n "$(find csrc/core csrc/fuzz -newer "$bin" -name '*.[ch]*' -print -quit)" ]; then
      clang++ -std=c++17 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -ffp-contract=off \
        -Icsrc csrc/fuzz/fuzz_core.cpp csrc/core/*.cpp -pthread -o "$bin" || { status=1; continue; }
    fi
    cmd=("$bin" -max_len=4096)
  else
    cmd=(python "tests/fuzz/fuzz_$t.py")
    [ -f "tests/fuzz/$t.dict" ] && cmd+=(-dict="tests/fuzz/$t.dict")
  fi
  echo "== $t: ${secs}s" >&2
  TMPDIR="$work/tmp" "${cmd[@]}" "$work/$t" "tests/fuzz/corpus/$t" "${flags[@]}" -artifact_prefix="$work/$t-" \
    >"$work/$t.log" 2>&1
  rc=$?
  grep -aE "^Done|^stat::|^==[0-9]+== ERROR|Uncaught|runtime error: |^SUMMARY" "$work/$t.log" >&2
  [ $rc -eq 0 ] || { echo "!! $t failed (rc $rc): see $work/$t.log and $work/$t-*" >&2; status=1; }
done
exit $status

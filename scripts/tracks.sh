#!/usr/bin/env bash
# Run `make test`'s stages as independent tracks at the same time; the stages of one track run
# in order. Each track's output goes to its own log, printed whole when the track ends, so the
# CI log reads track by track. Every track runs to its end even if another failed; the exit
# status is non-zero if any stage failed.
#   scripts/tracks.sh "unit molecule-cloud" "molecule-fleet" ...   (each argument: one track)
set -uo pipefail
dir=$(mktemp -d "${TMPDIR:-/tmp}/ovr-tracks.XXXXXX")
trap 'rm -rf "$dir"' EXIT
declare -A pids=()
n=0
for track in "$@"; do
  n=$((n + 1))
  (
    for stage in $track; do
      scripts/stage.sh "$stage" make --no-print-directory "$stage" || exit 1
    done
  ) >"$dir/$n.log" 2>&1 &
  pids[$n]=$!
  echo "== track $n started: $track =="
done
rc=0
remaining=$n
while (( remaining > 0 )); do
  wait -n -p done_pid "${pids[@]}"
  status=$?
  for i in "${!pids[@]}"; do
    [[ "${pids[$i]}" == "$done_pid" ]] || continue
    echo "== track $i ended (rc=$status): log follows =="
    cat "$dir/$i.log"
    echo "== end of track $i =="
    unset "pids[$i]"
  done
  (( status == 0 )) || rc=1
  remaining=$((remaining - 1))
done
exit $rc

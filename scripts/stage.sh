#!/usr/bin/env bash
# Run one stage of `make test`, print its duration, and keep a table for the summary.
#   scripts/stage.sh NAME cmd...    run and time a stage
#   scripts/stage.sh --summary      print every stage's time (and fail if one failed)
set -uo pipefail
log="${OVR_STAGE_LOG:-/tmp/ovr-stages.$PPID}"
if [[ "${1:-}" == "--summary" ]]; then
  echo "== stage times =="
  column -t -s $'\t' "$log" 2>/dev/null || cat "$log"
  # Stages run in parallel tracks: the wall time is first start to last end, not the sum.
  if [[ -s "$log.span" ]]; then
    read -r first last < <(sort -n "$log.span" | awk 'NR==1{f=$1} {if ($2>l) l=$2} END{print f, l}')
    echo "wall time: $(( last - first ))s ($(( (last - first) / 60 )) min)"
  fi
  rm -f "$log.span"
  ok=$(grep -c $'\tok$' "$log" || true)
  bad=$(grep -vc $'\tok$' "$log" || true)
  rm -f "$log"
  echo "stages: ${ok} passed, ${bad} failed"
  [[ "$bad" -eq 0 ]]
  exit
fi
name="$1"; shift
echo "== stage $name =="
start=$(date +%s)
"$@"
rc=$?
end=$(date +%s)
secs=$(( end - start ))
echo "$start $end" >>"$log.span"
printf '%s\t%ss\t%s\n' "$name" "$secs" "$([[ $rc -eq 0 ]] && echo ok || echo "FAILED rc=$rc")" >>"$log"
echo "== stage $name: ${secs}s rc=$rc =="
exit $rc

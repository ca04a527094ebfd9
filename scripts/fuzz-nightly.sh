#!/usr/bin/env bash
# Nightly-style fuzz run: 100,000 atheris inputs per target (split over the target's properties),
# one property at a time, through tests/fuzz/run_atheris.py. Prints one line per property and a
# total per target; exits non-zero on the first crash or property failure (the input is kept as
# crash-* in $OUT). Usage: scripts/fuzz-nightly.sh [INPUTS_PER_TARGET] [OUT_DIR] [TARGET...]
# Targets: mllp-framing hl7v2-parser http-ingest rule-loader ecg-readers (default: all, in that order).
set -euo pipefail
cd "$(dirname "$0")/.."
PER_TARGET="${1:-100000}"
OUT="${2:-fuzz-out}"
PY="${PYTHON:-.venv/bin/python}"
mkdir -p "$OUT"

declare -A TARGETS=(
  [mllp-framing]="test_fuzz_mllp:test_any_stream_gives_frames_or_specific_problems test_fuzz_mllp:test_framed_messages_survive_junk_and_any_read_boundaries"
  [hl7v2-parser]="test_fuzz_hl7:test_mutated_samples_decode_or_reject_clearly test_fuzz_hl7:test_random_segments_decode_or_reject_clearly test_fuzz_hl7:test_arbitrary_bytes_reject_clearly"
  [http-ingest]="test_fuzz_http:test_any_json_decodes_or_names_the_field test_fuzz_http:test_near_valid_observations_decode_or_name_the_field test_fuzz_http:test_mutated_json_bytes_decode_or_name_the_field"
  [rule-loader]="test_fuzz_rules_bytes:test_mutated_rule_file_loads_or_names_file_and_line"
  [ecg-readers]="test_fuzz_ecg:test_mutated_single_file_formats_read_or_reject_clearly test_fuzz_ecg:test_mutated_wfdb_record_reads_or_rejects_clearly"
)

shift $(( $# < 2 ? $# : 2 ))
SELECTED=("$@")
[ ${#SELECTED[@]} -gt 0 ] || SELECTED=(mllp-framing hl7v2-parser http-ingest rule-loader ecg-readers)

for target in "${SELECTED[@]}"; do
  [ -n "${TARGETS[$target]:-}" ] || { echo "unknown target $target"; exit 2; }
  read -r -a props <<< "${TARGETS[$target]}"
  runs=$(( (PER_TARGET + ${#props[@]} - 1) / ${#props[@]} ))
  total=0
  for prop in "${props[@]}"; do
    log="$OUT/${prop//:/__}.log"
    started=$(date +%s)
    (cd "$OUT" && "$OLDPWD/$PY" "$OLDPWD/tests/fuzz/run_atheris.py" "$prop" "$runs" -max_len=4096) > "$log" 2>&1 \
      || { echo "FAIL $target $prop (see $log)"; tail -40 "$log"; exit 1; }
    done_runs=$(grep -o 'number_of_executed_units: [0-9]*' "$log" | awk '{print $2}')
    echo "ok   $target $prop inputs=$done_runs seconds=$(( $(date +%s) - started ))"
    total=$(( total + done_runs ))
  done
  echo "TOTAL $target inputs=$total crashes=0"
done

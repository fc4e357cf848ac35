#!/usr/bin/env bash
# The GPU checks of ablate, for a machine with one CUDA GPU, in two device calls of at most 8
# minutes each (CALLS below: the main job alone in the second; the first H200 run, all in one call,
# showed the stages need about 11 minutes together). GPU_CHECK_SECONDS (default 480) is one call's
# budget: every stage ends by 25 s before it (its own limit, or less when earlier stages ran long),
# leaving the main job's fallback report and the last verdicts their time.
#
#   PYTHONPATH=/tmp/site bash bench/gpu_check.sh     # /tmp/site: bench/device_install.sh's TARGET
#   PYTHONPATH=/tmp/site bash bench/gpu_check.sh --only step,temps   # the preflight and these targets
#   bash bench/gpu_check.sh --plan                   # each call's stages and limits, nothing run
#
# Runs from the checkout (no install: the checkout is put first on PYTHONPATH and `ablate` is
# `python3 -m ablate.cli`). Preflight first (torch sees CUDA; torch, ray, optuna, pydantic and
# ablate import; one CUDA training step runs): if it fails, nothing else runs. Then each stage
# under `timeout` with its own limit, and one PASS/FAIL line per target in $OUT/summary.txt:
#   step     bf16 step, ablate vs lightly on identical work (ViT-S/16, 2x224 + 8x96, K 65536): >= 1.25x
#   resume   `ablate train` on CUDA interrupted after epoch 2 and resumed = an uninterrupted run
#   e2e      CIFAR-sized in-memory data, augmented on the GPU: host data wait and data share < 5 %
#   packed   4 trials at gpu 0.25 on one card >= 2.5x one trial alone (aggregate training img/s)
#   memory   each packed trial's peak memory within its cap (0.25 of the card)
#   oom      a 2-trial sweep: the trial that cannot fit its cap ends `oom`, the other `completed`
#   temps    the main job, `ablate run search_spaces/temps.yaml` at gpu 0.125 per trial (8 at once), timed;
#            per-trial kNN; every collapsed configuration's mean below every working one's
#   (ddp     1 vs N GPUs for one run, only where there are >= 2 GPUs: figures, no target)
# Results are read from public outputs only (the scripts' JSON lines, metrics.jsonl, the sweeps'
# report/*.parquet, exit codes): bench/gpu_check.py. $OUT (default ./gpu-check) is emptied first
# and gets at most 8 files: summary.txt, check.log (every stage's output), step.jsonl, e2e.json,
# resume.json, packed.json, temps_trials.csv, temps_report.md. Runs go to a scratch folder.
# Exit status: the number of FAIL lines.
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 1
PY=${PYTHON:-python3}
ABLATE=("$PY" -m ablate.cli)
TEMPS_GPU=${TEMPS_GPU:-0.125}   # 8 trials of the main job at once (16 cores, 2 CPUs each); TEMPS_LIMIT: its limit
# PREFLIGHT_IMPORT_LIMIT: the imports' limit (30 s; they took 17-19 s on the H200, more on a loaded CPU machine)
ORDER=(preflight-import preflight-step step-ablate step-lightly resume+oom e2e e2e-step packed-1 packed-4 temps)
# Limits from the first H200 run (2026-12-04, seconds taken): imports 17-19, one step 16-19, steps
# 16 and 20, oom 65 (15-19 s of imports per process there), resume over 60, e2e about 50, packed-1
# over 50 at 12 epochs (now 6), temps 173.
declare -A LIMIT=([preflight-import]=${PREFLIGHT_IMPORT_LIMIT:-30} [preflight-step]=30 [step-ablate]=35
                  [step-lightly]=35 [resume+oom]=90 [e2e]=50 [e2e-step]=25 [packed-1]=60 [packed-4]=70
                  [temps]=${TEMPS_LIMIT:-240})
# the targets whose `want` runs each stage below (the preflight runs for all; memory comes with packed)
declare -A SERVES=([step-ablate]=step [step-lightly]=step [resume+oom]=resume,oom [e2e]=e2e [e2e-step]=e2e
                   [packed-1]=packed [packed-4]=packed [temps]=temps)
TARGETS=(step resume e2e packed memory oom temps)
CALLS=(step,resume,oom,e2e,packed temps)   # the run plan: one `--only` per device call
ONLY=
if [ "${1:-}" = --only ]; then
  ONLY=",${2:?--only needs targets, e.g. --only step,temps (of: ${TARGETS[*]} ddp)},"
  shift 2
fi
want() { [ -z "$ONLY" ] || [[ $ONLY == *",$1,"* ]] || { [ "$1" = memory ] && [[ $ONLY == *",packed,"* ]]; }; }
# runs STAGE: whether the selected targets need STAGE
runs() {
  local t; [ -z "${SERVES[$1]:-}" ] && return 0
  for t in ${SERVES[$1]//,/ }; do want "$t" && return 0; done; return 1
}

if [ "${1:-}" = --plan ]; then
  plan() {  # the stages of the current selection, their limits and their sum
    local s total=0
    for s in "${ORDER[@]}"; do
      runs "$s" || continue
      printf '  %-17s %4ss\n' "$s" "${LIMIT[$s]}"; total=$((total + LIMIT[$s]))
    done
    printf '  %-17s %4ss (stages end by GPU_CHECK_SECONDS=%s - 25)\n' total "$total" "${GPU_CHECK_SECONDS:-480}"
  }
  if [ -n "$ONLY" ]; then echo "--only ${ONLY:1:-1}"; plan; exit 0; fi
  n=0
  for c in "${CALLS[@]}"; do n=$((n + 1)); ONLY=",$c,"; echo "call $n: --only $c"; plan; done
  exit 0
fi

export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
OUT=${OUT:-gpu-check}
mkdir -p "$OUT" && find "$OUT" -mindepth 1 -delete
WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpu-check.XXXXXX")
SUMMARY=$OUT/summary.txt LOG=$OUT/check.log
DEADLINE=$((SECONDS + ${GPU_CHECK_SECONDS:-480} - 25))   # stages end here; the rest: report, verdicts
FAILED=0 TIMES=()
: >"$SUMMARY"; : >"$LOG"
say() { echo "$*" | tee -a "$SUMMARY"; }

# stage NAME CMD...: CMD under `timeout` (which ends CMD's whole process group, a local Ray's
# processes included) with NAME's limit (less if the 8 minutes run out), output to
# $WORK/NAME.log, exit status to $WORK/NAME.rc (124: timed out, 125: no time left).
stage() {
  local name=$1 limit=${LIMIT[$1]:-60} rc=0 start=$SECONDS; shift
  local left=$((DEADLINE - SECONDS))
  [ "$left" -lt "$limit" ] && limit=$left
  if [ "$limit" -lt 5 ]; then
    echo "skipped: the 8 minutes are spent" >"$WORK/$name.log"; echo 125 >"$WORK/$name.rc"; return 125
  fi
  echo "== $name (limit ${limit}s) $(date +%T)"
  timeout --kill-after=5 "$limit" "$@" </dev/null >"$WORK/$name.log" 2>&1 || rc=$?
  echo "$rc" >"$WORK/$name.rc"
  echo "   $name: exit $rc after $((SECONDS - start))s$([ "$rc" = 124 ] && echo " (timed out at ${limit}s)")"
  echo "$((SECONDS - start))" >"$WORK/$name.s"
  return "$rc"
}
# logged NAME: append the stage's log to check.log (last 400 lines) and its time to the summary's tally.
logged() {
  local name=$1
  { echo "==== $name: exit $(cat "$WORK/$name.rc" 2>/dev/null || echo '?') after $(cat "$WORK/$name.s" 2>/dev/null || echo 0)s"
    tail -400 "$WORK/$name.log" 2>/dev/null; echo; } >>"$LOG"
  TIMES+=("$name $(cat "$WORK/$name.s" 2>/dev/null || echo 0)s")
}
rc_of() { cat "$WORK/$1.rc" 2>/dev/null || echo 125; }
# note STAGES: " [stage NAME: exit RC, timed out]" for each of the comma-separated stages that failed.
note() {
  local s rc out=
  for s in ${1//,/ }; do
    rc=$(rc_of "$s")
    [ "$rc" = 0 ] && continue
    out+=" [stage $s: exit $rc$([ "$rc" = 124 ] && echo ', timed out')$([ "$rc" = 125 ] && echo ', no time left')]"
  done
  echo "$out"
}
# count LINE: the summary gets LINE; a line that is not PASS is a failed target.
count() { say "$1"; [[ $1 == PASS* ]] || FAILED=$((FAILED + 1)); }
# verdict STAGES ARGS...: the PASS/FAIL line of `bench/gpu_check.py ARGS`, noting the stages that failed.
verdict() {
  local stages=$1 line; shift
  line=$(timeout 30 "$PY" bench/gpu_check.py "$@" 2>>"$LOG" </dev/null | tail -1)
  [ -n "$line" ] || line="FAIL $1: the verdict did not run (see check.log)"
  count "$line$(note "$stages")"
}
# ray_log SWEEP: where the sweep failed, the end of its Ray log (runs/SWEEP/ray.log) into check.log.
ray_log() {
  [ "$(rc_of "$1")" = 0 ] && return 0
  { echo "---- $1: end of ray.log"; tail -60 "$WORK/runs/$1/ray.log" 2>/dev/null; echo; } >>"$LOG"
}
finish() {
  say "== stages: ${TIMES[*]}"
  say "== $FAILED target(s) failed; total ${SECONDS}s; figures in $OUT/, runs in $WORK"
  exit "$FAILED"
}

{ echo "ablate GPU check, $(date -u +%FT%TZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
  if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 | head -4
  else echo "nvidia-smi: not found (no NVIDIA driver here)"; fi
} | tee -a "$SUMMARY"

# --- preflight: CUDA, the imports, one CUDA step; nothing else runs without it ---------------------
stage preflight-import "$PY" bench/gpu_check.py preflight --gpu-json "$WORK/gpu.json"; logged preflight-import
line=$(grep -E '^(PASS|FAIL) ' "$WORK/preflight-import.log" | tail -1)
[ -n "$line" ] || line="FAIL preflight: exit $(rc_of preflight-import): $(tail -1 "$WORK/preflight-import.log")"
if [[ $line == PASS* ]]; then
  stage preflight-step "$PY" bench/step.py --impl ablate --device cuda --precision bf16 --warmup 0 --iters 1 \
    --batch 8 --peak-size 1024; logged preflight-step
  grep '^{' "$WORK/preflight-step.log" >>"$OUT/step.jsonl"
  if [ "$(rc_of preflight-step)" != 0 ]; then
    line="FAIL preflight: one CUDA training step (bench/step.py) exit $(rc_of preflight-step): $(tail -1 "$WORK/preflight-step.log")"
  fi
fi
say "$line"
if [[ $line != PASS* ]]; then
  FAILED=1
  for t in "${TARGETS[@]}"; do want "$t" && { say "FAIL $t: not run (preflight failed)"; FAILED=$((FAILED + 1)); }; done
  rm -rf "$WORK"; WORK="(removed)"
  finish
fi
HAVE_LIGHTLY=$(grep -q 'lightly missing' "$WORK/preflight-import.log" && echo 0 || echo 1)

# --- step: bf16, ablate vs lightly on identical work -------------------------------------------
STEP=(--device cuda --precision bf16 --arch vit_small_patch16_224 --patch-size 16 --img 224 --local-img 96
      --locals 8 --batch 64 --out-dim 65536 --warmup 3 --iters 10)
if want step; then
  stage step-ablate "$PY" bench/step.py --impl ablate "${STEP[@]}"; logged step-ablate
  if [ "$HAVE_LIGHTLY" = 1 ]; then stage step-lightly "$PY" bench/step.py --impl lightly "${STEP[@]}"
  else echo "lightly is not importable (carry its wheel)" >"$WORK/step-lightly.log"; echo 1 >"$WORK/step-lightly.rc"; fi
  logged step-lightly
  grep -h '^{' "$WORK/step-ablate.log" "$WORK/step-lightly.log" >>"$OUT/step.jsonl"
  verdict step-ablate,step-lightly step "$WORK/step-ablate.log" "$WORK/step-lightly.log" --target 1.25
fi

# --- resume on CUDA, and the oom sweep, at the same time (neither is a timing) --------------------
cat >"$WORK/oom.yaml" <<'EOF'
name: oom
trainer: {arch: vit_tiny_patch16_224, patch_size: 4, batch_size: 256, local_crops_number: 2, epochs: 1,
          eval_every: 0}
space:
  global_crops_size: {type: choice, values: [32, 224]}   # 224 px at patch 4: 3,137 tokens, far over 0.25 of the card
search: {algorithm: grid}
resources: {cpu: 2, gpu: 0.25}
stop: {collapse: false}
EOF
LIMIT[resume]=${LIMIT[resume+oom]} LIMIT[oom]=${LIMIT[resume+oom]}
want resume && stage resume "$PY" bench/gpu_check.py resume --work "$WORK/resume" --out "$OUT/resume.json" &
want oom && stage oom "${ABLATE[@]}" run "$WORK/oom.yaml" --storage "$WORK/runs" &
wait
if want resume; then
  logged resume
  for k in A B C; do { echo "---- resume run $k (ablate train)"; tail -40 "$WORK/resume/$k.log" 2>/dev/null; } >>"$LOG"; done
  line=$(grep -E '^(PASS|FAIL) ' "$WORK/resume.log" | tail -1)
  [ -n "$line" ] || line="FAIL resume: no verdict: $(tail -1 "$WORK/resume.log")"
  count "$line$(note resume)"
fi
if want oom; then
  logged oom; ray_log oom
  verdict oom oom "$WORK/runs/oom" --exit-code "$(rc_of oom)"
fi

# --- end to end on CIFAR-sized in-memory data, augmented on the GPU ------------------------------
if want e2e; then
  stage e2e "$PY" bench/throughput.py --device cuda --cifar-like 50000 --epochs 1 --threads 4 \
    --set arch=vit_tiny_patch16_224 --set patch_size=4 --set batch_size=256 --set local_crops_number=6 \
    --set precision=bf16 --set out_dim=4096; logged e2e
  grep '^{' "$WORK/e2e.log" | tail -1 >"$OUT/e2e.json"
  stage e2e-step "$PY" bench/step.py --impl ablate --device cuda --precision bf16 --arch vit_tiny_patch16_224 \
    --patch-size 4 --img 32 --local-img 16 --locals 6 --batch 256 --out-dim 4096 --head-hidden 512 \
    --bottleneck 128 --warmup 3 --iters 20; logged e2e-step
  grep -h '^{' "$WORK/e2e-step.log" >>"$OUT/step.jsonl"
  verdict e2e,e2e-step e2e "$WORK/e2e.log" "$WORK/e2e-step.log" --target 0.05
fi

# --- four trials at gpu 0.25 against one trial alone --------------------------------------------
# Many small steps (ViT-Tiny/4 at 32 px, batch 64, 6 epochs of 4,311 images): one trial leaves the
# GPU mostly idle, which is what packing trials is for.
for share in 1 0.25; do
  want packed || break
  n=$([ "$share" = 1 ] && echo 1 || echo 4)
  temps=$([ "$n" = 1 ] && echo "[0.04]" || echo "[0.03, 0.04, 0.05, 0.06]")
  cat >"$WORK/packed-$n.yaml" <<EOF
name: packed-$n
trainer: {arch: vit_tiny_patch16_224, patch_size: 4, batch_size: 64, local_crops_number: 6, out_dim: 4096,
          epochs: 6, eval_every: 0}
space:
  teacher_temp: {type: choice, values: $temps}
search: {algorithm: grid}
resources: {cpu: 2, gpu: $share}
stop: {collapse: false}
EOF
  stage "packed-$n" "${ABLATE[@]}" run "$WORK/packed-$n.yaml" --storage "$WORK/runs"; logged "packed-$n"
  ray_log "packed-$n"
done
PACKED=("$WORK/runs/packed-1" "$WORK/runs/packed-4" --gpu-json "$WORK/gpu.json" --share 0.25)
if want packed; then
  verdict packed-1,packed-4 packed "${PACKED[@]}" --target 2.5 --out "$OUT/packed.json"
  verdict packed-1,packed-4 memory "${PACKED[@]}"
fi

# --- the main job on the GPU, timed end to end ---------------------------------------------------
if want temps; then
  start=$SECONDS
  stage temps "${ABLATE[@]}" run search_spaces/temps.yaml --set resources.gpu="$TEMPS_GPU" --set resources.cpu=2 \
    --storage "$WORK/runs"
  seconds=$((SECONDS - start)); logged temps; ray_log temps
  if [ "$(rc_of temps)" != 0 ]; then
    # a sweep cut short still has its records: its report gives the trials that finished
    [ -f "$WORK/runs/temps/report/trials.parquet" ] || timeout 15 "${ABLATE[@]}" report "$WORK/runs/temps" >>"$LOG" 2>&1
  fi
  cp "$WORK/runs/temps/report/report.md" "$OUT/temps_report.md" 2>/dev/null || true
  verdict temps temps "$WORK/runs/temps" --exit-code "$(rc_of temps)" --seconds "$seconds" \
    --csv "$OUT/temps_trials.csv" --resources "gpu $TEMPS_GPU, cpu 2 per trial"
fi

# --- data-parallel trials: 1 vs N GPUs for one run (figures only; needs >= 2 GPUs) ----------------
NGPU=$(nvidia-smi --list-gpus 2>/dev/null | wc -l)
if ! want ddp; then :
elif [ "$NGPU" -ge 2 ]; then
  for n in 1 "$NGPU"; do
    LIMIT[ddp-$n]=60
    stage "ddp-$n" "${ABLATE[@]}" train --workers "$n" --set device=auto --set arch=vit_tiny_patch16_224 \
      --set patch_size=4 --set epochs=2 --set eval_every=0 --set batch_size=$((256 / n)) --no-progress \
      --out "$WORK/ddp-$n"; logged "ddp-$n"
    say "INFO ddp $n worker(s): exit $(rc_of "ddp-$n"), $(tail -1 "$WORK/ddp-$n/metrics.jsonl" 2>/dev/null |
      "$PY" -c "import json,sys; print(json.load(sys.stdin)['images_per_s'], 'img/s')" 2>/dev/null || echo 'no figure')"
  done
else say "INFO ddp: skipped, $NGPU GPU (needs >= 2)"; fi
finish

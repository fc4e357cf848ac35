#!/usr/bin/env bash
# The GPU checks of ablate, as one script for a machine with one CUDA GPU: about 6 minutes, at most 8.
# Run from the repository root (dependencies installed, lightly optional); figures go to $OUT
# (default ./gpu-check, emptied first, so a rerun starts clean). One PASS/FAIL line per check;
# the exit status is the number of failed checks (a stage that crashes or times out fails).
#   1. step throughput in bf16, ablate vs lightly on identical work (bench/step.py);
#   2. `ablate train` on CUDA, then a checkpoint reloaded on CUDA and trained on (defect 1: resume);
#   3. end-to-end img/s and data-wait share on CIFAR-sized in-memory data, augmented on the GPU;
#   4. four trials at gpu 0.25 overlapping on the GPU, aggregate img/s vs one trial, peak memory.
set -euo pipefail
OUT=${OUT:-gpu-check}
rm -rf "$OUT" && mkdir -p "$OUT"
export PYTHONPATH=${PYTHONPATH:-$PWD}
FAILED=0
pass() { echo "PASS $*" | tee -a "$OUT/summary.txt"; }
fail() { echo "FAIL $*" | tee -a "$OUT/summary.txt"; FAILED=$((FAILED + 1)); }
# stage NAME SECONDS CMD...: run with a time limit, output to $OUT/NAME.log; 0 if it succeeded.
stage() {
  local name=$1 limit=$2; shift 2
  local rc=0 start=$SECONDS
  echo "== $name (limit ${limit}s)"
  timeout --kill-after=10 "$limit" "$@" >"$OUT/$name.log" 2>&1 || rc=$?
  echo "   $name: exit $rc after $((SECONDS - start))s$([ $rc = 124 ] && echo ' (timed out)')"
  [ $rc = 0 ] && return 0
  tail -5 "$OUT/$name.log" | sed 's/^/   /'
  return 1
}
# json FILE EXPR: evaluate a Python expression over the last JSON line of FILE (as `r`).
json() { python -c "import json,sys; r=json.loads(open(sys.argv[1]).read().strip().splitlines()[-1]); print($2)" "$1"; }

# --- preflight: fail fast, before any long stage ---------------------------------------------
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
python - <<'EOF' | tee -a "$OUT/gpu.txt"
import torch, timm, ray, trainables.dino.trainer, ablate.cli  # noqa: F401
assert torch.cuda.is_available(), "torch sees no CUDA device"
print(f"torch {torch.__version__}, {torch.cuda.get_device_name(0)}, capability {torch.cuda.get_device_capability(0)}")
EOF
python -c "import lightly" 2>/dev/null && HAVE_LIGHTLY=1 || HAVE_LIGHTLY=0

# --- 1. the step in bf16: ablate >= lightly on identical work (ViT-S/16, 2x224 + 8x96, K=65536) ---
STEP=(--device cuda --precision bf16 --arch vit_small_patch16_224 --patch-size 16 --img 224 --local-img 96
      --locals 8 --batch 64 --out-dim 65536 --warmup 3 --iters 10)
for impl in ablate lightly; do
  [ "$impl" = lightly ] && [ "$HAVE_LIGHTLY" = 0 ] && { fail "step: lightly not installed (pip install -e .[bench])"; continue; }
  stage "step-$impl" 120 python bench/step.py --impl "$impl" "${STEP[@]}" || fail "step-$impl crashed"
done
if [ -s "$OUT/step-ablate.log" ] && [ -s "$OUT/step-lightly.log" ] && \
   grep -q img_per_s "$OUT/step-ablate.log" && grep -q img_per_s "$OUT/step-lightly.log"; then
  a=$(json "$OUT/step-ablate.log" 'r["img_per_s"]'); l=$(json "$OUT/step-lightly.log" 'r["img_per_s"]')
  mfu=$(json "$OUT/step-ablate.log" 'r["mfu"]')
  if python -c "import sys; sys.exit(not $a >= $l)"; then pass "step bf16: ablate $a img/s >= lightly $l (mfu $mfu)"
  else fail "step bf16: ablate $a img/s < lightly $l"; fi
fi

# --- 2. ablate train on CUDA, and resume from its checkpoint on CUDA (defect 1) -------------------
TRAIN=(--set device=cuda --set arch=vit_tiny_patch16_224 --set patch_size=4 --set epochs=2 --set batch_size=128)
if stage train 120 ablate train "${TRAIN[@]}" --no-progress --out "$OUT/train"; then
  if stage resume 90 python - "$OUT/train" <<'EOF'
import sys, torch, yaml
from pathlib import Path
from trainables.config import DINOConfig
from trainables.dino.trainer import DINOTrainer
run = Path(sys.argv[1])
cfg = DINOConfig(**{**yaml.safe_load((run / "config.yaml").read_text()), "epochs": 3})
trainer = DINOTrainer(cfg)
trainer.load_checkpoint(run / "checkpoint.pt")   # crashed before: RNG states mapped to CUDA
rng = torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=False)["rng"]["torch"]
assert torch.equal(torch.get_rng_state(), rng), "CPU RNG state not restored"
metrics = [m for m in trainer.run()]
assert [m["epoch"] for m in metrics] == [3] and metrics[-1]["loss"] == metrics[-1]["loss"], metrics
print({"resumed_epoch": 3, "loss": metrics[-1]["loss"], "gpu_mem_peak_gb": metrics[-1].get("gpu_mem_peak_gb")})
EOF
  then pass "train on CUDA + resume from its checkpoint: $(tail -1 "$OUT/resume.log")"
  else fail "resume on CUDA"; fi
else fail "ablate train on CUDA"; fi

# --- 3. end to end on CIFAR-sized in-memory data, GPU augmentation: data wait < 5 % -------------
E2E=(--device cuda --cifar-like 50000 --epochs 1 --threads 4 --set arch=vit_tiny_patch16_224 --set patch_size=4
     --set batch_size=256 --set local_crops_number=6 --set precision=bf16 --set out_dim=4096)
if stage e2e 150 python bench/throughput.py "${E2E[@]}"; then
  img=$(json "$OUT/e2e.log" 'r["img_per_s"]'); wait=$(json "$OUT/e2e.log" 'r["data_wait_share"][-1]')
  if stage e2e-step 90 python bench/step.py --impl ablate --device cuda --precision bf16 --arch vit_tiny_patch16_224 \
       --patch-size 4 --img 32 --local-img 16 --locals 6 --batch 256 --out-dim 4096 --head-hidden 512 \
       --bottleneck 128 --warmup 3 --iters 20; then
    step=$(json "$OUT/e2e-step.log" 'r["img_per_s"]')
    share=$(python -c "print(round(max(0.0, 1 - $img / $step), 3))")
    if python -c "import sys; sys.exit(not ($wait < 0.05 and $share < 0.05))"; then
      pass "e2e in-memory GPU augmentation: $img img/s, host data wait $wait, vs step-only $step img/s: data share $share < 0.05"
    else fail "e2e: $img img/s, host data wait $wait, step-only $step img/s: data share $share (target < 0.05)"; fi
  else fail "e2e step-only reference"; fi
else fail "e2e throughput"; fi

# --- 4. four packed trials at gpu 0.25 vs one trial per GPU ----------------------------------------
if stage sweep 240 python bench/gpu_sweep.py --arch vit_tiny_patch16_224 --batch 256 --epochs 3 --trials 4 \
     --shares 1,0.25 --cpu 2 --workers 0; then
  cp "$OUT/sweep.log" "$OUT/gpu_sweep.jsonl"
  one=$(grep '"trials_per_gpu": 1,' "$OUT/sweep.log" | tail -1); four=$(grep '"trials_per_gpu": 4,' "$OUT/sweep.log" | tail -1)
  read -r ratio overlap mem <<<"$(python -c "import json,sys; a,b=json.loads(sys.argv[1]),json.loads(sys.argv[2]); \
print(round(b['train_img_per_s']/a['train_img_per_s'],2), b['max_concurrent'], b['gpu_mem_peak_gb_per_trial'])" "$one" "$four")"
  if python -c "import sys; sys.exit(not ($overlap >= 4 and $ratio >= 2.5))"; then
    pass "4 trials at gpu 0.25: $overlap overlapping, aggregate ${ratio}x one trial, peak ${mem} GB per trial"
  else fail "4 trials at gpu 0.25: $overlap overlapping, aggregate ${ratio}x one trial (target 2.5x), peak ${mem} GB"; fi
else fail "packed sweep"; fi

# --- 5. data-parallel trials (issue 10): 1 vs N GPUs for one DINO run, only with >= 2 GPUs ----------
# Same global batch (256): 1 worker x 256 against N workers x 256/N (Ray Train, NCCL).
NGPU=$(nvidia-smi --list-gpus | wc -l)
if [ "$NGPU" -ge 2 ]; then
  for n in 1 "$NGPU"; do
    if stage "ddp-$n" 240 ablate train --workers "$n" --set device=auto --set arch=vit_tiny_patch16_224 \
         --set patch_size=4 --set epochs=2 --set eval_every=0 --set batch_size=$((256 / n)) --no-progress \
         --out "$OUT/ddp-$n"; then
      pass "ddp $n worker(s): $(tail -1 "$OUT/ddp-$n/metrics.jsonl" | python -c "import json,sys; print(json.load(sys.stdin)['images_per_s'])") img/s"
    else fail "ddp $n worker(s)"; fi
  done
else echo "== ddp scaling skipped: $NGPU GPU (needs >= 2)"; fi

echo "== $FAILED check(s) failed; figures in $OUT/ (summary.txt, *.log)"
exit "$FAILED"

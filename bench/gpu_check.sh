#!/usr/bin/env bash
# The GPU checks of ablate, as one short script for a machine with a CUDA GPU (about 5 minutes).
# Run from the repository root after `pip install -e ".[test]"`; figures go to $OUT (default ./gpu-check).
#   1. the training step on CUDA in bf16 and fp16 (GradScaler), ablate vs lightly, with MFU;
#   2. `ablate train` end to end on CUDA with fp16 and bf16 (mixed precision, kNN on GPU);
#   3. aggregate sweep throughput at 1, 2 and 4 trials per GPU (fractional GPUs).
set -uo pipefail
OUT=${OUT:-gpu-check}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total --format=csv | tee "$OUT/gpu.txt"
for impl in ablate lightly; do
  for prec in bf16 fp16; do
    python bench/step.py --impl $impl --device cuda --precision $prec --arch vit_small_patch16_224 \
      --patch-size 16 --img 224 --local-img 96 --locals 8 --batch 64 --out-dim 65536 \
      --warmup 3 --iters 10 | tee -a "$OUT/step.jsonl"
  done
done
for prec in fp16 bf16; do
  ablate train --set device=cuda --set precision=$prec --set arch=vit_tiny_patch16_224 --set patch_size=4 \
    --set epochs=2 --set batch_size=256 --set lr=5e-4 --no-progress --out "$OUT/train-$prec" \
    2>&1 | tail -4 | tee "$OUT/train-$prec.txt"
done
python bench/gpu_sweep.py --arch vit_tiny_patch16_224 --batch 256 --epochs 2 | tee "$OUT/gpu_sweep.jsonl"

# --- PROPOSAL (issue 10, data-parallel trials): 1 vs N GPU scaling of one DINO run ---------------
# A separate block on purpose: runs only on a machine with >= 2 GPUs. Same global batch (256),
# 1 worker x 256 against N workers x 256/N (Ray Train, NCCL); compare images_per_s of epoch 2.
NGPU=$(nvidia-smi --list-gpus | wc -l)
if [ "$NGPU" -ge 2 ]; then
  for n in 1 "$NGPU"; do
    ablate train --workers "$n" --set device=auto --set arch=vit_tiny_patch16_224 --set patch_size=4 \
      --set epochs=2 --set eval_every=0 --set batch_size=$((256 / n)) --set lr=5e-4 --no-progress \
      --out "$OUT/ddp-$n" 2>&1 | tail -2 | tee "$OUT/ddp-$n.txt"
    tail -1 "$OUT/ddp-$n/metrics.jsonl" | python -c "import json,sys; m=json.load(sys.stdin); print(json.dumps({'workers': $n, 'images_per_s': m['images_per_s']}))" | tee -a "$OUT/ddp_scaling.jsonl"
  done
fi

#!/usr/bin/env bash
# The whole GPU pass as one command, for a session that has a CUDA GPU:
#
#   bash scripts/gpu_pass.sh            # or: make gpu-pass
#
# It is resumable: each step leaves a stamp in runs/gpu-pass/ and is skipped when
# run again, and the conv-VAE training resumes from its checkpoint. Steps:
#   1. the fair benchmark on the GPU           -> vae_course/results/bench_gpu.json
#   2. the same, capped as a T4 would be        -> vae_course/results/bench_gpu_t4cap.json
#      (batch 128, 15 GiB memory cap; an H200 is still far faster than a T4,
#       so this caps memory, not speed: label it an upper bound for a T4)
#   3. the conv VAE long run on the GPU, the recipe of the CPU run in runs/conv-long (every
#      setting fixed before training: 200 epochs, cosine from 1e-3, the last 10,000 training
#      images held out for validation and the test set unseen until the end), then the IWAE NLL
#      (K = 5000 on the whole test set) of best.pt, the epoch with the lowest validation loss
#                                              -> runs/gpu-conv/, runs/gpu-pass/conv_eval.json
#   4. notebook 6 executed on the GPU (its record names the GPU)
# Budget: about 10 minutes on an H200; each step prints its own time.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
STAMPS=runs/gpu-pass
mkdir -p "$STAMPS"

"$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" || {
  echo "gpu_pass: no CUDA GPU visible to torch; nothing to do." >&2; exit 1; }
"$PY" -c "import torch; print('GPU:', torch.cuda.get_device_name(0))"

step() {  # step NAME COMMAND...: run once, leave a stamp
  local name=$1; shift
  if [ -f "$STAMPS/$name.done" ]; then echo "== $name: done before, skipped"; return; fi
  echo "== $name"; local t0=$SECONDS
  "$@"
  echo "== $name took $((SECONDS - t0)) s"; touch "$STAMPS/$name.done"
}

step bench "$PY" -m vae_course bench --device cuda --repeats 3 --json vae_course/results/bench_gpu.json
step bench_t4cap env PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True \
  VAE_COURSE_GPU_MEMORY_FRACTION=0.107 \
  "$PY" -m vae_course bench --device cuda --repeats 3 --json vae_course/results/bench_gpu_t4cap.json

conv_train() {
  local args=(--model conv-vae --binarize dynamic --latent-dim 50 --epochs 200 --lr 1e-3
              --lr-schedule cosine --schedule-epochs 200 --batch-size 128 --val-size 10000 --keep-test-unseen
              --seed 1 --device cuda --no-progress)
  if [ -f runs/gpu-conv/checkpoint.pt ]; then
    "$PY" -m vae_course train --out runs/gpu-conv --resume --epochs 200 --device cuda --no-progress
  else
    "$PY" -m vae_course train --out runs/gpu-conv "${args[@]}"
  fi
}
step conv_train conv_train
step conv_eval bash -c "'$PY' -m vae_course evaluate --checkpoint runs/gpu-conv/best.pt \
  --iw-samples 5000 --device cuda --allow-long --json > '$STAMPS/conv_eval.json'"
step notebook6 "$PY" scripts/nbtools.py execute --force notebooks/06_gpu_vae.ipynb
echo "GPU pass complete. Commit vae_course/results/bench_gpu*.json, notebooks/06_gpu_vae.ipynb, and record the"
echo "conv run with: $PY scripts/record_long_run.py (see its --help) from $STAMPS/conv_eval.json"

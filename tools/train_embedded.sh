#!/usr/bin/env bash
# The embedded model's recipe (rd_vla_ros/weights/embedded), end to end on a 2-core CPU:
#   1. scripted ALOHA demonstrations on training seeds (0-499 and 500-999; evaluation uses 1000+),
#      with DART-style disturbances, in two processes;
#   2. `rd-vla train` on them (conv keypoint encoder, top camera cropped to the table, blurred joints).
# Usage: tools/train_embedded.sh [OUT]      (default build/embedded; OUT/train/checkpoint is the model)
# Environment: EPISODES (per task and process, default 150), STEPS (default 15000).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-build/embedded}
episodes=${EPISODES:-150}
steps=${STEPS:-15000}
rd=.venv/bin/rd-vla
export MUJOCO_GL=${MUJOCO_GL:-osmesa} PYOPENGL_PLATFORM=${PYOPENGL_PLATFORM:-osmesa}

mkdir -p "$out"
start=$(date +%s)
for first in 0 500; do
  $rd sim-demos "$out/demos" --tasks transfer_cube insertion --episodes "$episodes" --seed "$first" \
    --disturbance 0.02 > "$out/demos_$first.log" 2>&1 &
done
wait
demos_s=$(( $(date +%s) - start ))
echo "recipe: $(ls "$out/demos" | wc -l) demonstrations in $demos_s s"

start=$(date +%s)
$rd train "$out"/demos/* --out "$out/train" --preset conv --cameras top \
  --crop top=0.125,0.1667,0.875,0.8333 --steps "$steps" --batch-size 32 --lr 5e-4 --warmup-steps 300 \
  --proprio-noise 0.025 --save-every 500 --log-every 50 --threads 2 --quiet
echo "recipe: trained $steps steps in $(( $(date +%s) - start )) s (demonstrations: $demos_s s)"

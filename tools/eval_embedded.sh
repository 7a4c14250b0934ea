#!/usr/bin/env bash
# Closed-loop evaluation of a checkpoint on held-out seeds (1000+; training used 0-999), then the merged
# table and plots (docs/results). Two processes at a time (2 cores):
#   A: TransferCube, fixed depths 1..32 at a constant execution horizon (fixed:h=4), so depth is not
#      confounded with how often the policy re-plans; then the deployed setting (adaptive, delta 1e-3,
#      the node's linear horizon schedule); Insertion, the deployed halting at constant horizons 4 and 8
#      (how much the execution horizon itself matters), and fixed depths 2, 4, 8, 16 at horizon 8;
#   B: TransferCube, adaptive thresholds at the same constant horizon; Insertion, the deployed setting
#      and fixed depths 1, 4, 16 at the constant horizon; then the deployed TransferCube setting through
#      rd_vla_node and the sim bridge over DDS.
# Usage: tools/eval_embedded.sh [CHECKPOINT] [OUT]   (defaults: embedded, build/sim_eval)
# Environment: EPISODES (default 50), ROS_EPISODES (default 20), RESULTS (default docs/results).
set -euo pipefail
cd "$(dirname "$0")/.."
ckpt=${1:-embedded}
out=${2:-build/sim_eval}
episodes=${EPISODES:-50}
ros_episodes=${ROS_EPISODES:-20}
results=${RESULTS:-docs/results}
rd=.venv/bin/rd-vla
export MUJOCO_GL=${MUJOCO_GL:-osmesa} PYOPENGL_PLATFORM=${PYOPENGL_PLATFORM:-osmesa}
mkdir -p "$out"
eval_() { # NAME ARGS...: one sim-eval run into OUT/NAME.json (log beside it)
  local name=$1
  shift
  $rd sim-eval --checkpoint "$ckpt" --episodes "$episodes" --out "$out/$name.json" "$@" > "$out/$name.log" 2>&1
}

start=$(date +%s)
(
  eval_ tc_depths --tasks transfer_cube --depths 1,2,4,8,12,16,32 --thresholds "" --horizon fixed:h=4
  eval_ tc_deployed --tasks transfer_cube --depths "" --thresholds 1e-3
  eval_ ins_h4 --tasks insertion --depths "" --thresholds 1e-3 --horizon fixed:h=4
  eval_ ins_h8 --tasks insertion --depths "" --thresholds 1e-3 --horizon fixed:h=8
  eval_ ins_depths_h8 --tasks insertion --depths 2,4,8,16 --thresholds "" --horizon fixed:h=8
) &
(
  eval_ tc_thresholds --tasks transfer_cube --depths "" --thresholds 1e-2,3e-3,1e-3,3e-4 --horizon fixed:h=4
  eval_ ins_deployed --tasks insertion --depths "" --thresholds 1e-3
  eval_ ins_depths --tasks insertion --depths 1,4,16 --thresholds "" --horizon fixed:h=4
  $rd sim-eval --checkpoint "$ckpt" --ros --tasks transfer_cube --episodes "$ros_episodes" \
    --out "$out/tc_ros.json" > "$out/tc_ros.log" 2>&1
) &
wait
echo "eval: $(( $(date +%s) - start )) s"
mkdir -p "$results"
$rd sim-eval --merge "$out"/tc_depths.json "$out"/tc_thresholds.json "$out"/tc_deployed.json "$out"/tc_ros.json \
  "$out"/ins_depths.json "$out"/ins_h4.json "$out"/ins_h8.json "$out"/ins_depths_h8.json "$out"/ins_deployed.json \
  --out "$results/sim_eval.json" --plots "$results"

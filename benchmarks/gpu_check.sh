#!/usr/bin/env bash
# The GPU check (at most 8 minutes): run on a lent GPU machine from the repository root.
#   bash benchmarks/gpu_check.sh            (writes its log and figures under ${OUT:-gpu-check}/)
# 1. the tests marked gpu; 2. the default recipe trained on the GPU (seconds, MFU-free: the
# figures are wall time and samples/s) and evaluated; 3. the throughput benchmarks on the GPU.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-gpu-check}"
mkdir -p "$OUT"
export HF_HUB_OFFLINE=1
PY=.venv/bin/python
if [ ! -x "$PY" ]; then
  python3 -m venv .venv && .venv/bin/pip install -q -e '.[dev,towers]' >"$OUT/install.log" 2>&1
fi
nvidia-smi --query-gpu=name,memory.total --format=csv | tee "$OUT/gpu.txt"
$PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name())" | tee -a "$OUT/gpu.txt"
step() { echo "== $1 ($(date +%T))" | tee -a "$OUT/summary.txt"; }
step "gpu tests"
timeout 150 $PY -m pytest -p no:warnings -q -m gpu tests 2>&1 | tail -15 | tee -a "$OUT/summary.txt"
step "world"
timeout 120 $PY -m trimodal.cli.main world --out "$OUT/world" >"$OUT/world.log" 2>&1
step "default recipe on the GPU"
/usr/bin/time -f "train wall %e s, peak RSS %M KB" timeout 200 $PY -m trimodal.cli.main train \
  --config configs/default.yaml --world "$OUT/world" --out "$OUT/run" --device cuda --quiet \
  >"$OUT/train.json" 2>>"$OUT/summary.txt"
$PY - "$OUT" <<'PYEOF' | tee -a "$OUT/summary.txt"
import json, sys
summary = json.loads(open(f"{sys.argv[1]}/train.json").read())
print("device", summary["device"], "| precision", summary["precision"])
print("train_seconds %.1f (target <= 60)" % summary["train_seconds"])
for stage in summary["history"]:
    print("  %-10s %5d steps %7.1f s" % (stage["stage"], stage["steps"], stage["seconds"]))
PYEOF
step "evaluation"
timeout 90 $PY -m trimodal.cli.main eval --checkpoint "$OUT/run" --world "$OUT/world" \
  --device cuda --no-robustness --examples 0 --json >"$OUT/eval.json" 2>"$OUT/eval.log"
$PY -c "import json,sys; m=json.load(open('$OUT/eval.json')); print(json.dumps(m.get('summary', m), indent=1)[:1500])" | tee -a "$OUT/summary.txt"
step "generation benchmark (SmolLM2 on the GPU)"
timeout 60 $PY benchmarks/generate_throughput.py --smollm2 --batches 1 16 --repeats 3 --device cuda 2>&1 | tail -4 | tee -a "$OUT/summary.txt"
step "training benchmark on the GPU (MFU)"
timeout 60 $PY benchmarks/train_throughput.py --device cuda --repeats 3 2>&1 | grep -v "^\[transformers\]" | tee -a "$OUT/summary.txt"
step "done"

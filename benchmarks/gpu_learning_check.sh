#!/usr/bin/env bash
# Does the reference configuration (ResNet-50, stride-1 stem, 256 px, CLAHE, brain window) learn in a few minutes on a
# GPU? Writes demo data (32 / 8 / 8 volumes, all five kinds of bleed), trains each bundle for a fixed wall-clock
# budget through `python -m monai.bundle run` (upstream, then the volume classifier and segmenter from its weights),
# evaluates each on the held-out test split and writes the metrics to $OUT/learning_summary.json. Training is cut
# by `timeout`: the best checkpoint so far (models/model.pt, written at each validation) is what is evaluated.
# Schedule knobs are shortened (epoch_length, val_interval, warmup) and AMP is on (precision auto); the downstream
# learning rate is 1e-4 instead of the reference's 5e-6, which moves a BiLSTM too little in a minute.
# Usage (repository root, a CUDA machine with the package's dependencies):
#   UP_SECONDS=180 DOWN_SECONDS=75 bash benchmarks/gpu_learning_check.sh
set -uo pipefail
OUT=${OUT:-/tmp/gpu_learning}
WORK=${WORK:-$(mktemp -d)}
UP_SECONDS=${UP_SECONDS:-180}
DOWN_SECONDS=${DOWN_SECONDS:-75}
DATA_SIZE=${DATA_SIZE:-256}  # smoke test on a CPU: DATA_SIZE=64 EXTRA="--encoder resnet18 --stem_stride 2 --image_size 32"
EXTRA=${EXTRA:-}
UP_TRAIN=${UP_TRAIN:---epochs 60 --epoch_length 25 --val_interval 3 --warmup_epochs 2 --batch_size 8 --slices_per_volume 4 --precision auto --num_workers 12}
DOWN_TRAIN=${DOWN_TRAIN:---epochs 60 --epoch_length 8 --val_interval 2 --warmup_epochs 1 --learning_rate 1e-4 --precision auto --num_workers 12}
mkdir -p "$OUT"
export PYTHONPATH="$PWD/custom:${PYTHONPATH:-}" PYTHONUNBUFFERED=1
start=$SECONDS
python3 -c "from smartnet.data import write_demo_dataset as w; w('$WORK/data', 32, 8, 8, size=$DATA_SIZE, seed=0, verbose=False)"
echo "data: $((SECONDS - start)) s"

run() {  # run <bundle> <log name> <seconds> <config files...> -- <overrides...>
    local bundle=$1 log=$2 seconds=$3; shift 3
    local files=()
    while [ "$1" != "--" ]; do files+=("'bundles/$bundle/configs/$1.json'"); shift; done; shift
    local list; list="[$(IFS=,; echo "${files[*]}")]"
    local began=$SECONDS
    timeout "$seconds" python3 -m monai.bundle run --config_file "$list" \
        --meta_file "bundles/$bundle/configs/metadata.json" --logging_file "bundles/$bundle/configs/logging.conf" \
        --bundle_root "$WORK/$bundle" --dataset_dir "$WORK/data" "$@" $EXTRA > "$OUT/$log.log" 2>&1
    echo "$log: exit $? after $((SECONDS - began)) s"
}

run smartnet_upstream upstream_train "$UP_SECONDS" train -- $UP_TRAIN
run smartnet_upstream upstream_eval 300 train evaluate -- --num_workers 8
for b in smartnet_down_cls smartnet_down_seg; do
    run $b ${b}_train "$DOWN_SECONDS" train -- $DOWN_TRAIN --chunk_size 32
    run $b ${b}_eval 300 train evaluate -- --chunk_size 32
done
python3 - "$WORK" "$OUT" <<'EOF'
import json, sys
from pathlib import Path
work, out = Path(sys.argv[1]), Path(sys.argv[2])
summary = {}
for bundle in ("smartnet_upstream", "smartnet_down_cls", "smartnet_down_seg"):
    path = work / bundle / "eval" / "evaluation" / "metrics.json"
    if path.is_file():
        metrics = json.loads(path.read_text())["metrics"]
        summary[bundle] = {k: v for k, v in metrics.items() if isinstance(v, (int, float, str))}
    else:
        summary[bundle] = "no evaluation"
(out / "learning_summary.json").write_text(json.dumps(summary, indent=4) + "\n")
print(json.dumps(summary, indent=4))
EOF
grep -h "Metrics --\|Epoch\[[0-9]*\] Complete" "$OUT"/*_train.log | sed 's/^[0-9-]* [0-9:,]* - //' | tail -60 > "$OUT/train_tail.txt"

#!/usr/bin/env bash
# GPU check of the three bundles at the reference configuration (ResNet-50, stride-1 stem, 256 px, fp32):
# a short train -> evaluate -> inference of each bundle through `python -m monai.bundle run`, then the downstream
# multi-GPU configs under torchrun (NCCL, one process per visible GPU), then the AMP / channels_last / compile switches. Logs go to $OUT (default /tmp/gpu_check).
# Usage (repository root, a CUDA machine with the package's dependencies): bash benchmarks/gpu_bundle_check.sh
set -euo pipefail
OUT=${OUT:-/tmp/gpu_check}
WORK=${WORK:-$(mktemp -d)}
mkdir -p "$OUT"
export PYTHONPATH="$PWD/custom:${PYTHONPATH:-}" PYTHONUNBUFFERED=1
NGPU=$(python3 -c "import torch; print(torch.cuda.device_count())")
python3 -c "import torch, monai; print('torch', torch.__version__, 'monai', monai.__version__, torch.cuda.get_device_name(0))"
python3 -c "from smartnet.data import write_demo_dataset as w; w('$WORK/data', 8, 2, 2, size=256, depth=32, seed=0, verbose=False)"

run() {  # run <bundle> <log name> <config files...> -- <overrides...>
    local bundle=$1 log=$2; shift 2
    local files=()
    while [ "$1" != "--" ]; do files+=("'bundles/$bundle/configs/$1.json'"); shift; done; shift
    local list; list="[$(IFS=,; echo "${files[*]}")]"
    local start=$SECONDS
    python3 -m monai.bundle run --config_file "$list" --meta_file "bundles/$bundle/configs/metadata.json" \
        --logging_file "bundles/$bundle/configs/logging.conf" --bundle_root "$WORK/$bundle" \
        --dataset_dir "$WORK/data" "$@" > "$OUT/$log.log" 2>&1
    echo "$log: ok in $((SECONDS - start)) s"
}

run smartnet_upstream upstream_train train -- --epochs 2 --val_interval 2 --batch_size 8 --slices_per_volume 8
run smartnet_upstream upstream_eval train evaluate --
run smartnet_upstream upstream_infer inference --
for b in smartnet_down_cls smartnet_down_seg; do
    run $b ${b}_train train -- --epochs 2 --val_interval 1 --chunk_size 32
    run $b ${b}_eval train evaluate -- --chunk_size 32
    run $b ${b}_infer inference -- --chunk_size 32
    start=$SECONDS
    torchrun --standalone --nnodes=1 --nproc_per_node="$NGPU" -m monai.bundle run \
        --config_file "['bundles/$b/configs/train.json','bundles/$b/configs/multi_gpu_train.json']" \
        --meta_file "bundles/$b/configs/metadata.json" --logging_file "bundles/$b/configs/logging.conf" \
        --bundle_root "$WORK/${b}_ddp" --dataset_dir "$WORK/data" --epochs 1 --val_interval 1 --chunk_size 32 \
        --pretrained_path "$WORK/smartnet_upstream/models/model.pt" > "$OUT/${b}_ddp_train.log" 2>&1
    echo "${b}_ddp_train ($NGPU GPU): ok in $((SECONDS - start)) s"
done
# the GPU speed switches: AMP training (bf16 where supported, else fp16 with a scaler) + channels_last + cuDNN
# autotuning, and inference with auto precision and torch.compile
run smartnet_upstream upstream_train_amp train -- --epochs 2 --val_interval 2 --batch_size 8 --slices_per_volume 8 \
    --precision auto --channels_last true --cudnn_benchmark true --ckpt_dir "$WORK/amp_models"
run smartnet_down_cls smartnet_down_cls_infer_fast inference -- --precision auto --compile true \
    --output_dir "$WORK/fast_infer"
grep -h "Epoch\[.\] Complete\|Metrics --\|loaded\|evaluation of" "$OUT"/*.log | sed 's/^[0-9-]* [0-9:,]* - //' > "$OUT/summary.txt"
cat "$OUT/summary.txt"

#!/usr/bin/env bash
# The NCCL path at world size 1 (forced with SAEC_COMM_FORCE=1, rendezvous over TCP on 127.0.0.1)
# matches the single-process run on the same GPU (issue 6: NCCL cannot put two ranks on one GPU,
# so one rank is what a one-GPU machine can check). Skipped without a GPU or without NCCL.
source "$(dirname "$0")/lib.sh"
require_cuda_device
cd "$WORK"
ARGS=(--device cuda --d-in 64 --syn-features 256 --latents 512 --k 8 --batch-size 512 --steps 60
      --log-every 20 --eval-tokens 4096 --dead-tokens 8192)
PORT=$(( 20000 + RANDOM % 20000 ))
for arch in topk relu; do
  "$SAEC" train "${ARGS[@]}" --arch $arch --out plain_$arch >/dev/null 2>plain_$arch.log \
    || { fail "$arch: plain GPU run failed"; cat plain_$arch.log >&2; continue; }
  SAEC_COMM_FORCE=1 RANK=0 WORLD_SIZE=1 LOCAL_RANK=0 MASTER_ADDR=127.0.0.1 SAEC_MASTER_PORT=$PORT \
    MASTER_PORT=$PORT SAEC_COMM_TIMEOUT=60 "$SAEC" train "${ARGS[@]}" --arch $arch \
    --out nccl_$arch >/dev/null 2>nccl_$arch.log; rc=$?
  if [ $rc -ne 0 ] && grep -q "without NCCL" nccl_$arch.log; then echo "built without NCCL: skipped"; exit 77; fi
  [ $rc -eq 0 ] || { fail "$arch: NCCL world of one failed"; cat nccl_$arch.log >&2; continue; }
  "$PYTHON" "$TESTS_DIR/st_tool.py" close plain_$arch/model.safetensors nccl_$arch/model.safetensors 1e-6 \
    >close_$arch.txt && pass "$arch: the NCCL path at world size 1 matches the single process" \
    || { fail "$arch: NCCL path differs"; cat close_$arch.txt >&2; }
  PORT=$((PORT + 2))
done
finish

#!/usr/bin/env bash
# The GPU check of issue 15 (benchmarks/gpu_check.py), on a machine with one CUDA GPU, from
# the repository root, in under 8 minutes. Where nothing can be downloaded, run
# `make gpu-wheels` beforehand where pip works and bring .whl/ along: the wheels are
# installed into /tmp/site first. Results: $OUT/gpu_check.json (OUT defaults to
# benchmarks/results). Extra arguments go to gpu_check.py (e.g. --quick, --skip speed).
set -uo pipefail
out=${OUT:-benchmarks/results}
if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --ignore-requires-python \
    --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
python3 -c "import torch, triton; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'triton', triton.__version__)"
timeout 450 python3 benchmarks/gpu_check.py --out "$out/gpu_check.json" "$@"

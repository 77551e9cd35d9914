#!/usr/bin/env bash
# The one GPU check: on a machine with an NVIDIA GPU and driver (H100 class), builds,
# runs the CUDA kernel tests (PTX compile and assemble, then every launch wrapper
# against the CPU reference), benchmarks the CPU paths beside them, and prints a table
# last. NVRTC comes from the CUDA toolkit if installed, else from NVIDIA's wheel.
# Meant to finish in well under 8 minutes.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-target/gpu-check}"
mkdir -p "$out"
log="$out/gpu-check.log"
: > "$log"
step() { echo "== $*" | tee -a "$log"; }

step "machine"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1 | tee -a "$log" || true

if ! ldconfig -p 2>/dev/null | grep -q libnvrtc.so.12; then
  tools="$PWD/target/cuda-tools"
  if [ ! -x "$tools/nvidia/cuda_nvcc/bin/ptxas" ]; then
    step "installing NVRTC and ptxas wheels"
    python3 -m pip install --quiet --disable-pip-version-check --target "$tools" \
      nvidia-cuda-nvrtc-cu12==12.9.86 nvidia-cuda-nvcc-cu12==12.9.86 2>&1 | tail -2 | tee -a "$log"
  fi
  export LD_LIBRARY_PATH="$tools/nvidia/cuda_nvrtc/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  export NAS_PTXAS="$tools/nvidia/cuda_nvcc/bin/ptxas"
fi

step "build"
cargo build --release -p nas-kernels -p nas-cli 2>&1 | tail -3 | tee -a "$log"

step "CUDA kernels: PTX for sm_80/sm_90 and the equivalence tests"
results=()
for t in cuda_ptx cuda_equivalence; do
  if cargo test --release -p nas-kernels --test "$t" -- --nocapture --test-threads 1 >>"$log" 2>&1; then
    results+=("$t: pass")
  else
    results+=("$t: FAIL (see $log)")
  fi
done
skipped=$(grep -c "skipped, no CUDA device" "$log" || true)

step "CPU benchmarks on this machine (the GPU ones come with the device tensor path)"
./target/release/nas bench --darts 2>&1 | tee -a "$log" | tail -14 > "$out/bench.txt"

torch_line="PyTorch: not installed here"
if python3 -c "import torch" 2>/dev/null; then
  torch_line=$(python3 - <<'PY' 2>&1
import torch, time
d = "cuda" if torch.cuda.is_available() else "cpu"
a = torch.randn(1024, 1024, device=d); b = torch.randn(1024, 1024, device=d)
for _ in range(3): a @ b
if d == "cuda": torch.cuda.synchronize()
t = time.perf_counter(); n = 50
for _ in range(n): a @ b
if d == "cuda": torch.cuda.synchronize()
s = (time.perf_counter() - t) / n
print(f"PyTorch {torch.__version__} on {d}: SGEMM 1024^3 {2*1024**3/s/1e9:.0f} GFLOP/s")
PY
)
fi

echo
echo "================ gpu-check summary ================"
printf '%s\n' "${results[@]}"
echo "equivalence tests skipped for want of a device: $skipped"
echo "$torch_line"
cat "$out/bench.txt"
echo "full log: $log"

#!/usr/bin/env bash
# Idempotent set-up: Debian packages (apt-get update once, install only what is missing) and the
# test-only Python venv (.venv: onnxruntime, onnx, numpy from PyPI). Safe to run again and again.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
cd "$here"

APT_PACKAGES=(
  build-essential cmake pkg-config ccache
  protobuf-compiler libprotobuf-dev libonnx-dev libonnx-testdata
  libyaml-cpp-dev libdnnl-dev libopenblas-dev
  libcli11-dev libspdlog-dev libfmt-dev nlohmann-json3-dev libstb-dev zlib1g-dev libdeflate-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  python3 python3-venv
  chromium  # tests/python/test_inspection.py renders inspection.html headless
)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Test-only Python packages (oracle: onnxruntime; model checks: onnx; numpy).
PY_PACKAGES=(numpy==2.4.6 sympy==1.14.0 onnx==1.23.2 onnxruntime==1.32.0)
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  /usr/bin/python3 -m venv .venv 2>/dev/null || python3 -m venv .venv
fi
# Pinned: the ONNX backend-test manifest and the parity figures depend on these exact versions.
if ! .venv/bin/python -c "import numpy, sympy, onnx, onnxruntime, sys; sys.exit(onnx.__version__ != '1.23.2' or onnxruntime.__version__ != '1.32.0')" 2>/dev/null; then
  echo "setup: installing ${PY_PACKAGES[*]} into .venv"
  .venv/bin/python -m pip install -q --disable-pip-version-check "${PY_PACKAGES[@]}"
fi
touch .venv/.setup-done

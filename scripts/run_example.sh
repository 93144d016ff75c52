#!/usr/bin/env bash
# `make run`: the main job on the bundled example (full_auto on the digits MobileNet), then where outputs went.
set -euo pipefail
build="${1:-build}"
cd "$(dirname "$0")/.."
out="experiments_outputs/digits_example"
rm -rf "$out"
"$build/onnxquant" --config examples/digits/user_config.yaml --output-dir "$out"
echo
echo "Outputs of the example are in $out:"
find "$out" -maxdepth 2 -type f | sort | sed 's/^/  /'

#!/usr/bin/env bash
# Builds and runs one libFuzzer target (issue 9) for a given time.
#   scripts/fuzz.sh TARGET SECONDS [extra libFuzzer flags]
#   TARGET: onnx_loader | config | npy | image | session
# Builds with clang into build-fuzz (-DOQ_FUZZ=ON: ASan + UBSan + coverage), seeds the corpus from testdata/
# (and tests/bad_inputs/), runs with a 2 GiB RSS limit and a 10 s per-input timeout (session: 60 s), and keeps
# crash inputs in build-fuzz/findings/TARGET/. The corpus grows in build-fuzz/corpus/TARGET/. Prints the
# libFuzzer summary.
set -euo pipefail
cd "$(dirname "$0")/.."
target=${1:?usage: scripts/fuzz.sh onnx_loader|config|npy|image|session SECONDS [libFuzzer flags]}
secs=${2:?usage: scripts/fuzz.sh TARGET SECONDS}
shift 2
case $target in onnx_loader|config|npy|image|session) ;; *) echo "unknown target $target" >&2; exit 2 ;; esac

if ! command -v clang++ >/dev/null || ! dpkg -s libclang-rt-14-dev >/dev/null 2>&1; then
  apt-get install -y clang libclang-rt-14-dev libomp-dev
fi
B=${OQ_FUZZ_BUILD:-build-fuzz}
CC=clang CXX=clang++ cmake -S . -B "$B" -DCMAKE_BUILD_TYPE=Debug -DOQ_FUZZ=ON -DOQ_BUILD_TESTS=OFF \
  -DOQ_BUILD_BENCH=OFF >/dev/null
cmake --build "$B" -j "${JOBS:-2}" --target "fuzz_$target"

corpus=$B/corpus/$target
findings=$B/findings/$target
mkdir -p "$corpus" "$findings"
seed() { for f in "$@"; do if [ -f "$f" ]; then cp -n "$f" "$corpus/"; fi; done; }
prefix() {  # npy/image targets read a selector byte first
  local byte=$1; shift
  for f in "$@"; do if [ -f "$f" ]; then printf "\\x$byte" | cat - "$f" >"$corpus/$(basename "$f").$byte"; fi; done
}
case $target in
  onnx_loader) seed testdata/*.onnx tests/bad_inputs/*.onnx ;;
  session)  # the test models, the loader's seeds, and the shared models of at most 1 MB
    seed testdata/*.onnx tests/bad_inputs/*.onnx fuzz/seeds/onnx_loader/*
    for f in ../shared/models/*.onnx; do
      if [ -f "$f" ] && [ "$(stat -c %s "$f")" -le 1048576 ]; then seed "$f"; fi
    done
    ;;
  config) seed examples/*/*.yaml tests/bad_inputs/*.yaml ;;
  npy) prefix 00 testdata/*.npy tests/bad_inputs/*.npy; prefix 01 testdata/*.npz tests/bad_inputs/*.npz ;;
  image)
    for f in fuzz/seeds/image/*; do prefix 00 "$f"; prefix 45 "$f"; prefix 7b "$f"; done
    for f in tests/bad_inputs/*; do
      case ${f,,} in *.png|*.jpg|*.jpeg|*.bmp|*.gif|*.ppm|*.pgm|*.tga) prefix 00 "$f" ;; esac
    done
    ;;
esac
[ "$target" != image ] && seed fuzz/seeds/"$target"/*

# session: 60 s per input (a model may validly declare work proportional to its sizes; see docs/reliability.md)
tmo=10; [ "$target" = session ] && tmo=60
"$B/fuzz/fuzz_$target" "$corpus" -max_total_time="$secs" -rss_limit_mb=2048 -malloc_limit_mb=2048 -timeout=$tmo \
  -artifact_prefix="$findings/" -print_final_stats=1 "$@" 2>&1 | tee "$B/fuzz_$target.log" | \
  grep -E '^(#[0-9]+ +(DONE|INITED)|stat::|==[0-9]+==ERROR|SUMMARY|artifact_prefix|Test unit written)' || true
echo "findings in $findings: $(ls "$findings" | wc -l)"

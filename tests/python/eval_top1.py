"""Evaluator for full_auto's `metric: evaluator_command` tests: prints the onnxruntime top-1 of MODEL on NPZ as
the last line."""
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from oqtest import ort_top1  # noqa: E402

print("evaluating", sys.argv[1])
print(f"{ort_top1(sys.argv[1], sys.argv[2]):.4f}")

"""Writes the ONNX backend node tests of the installed onnx wheel (model.onnx + test_data_set_*/*.pb) into
OUT/node/. The wheel no longer ships them as data, and `python -m onnx.backend.test.cmd_tools generate-data`
only writes the model-level cases, so this runs that tool's writer over the node test cases instead.
Skips the work when OUT/.onnx-version already names the installed onnx version.

usage: gen_node_tests.py OUT
"""
import argparse
import os
import sys
import types

import onnx
import onnx.backend.test.case.node as node_test
import onnx.backend.test.cmd_tools as cmd_tools


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out = os.path.abspath(sys.argv[1])
    stamp = os.path.join(out, ".onnx-version")
    if os.path.exists(stamp) and open(stamp).read().strip() == onnx.__version__:
        print(f"node tests of onnx {onnx.__version__} already in {out}")
        return
    os.makedirs(out, exist_ok=True)
    if os.path.exists(stamp):
        os.remove(stamp)
    # generate_data() writes every case of model_test.collect_testcases() under OUT/<kind>/<name>.
    cmd_tools.model_test = types.SimpleNamespace(collect_testcases=node_test.collect_testcases)
    cmd_tools.generate_data(argparse.Namespace(output=out))
    n = len(os.listdir(os.path.join(out, "node")))
    with open(stamp, "w") as f:
        f.write(onnx.__version__ + "\n")
    print(f"wrote {n} node tests of onnx {onnx.__version__} to {out}/node")


if __name__ == "__main__":
    main()

"""The inspection reports with names and settings of every kind (core review, s19):

- a model file name that is not UTF-8 (byte 0xE8, Latin-1 'è') or a tensor name with bytes FF FE: the run succeeds
  and inspection.json is valid JSON with those bytes as U+FFFD, every other field as a run with plain names gives
  (the JSON writer threw at the very end and the run removed all its outputs); likewise full_auto.json for an
  output folder named in Latin-1;
- names with a line break, a tab, control characters, DEL, NEL, LS, PS or a BOM: the suggested-overrides snippet
  of inspection.html, pasted into the config, is accepted and names those tensors exactly (single quotes folded
  the line break to a space; \\x01 is refused by PyYAML). Each such scalar is checked with json.loads (its escapes
  are the ones YAML's double-quoted scalars and JSON share) and, when PyYAML is importable, with yaml.safe_load;
- snr_threshold 1e300 (or 1e8): a small HTML report and the same JSON values as threshold 20 (the chart drew one
  grid line per 10 dB up to the threshold: gigabytes, or an endless loop).
Each test fails against the binary before these fixes.
"""
import html
import json
import os
import re
import resource
import subprocess
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, os.path.dirname(__file__))
from oqtest import BIN, SRC, run_module_tests, sanitized_binary, tmpdir  # noqa: E402

try:
    import yaml  # PyYAML: not pinned in .venv; used when present
except ImportError:
    yaml = None


def make_model(path, w1="w1", w2="w2", h1="h1", h2="h2"):
    """x [1,4] -> MatMul W1 [4,8] -> Relu -> MatMul W2 [8,3] -> y; a name given as bytes is written through a
    placeholder of the same length (its non-ASCII bytes as 'Q') patched in the serialized model (onnx.helper takes
    str only). Returns the calibration .npz path."""
    rng = np.random.default_rng(0)
    marks = {}

    def name(n):
        if not isinstance(n, bytes):
            return n
        tag = "".join(chr(c) if c < 0x80 else "Q" for c in n)
        marks[tag.encode()] = n
        return tag
    n_w1, n_w2, n_h1, n_h2 = name(w1), name(w2), name(h1), name(h2)
    nodes = [helper.make_node("MatMul", ["x", n_w1], [n_h1], name="mm1"),
             helper.make_node("Relu", [n_h1], [n_h2], name="relu"),
             helper.make_node("MatMul", [n_h2, n_w2], ["y"], name="mm2")]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
                          [numpy_helper.from_array(rng.standard_normal((4, 8)).astype(np.float32), n_w1),
                           numpy_helper.from_array(rng.standard_normal((8, 3)).astype(np.float32), n_w2)])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 21)])
    m.ir_version = 10
    onnx.checker.check_model(m)
    data = m.SerializeToString()
    for tag, raw in marks.items():
        assert data.count(tag) == 2, tag  # the initializer's name and the node input
        data = data.replace(tag, raw)
    with open(path, "wb") as f:
        f.write(data)
    calib = os.path.join(os.path.dirname(path), "calib.npz")
    np.savez(calib, x=rng.uniform(0, 1, (20, 4)).astype(np.float32))
    return calib


def write_config(path, model, calib, threshold=20, extra=""):
    """An inspection-mode config (bytes: the model path may be any bytes)."""
    text = (b"model: {model_path: '" + os.fsencode(model) + b"'}\n"
            b"dataset: {quantization_path: '" + os.fsencode(calib) + b"'}\n"
            b"quantization:\n  operating_mode: inspection\n  target_opset: 21\n  granularity: per_channel\n"
            b"  onnx_quant_parameters: {weightType: Int8, activType: Int8}\n"
            b"  onnx_extra_options:\n    WeightSymmetric: True\n" + extra.encode() +
            b"  iterative_quant_parameters: {inspection_split: 1.0, snr_threshold: " + str(threshold).encode() + b"}\n")
    with open(path, "wb") as f:
        f.write(text)
    return path


def bounded():
    """2 GB of address space and 64 MB files: the run before the fix, with a huge snr_threshold, grew without end
    (1e300) or wrote a 1.5 GB page (1e8)."""
    resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 << 20, 64 << 20))


def run_bytes(args, timeout=120, limits=None):
    """onnxquant with its output kept as bytes (the log repeats paths that are not UTF-8): (returncode, stderr)."""
    try:
        p = subprocess.run([BIN] + args, capture_output=True, timeout=timeout, preexec_fn=limits)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"onnxquant {args} did not finish within {timeout} s") from None
    return p.returncode, p.stderr.decode("utf-8", "replace")


def inspect(work, cfg, out, limits=None):
    out = os.path.join(work, out)
    rc, err = run_bytes(["--config", cfg, "--output-dir", out], limits=limits)
    assert rc == 0, err[-3000:]
    with open(os.path.join(out, "inspection.json"), "rb") as f:
        raw = f.read()
    # strict: UTF-8, no NaN / Infinity
    rep = json.loads(raw.decode("utf-8"), parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))
    return out, rep


def without(rep, name_map=None):
    """The report without the settings that name files; tensor names mapped by name_map."""
    s = {k: v for k, v in rep["settings"].items() if k not in ("model", "quantized_model")}
    ts = []
    for t in rep["tensors"]:
        t = dict(t)
        t["name"] = (name_map or {}).get(t["name"], t["name"])
        ts.append(t)
    return s, ts


# ---------------------------------------------------------------------------------------------- not UTF-8
def test_model_path_not_utf8():
    work = tmpdir("oq_names_")
    wb = os.fsencode(work)
    plain = os.path.join(work, "plain.onnx")
    odd = os.fsdecode(wb + b"/mod\xe8le.onnx")
    calib = make_model(plain)
    make_model(odd)
    _, ref = inspect(work, write_config(os.path.join(work, "p.yaml"), plain, calib), "out_plain")
    out, rep = inspect(work, write_config(os.path.join(work, "o.yaml"), odd, calib), "out_odd")
    want = (wb + b"/mod\xe8le.onnx").decode("utf-8", "replace")
    assert rep["settings"]["model"] == want, rep["settings"]["model"]
    assert rep["settings"]["quantized_model"].endswith("/mod\ufffdle_quant_qdq_pc.onnx"), rep["settings"]
    assert os.path.isfile(os.path.join(os.fsencode(out), b"quantized_models/mod\xe8le_quant_qdq_pc.onnx"))
    assert without(rep) == without(ref)
    for f in ("inspection.csv", "inspection.html"):
        assert os.path.getsize(os.path.join(out, f)) > 0, f


def test_tensor_name_not_utf8():
    work = tmpdir("oq_names_")
    calib = make_model(os.path.join(work, "plain.onnx"), w1="wPLAIN")
    odd = os.path.join(work, "odd.onnx")
    make_model(odd, w1=b"w\xff\xfeX")
    _, ref = inspect(work, write_config(os.path.join(work, "p.yaml"), os.path.join(work, "plain.onnx"), calib), "op")
    _, rep = inspect(work, write_config(os.path.join(work, "o.yaml"), odd, calib), "oo")
    want = b"w\xff\xfeX".decode("utf-8", "replace")
    assert want == "w\ufffd\ufffdX"
    assert any(t["name"] == want for t in rep["tensors"]), [t["name"] for t in rep["tensors"]]
    assert without(rep, {want: "wPLAIN"}) == without(ref)


def test_full_auto_output_dir_not_utf8():
    """The bundled example's full_auto into a folder named in Latin-1: full_auto.json parses and names the answer's
    file with U+FFFD, which exists on disk under the real bytes (the whole search ran, then every model was
    removed)."""
    out = os.fsencode(tmpdir("oq_names_")) + b"/fa_\xe8"
    cfg = os.path.join(SRC, "examples", "digits", "user_config.yaml")
    rc, err = run_bytes(["--config", cfg, "--output-dir", os.fsdecode(out)], timeout=600)
    assert rc == 0, err[-3000:]
    with open(os.path.join(out, b"full_auto.json"), "rb") as f:
        rep = json.loads(f.read().decode("utf-8"))
    answer = rep["answer"]["file"]
    prefix = out.decode("utf-8", "replace") + "/"
    assert answer.startswith(prefix) and "\ufffd" in prefix, answer
    assert os.path.isfile(out + b"/" + os.fsencode(answer[len(prefix):])), answer


# ---------------------------------------------------------------------------------------------- YAML snippet
# h1 and h2 share one QuantizeLinear (ORT: Relu's output takes its input's): the report lists h2 only
NAMES = {"w1": 'w,"q"\nline2', "w2": "back\\slash\ttab\x01ctl\x7f", "h2": "nel\x85ls\u2028ps\u2029bom\ufeffend",
         "h1": "it's <b>&amp; é"}
SUGGESTED = [NAMES[k] for k in ("w1", "w2", "h2")] + ["x", "y"]


def snippet_from_html(path):
    with open(path, encoding="utf-8") as f:
        page = f.read()
    m = re.search(r'<pre id="overrides-yaml">(.*?)</pre>', page, re.S)
    assert m, "no YAML snippet in the page"
    return html.unescape(m.group(1))


def quoted_names(snippet):
    """The first element of every `  - [NAME, {...}]` line, decoded independently: a double-quoted scalar as JSON,
    a single-quoted one by YAML's rule ('' is ')."""
    names = []
    for line in snippet.split("\n"):
        if not line.startswith("  - ["):
            continue
        rest = line[5:]
        if rest.startswith('"'):
            s, end = json.JSONDecoder().raw_decode(rest)
        else:
            m = re.match(r"'((?:[^']|'')*)'", rest)
            assert m, line
            s, end = m.group(1).replace("''", "'"), m.end()
        assert rest[end:].startswith(", {"), line
        names.append(s)
    return names


def test_overrides_snippet_round_trips_names():
    work = tmpdir("oq_names_")
    model = os.path.join(work, "m.onnx")
    calib = make_model(model, **NAMES)
    out, rep = inspect(work, write_config(os.path.join(work, "c.yaml"), model, calib, threshold=400), "out1")
    assert {t["name"] for t in rep["tensors"]} == set(SUGGESTED), [t["name"] for t in rep["tensors"]]
    snippet = snippet_from_html(os.path.join(out, "inspection.html"))
    got = quoted_names(snippet)
    assert sorted(got) == sorted(SUGGESTED), (got, snippet)
    if yaml is not None:
        d = yaml.safe_load(snippet)
        read = [e[0] for e in d["weights_tensor_override"] + d["activations_tensor_override"]]
        assert sorted(read) == sorted(got), (read, got)
    # pasted under onnx_extra_options (as the page says): accepted, and the overrides reach those exact tensors
    pasted = "".join("    " + line + "\n" for line in snippet.rstrip("\n").split("\n"))
    out2, rep2 = inspect(work, write_config(os.path.join(work, "c2.yaml"), model, calib, extra=pasted), "out2")
    by_name = {t["name"]: t for t in rep2["tensors"]}
    for n in SUGGESTED:
        assert by_name[n]["quant_type"] == "Int16", (n, by_name[n])


# ---------------------------------------------------------------------------------------------- snr_threshold
def test_huge_snr_threshold():
    work = tmpdir("oq_names_")
    model = os.path.join(work, "m.onnx")
    calib = make_model(model)
    out20, rep20 = inspect(work, write_config(os.path.join(work, "a.yaml"), model, calib, threshold=20), "t20")
    limits = None if sanitized_binary() else bounded
    for t in ("1e300", "1e8"):
        out, rep = inspect(work, write_config(os.path.join(work, f"{t}.yaml"), model, calib, threshold=t), "t" + t,
                           limits=limits)
        size = os.path.getsize(os.path.join(out, "inspection.html"))
        assert size < 3 * os.path.getsize(os.path.join(out20, "inspection.html")), size
        assert rep["settings"]["snr_threshold_db"] == float(t)
        s, ts = without(rep)
        s20, ts20 = without(rep20)
        assert ts == ts20 and {**s, "snr_threshold_db": 20} == s20
        with open(os.path.join(out, "inspection.html"), encoding="utf-8") as f:
            page = f.read()
        m = re.search(r"threshold ([^ <]+) dB \(above the chart\)</text>", page)
        assert m and float(m.group(1)) == float(t), re.findall(r"threshold [^<]*", page)
        grid = re.findall(r">(-?\d+) dB</text>", page)
        assert 2 <= len(grid) <= 22 and max(int(v) for v in grid) <= 130, grid


def test_non_finite_snr_threshold_refused():
    work = tmpdir("oq_names_")
    model = os.path.join(work, "m.onnx")
    calib = make_model(model)
    for t in (".inf", "1e400", ".nan"):
        rc, err = run_bytes(["--config", write_config(os.path.join(work, "c.yaml"), model, calib, threshold=t),
                             "--output-dir", os.path.join(work, "o")])
        assert rc == 2, err
        assert "quantization.iterative_quant_parameters.snr_threshold" in err, err
        assert not os.path.exists(os.path.join(work, "o", "inspection.json"))


if __name__ == "__main__":
    run_module_tests(globals())

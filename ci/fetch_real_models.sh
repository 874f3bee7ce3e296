#!/usr/bin/env bash
# Build a model repository of real, published ONNX models taken from PyPI packages
# (installed into .venv by ci/python_env.sh), without config.pbtxt so that the server's
# auto-complete has to derive every configuration from the model files:
#
#   silero_vad  silero_vad/data/silero_vad.onnx from PyPI `silero-vad` (MIT)
#   ppocr_cls   PP-OCR text direction classifier from PyPI `rapidocr-onnxruntime` (Apache-2.0)
#   ppocr_det   PP-OCRv4 text detector from PyPI `rapidocr-onnxruntime` (Apache-2.0)
#
# Each lands at DEST/<name>/1/model.onnx. Files already up to date are left alone.
# Finally the models' input/output signatures are printed, as ONNX Runtime reads them.
#
# Usage: ci/fetch_real_models.sh [DEST]      (default DEST: examples/real_models)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="${1:-$ROOT/examples/real_models}"
VENV="$ROOT/.venv"

log() { echo "[fetch_real_models] $*" >&2; }

# The packages are only looked up (find_spec), never imported: their modules need torch/opencv.
if ! "$VENV/bin/python" -c "
import importlib.util, sys
sys.exit(any(importlib.util.find_spec(m) is None for m in ('silero_vad', 'rapidocr_onnxruntime', 'onnxruntime')))
" >/dev/null 2>&1; then
    log "model packages missing from $VENV; running ci/python_env.sh"
    "$ROOT/ci/python_env.sh" >/dev/null
fi

mkdir -p "$DEST"
DEST="$(cd "$DEST" && pwd)"
log "model repository: $DEST"

"$VENV/bin/python" - "$DEST" <<'PY'
import filecmp
import importlib.util
import pathlib
import shutil
import sys

import onnxruntime as ort

dest = pathlib.Path(sys.argv[1])


def package_dir(name: str) -> pathlib.Path:
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        sys.exit(f"package {name} is not installed")
    return pathlib.Path(spec.origin).parent


def single(folder: pathlib.Path, pattern: str) -> pathlib.Path:
    found = sorted(folder.glob(pattern))
    if len(found) != 1:
        sys.exit(f"expected exactly one {pattern} in {folder}, found {[p.name for p in found]}")
    return found[0]


silero = package_dir("silero_vad") / "data" / "silero_vad.onnx"
ocr_models = package_dir("rapidocr_onnxruntime") / "models"
sources = {
    "silero_vad": silero,
    "ppocr_cls": single(ocr_models, "*_cls_infer.onnx"),
    "ppocr_det": single(ocr_models, "*_det_infer.onnx"),
}

for name, source in sources.items():
    if not source.is_file():
        sys.exit(f"{name}: {source} does not exist")
    target = dest / name / "1" / "model.onnx"
    target.parent.mkdir(parents=True, exist_ok=True)
    stale_config = dest / name / "config.pbtxt"
    if stale_config.exists():
        stale_config.unlink()
        print(f"[fetch_real_models] {name}: removed {stale_config} (auto-complete only)", file=sys.stderr)
    if target.exists() and filecmp.cmp(source, target, shallow=False):
        print(f"[fetch_real_models] {name}: up to date ({source.name})", file=sys.stderr)
    else:
        shutil.copyfile(source, target)
        print(f"[fetch_real_models] {name}: copied {source} -> {target}", file=sys.stderr)

print("[fetch_real_models] signatures (ONNX Runtime; None or a name = dynamic dimension):", file=sys.stderr)
for name in sources:
    session = ort.InferenceSession(str(dest / name / "1" / "model.onnx"), providers=["CPUExecutionProvider"])
    print(f"{name}:")
    for kind, tensors in (("input", session.get_inputs()), ("output", session.get_outputs())):
        for t in tensors:
            print(f"  {kind:6} {t.name!r:40} {t.type:16} {t.shape}")
PY

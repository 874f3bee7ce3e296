"""Real published models (from PyPI packages, see ci/fetch_real_models.sh) served without
config.pbtxt: the auto-completed signatures match the ONNX files, and the outputs match
ONNX Runtime run in-process on the same inputs."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest
import tritonclient.http as httpclient
from tritonclient.utils import np_to_triton_dtype

from helpers import ATOL, RTOL, ort_run, ort_session

ONNX_TO_KSERVE = {
    "tensor(float)": "FP32",
    "tensor(double)": "FP64",
    "tensor(float16)": "FP16",
    "tensor(int64)": "INT64",
    "tensor(int32)": "INT32",
    "tensor(bool)": "BOOL",
    "tensor(uint8)": "UINT8",
    "tensor(int8)": "INT8",
    "tensor(string)": "BYTES",
}


def _model_file(real_models: pathlib.Path, name: str) -> pathlib.Path:
    return real_models / name / "1" / "model.onnx"


def _serve(client, name: str, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    inputs = []
    for key, value in feeds.items():
        inp = httpclient.InferInput(key, list(value.shape), np_to_triton_dtype(value.dtype))
        inp.set_data_from_numpy(value, binary_data=True)
        inputs.append(inp)
    result = client.infer(name, inputs)
    return {o["name"]: result.as_numpy(o["name"]) for o in result.get_response()["outputs"]}


def _assert_matches_onnxruntime(client, real_models: pathlib.Path, name: str, feeds: dict[str, np.ndarray]):
    expected = ort_run(_model_file(real_models, name), feeds)
    got = _serve(client, name, feeds)
    assert sorted(got) == sorted(expected), f"{name}: outputs {sorted(got)} != {sorted(expected)}"
    for key, want in expected.items():
        assert got[key].shape == want.shape, f"{name}.{key}: shape {got[key].shape} != {want.shape}"
        np.testing.assert_allclose(got[key], want, rtol=RTOL, atol=ATOL, err_msg=f"{name}.{key}")
    return got


@pytest.mark.parametrize("name", ["silero_vad", "ppocr_cls", "ppocr_det"])
def test_auto_completed_signature_matches_the_onnx_file(client, real_models, name):
    session = ort_session(_model_file(real_models, name))
    metadata = client.get_model_metadata(name)

    def expected(tensors):
        return [(t.name, ONNX_TO_KSERVE[t.type], [d if isinstance(d, int) else -1 for d in t.shape]) for t in tensors]

    assert [(t["name"], t["datatype"], t["shape"]) for t in metadata["inputs"]] == expected(session.get_inputs())
    assert [(t["name"], t["datatype"], t["shape"]) for t in metadata["outputs"]] == expected(session.get_outputs())


def test_silero_vad_streaming_matches_onnxruntime(client, real_models):
    """Two consecutive 16 kHz chunks (512 samples plus 64 of context), carrying the
    recurrent state from the first response into the second request."""
    signature = {i.name: i for i in ort_session(_model_file(real_models, "silero_vad")).get_inputs()}
    assert set(signature) == {"input", "state", "sr"}, f"unexpected silero inputs {sorted(signature)}"
    assert signature["sr"].shape == [] and signature["sr"].type == "tensor(int64)"

    rng = np.random.default_rng(21)
    t = np.arange(576, dtype=np.float32) / 16000.0
    state = np.zeros((2, 1, 128), dtype=np.float32)
    for step in range(2):
        chunk = (0.3 * np.sin(2 * np.pi * 220.0 * (t + step * 0.032)) + 0.05 * rng.standard_normal(576)).astype(
            np.float32
        )
        feeds = {"input": chunk.reshape(1, 576), "state": state, "sr": np.array(16000, dtype=np.int64)}
        got = _assert_matches_onnxruntime(client, real_models, "silero_vad", feeds)
        assert got["output"].shape == (1, 1) and 0.0 <= float(got["output"][0, 0]) <= 1.0
        state = got["stateN"].astype(np.float32)


def test_ppocr_classifier_matches_onnxruntime(client, real_models):
    images = np.random.default_rng(22).uniform(-1, 1, (2, 3, 48, 192)).astype(np.float32)
    got = _assert_matches_onnxruntime(client, real_models, "ppocr_cls", {"x": images})
    (probabilities,) = got.values()
    np.testing.assert_allclose(probabilities.sum(axis=1), np.ones(2), rtol=1e-4)


def test_ppocr_detector_matches_onnxruntime(client, real_models):
    image = np.random.default_rng(23).uniform(-1, 1, (1, 3, 96, 128)).astype(np.float32)
    got = _assert_matches_onnxruntime(client, real_models, "ppocr_det", {"x": image})
    (heatmap,) = got.values()
    assert heatmap.shape == (1, 1, 96, 128)

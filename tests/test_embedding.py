"""Embedding backends: the packaged model offline, and the ONNX int8 runtime of the same model."""

from __future__ import annotations

import numpy as np
import pytest

from search_service.indexing.build import IndexLoadError, build_index, load_index
from search_service.indexing.embedding import PACKAGED_MODEL_ID, Embedder, ModelLoadError, OnnxInt8Embedder, packaged_model_path
from tests.conftest import page_text, write_page

pytestmark = pytest.mark.slow


def test_packaged_model_loads_offline(embedder):
    assert (packaged_model_path() / "model.safetensors").is_file()
    assert embedder.name == PACKAGED_MODEL_ID and embedder.dimension == 384
    vectors = embedder.embed_documents(["funding pilots", "who pays for pilots", "resetting a VPN password"])
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]


def test_document_order_does_not_change_vectors(embedder):
    texts = ["a much longer text about budgeting and funding for shared AI platforms", "short", "medium length text"]
    forward = embedder.embed_documents(texts)
    backward = embedder.embed_documents(texts[::-1])[::-1]
    assert np.allclose(forward, backward, atol=1e-5)


def test_unknown_model_gives_a_clear_error(tmp_path):
    with pytest.raises(ModelLoadError, match="KB_MODEL"):
        Embedder(str(tmp_path / "no-such-model"))


def test_onnx_int8_backend_agrees_with_torch_and_needs_its_own_index(embedder, tmp_path, content_dir):
    onnx = OnnxInt8Embedder("", cache_dir=tmp_path / "onnx")
    assert onnx.name == PACKAGED_MODEL_ID + "#onnx-int8"
    texts = ["Who pays for the shared AI platform?", "Pilots are funded by the department that benefits.",
             "Reset your VPN password at the IT portal."]
    a, b = onnx.embed_documents(texts), embedder.embed_documents(texts)
    assert float((a * b).sum(axis=1).min()) > 0.9
    assert np.argmax(a[1:] @ a[0]) == np.argmax(b[1:] @ b[0])
    write_page(content_dir, "a.md", page_text("A"))
    build_index(content_dir, tmp_path / "index", embedder)
    with pytest.raises(IndexLoadError, match="built with model"):
        load_index(tmp_path / "index", model=onnx.name)
    build_index(content_dir, tmp_path / "index", onnx)
    assert load_index(tmp_path / "index", model=onnx.name).manifest["model"] == onnx.name
    assert (tmp_path / "onnx").exists() and any((tmp_path / "onnx").rglob("model-int8.onnx"))

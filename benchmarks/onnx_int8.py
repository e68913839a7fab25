"""An ONNX Runtime int8 embedding backend, exported locally from the packaged model (no hub).

torch -> ONNX (``torch.onnx.export``) -> dynamic int8 quantisation (``onnxruntime``), with the
same tokenizer, mean pooling and normalisation as sentence-transformers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


class OnnxInt8Embedder:
    """Drop-in for :class:`search_service.embedding.Embedder` (``embed_documents``, ``embed_query``)."""

    def __init__(self, torch_embedder, cache_dir: Path, *, threads: int = 2) -> None:
        import onnxruntime as ort
        import torch
        from onnxruntime.quantization import QuantType, quantize_dynamic

        self.name = torch_embedder.name + "#onnx-int8"
        self.dimension = torch_embedder.dimension
        self.batch_size = torch_embedder.batch_size
        self.tokenizer = torch_embedder.model.tokenizer
        self.max_length = torch_embedder.model.max_seq_length
        cache_dir.mkdir(parents=True, exist_ok=True)
        fp32, int8 = cache_dir / "model.onnx", cache_dir / "model-int8.onnx"
        if not int8.exists():
            bert = torch_embedder.model[0].auto_model.eval()

            class Encoder(torch.nn.Module):
                def __init__(self, model) -> None:
                    super().__init__()
                    self.model = model

                def forward(self, input_ids, attention_mask, token_type_ids):
                    return self.model(input_ids=input_ids, attention_mask=attention_mask,
                                      token_type_ids=token_type_ids).last_hidden_state

            sample = self.tokenizer(["a sample", "another sample text"], padding=True, return_tensors="pt")
            names = ["input_ids", "attention_mask", "token_type_ids"]
            torch.onnx.export(Encoder(bert), tuple(sample[n] for n in names), str(fp32), input_names=names,
                              output_names=["last_hidden_state"], opset_version=17, dynamo=False,
                              dynamic_axes={n: {0: "batch", 1: "sequence"} for n in [*names, "last_hidden_state"]})
            quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(int8), options, providers=["CPUExecutionProvider"])

    def _encode(self, texts: list[str]) -> np.ndarray:
        encoded = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="np")
        hidden = self.session.run(None, {n: encoded[n].astype(np.int64)
                                         for n in ("input_ids", "attention_mask", "token_type_ids")})[0]
        mask = encoded["attention_mask"][..., None].astype(np.float32)
        vectors = (hidden * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1e-9)
        return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)

    def embed_documents(self, texts, *, on_batch=None) -> np.ndarray:
        order = np.argsort([len(t) for t in texts])
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for start in range(0, len(texts), self.batch_size):
            idx = order[start: start + self.batch_size]
            out[idx] = self._encode([texts[i] for i in idx])
            if on_batch:
                on_batch(len(idx))
        return out

    def embed_query(self, text: str) -> np.ndarray:
        return self._encode([text])[0]

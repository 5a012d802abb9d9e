"""Quantize the small transformer models of ``hf_models`` to 4-bit weights, as test data for tcomp.

    python tests/data/quantize_int4.py [--out FOLDER]

Needs onnxruntime and onnx-ir (not tcomp's dependencies: run it where they are installed). Each MatMul by a constant
weight is quantized by onnxruntime's ``MatMulNBitsQuantizer`` in the QDQ format (opset 21): the weight becomes
4-bit integers by blocks along its input dimension, read by a ``DequantizeLinear`` with a ``block_size`` and a scale
(and a zero point) per block, as weight-only quantized language models are stored. Written to ``quantized/``:

- ``llama_uint4_tiny.onnx``: ``hf_models/llama_tiny``, asymmetric (uint4 weights and zero points), blocks of 32;
- ``bert_int4_tiny.onnx``: ``hf_models/bert_tiny``, symmetric (int4 weights, no zero point), blocks of 16.

The models read the token ids of the ``hf_models`` model they come from (its ``.npz``).
"""

from __future__ import annotations

import argparse
import os

import onnx
from onnxruntime.quantization import matmul_nbits_quantizer
from onnxruntime.quantization.quant_utils import QuantFormat

HERE = os.path.dirname(os.path.abspath(__file__))
MODELS = {"llama_uint4_tiny": ("llama_tiny", 32, False), "bert_int4_tiny": ("bert_tiny", 16, True)}


def quantize(name: str, out: str) -> None:
    source, block, symmetric = MODELS[name]
    model = onnx.load(os.path.join(HERE, "hf_models", f"{source}.onnx"))
    quantizer = matmul_nbits_quantizer.MatMulNBitsQuantizer(
        model, bits=4, block_size=block, is_symmetric=symmetric, quant_format=QuantFormat.QDQ,
        op_types_to_quantize=("MatMul",))
    quantizer.process()
    onnx.save(quantizer.model.model, os.path.join(out, f"{name}.onnx"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=os.path.join(HERE, "quantized"))
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    for name in MODELS:
        quantize(name, args.out)
        print(name, f"{os.path.getsize(os.path.join(args.out, name + '.onnx')) / 2**20:.2f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

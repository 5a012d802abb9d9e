"""Export the models of the GPU benchmark (``bench/gpu_models.py``) as test data: the graphs at full size, without
their weights, so tests can check that every one compiles for ``cuda`` on machines without PyTorch or a GPU.

    python tests/data/export_gpu_models.py [--out tests/data/gpu_models] [name ...]

Needs torch, torchvision and transformers. Each model is exported exactly as the benchmark exports it (same
builder, same exporter), then every float initializer of more than 16 elements loses its data (it keeps its name,
type and shape: ``load_graph_model`` fills it with random values), doc strings and value infos are dropped, and
the model is written gzipped as ``NAME.onnx.gz`` (a few kilobytes). ``MANIFEST.txt`` lists the versions and inputs.
"""

from __future__ import annotations

import argparse
import gzip
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
STRIPPED_ELEMENTS = 16


def strip(model: object) -> None:
    """Drop the data of large float initializers, doc strings and value infos (in place)."""
    import numpy as np
    import onnx

    assert isinstance(model, onnx.ModelProto)
    for init in model.graph.initializer:
        if init.data_type == onnx.TensorProto.FLOAT and int(np.prod(init.dims)) > STRIPPED_ELEMENTS:
            init.ClearField("raw_data")
            init.ClearField("float_data")
            init.ClearField("data_location")
            del init.external_data[:]
    for node in model.graph.node:
        node.doc_string = ""
        del node.metadata_props[:]
    del model.graph.value_info[:]
    del model.metadata_props[:]
    model.graph.doc_string = ""
    model.doc_string = ""


def main() -> None:
    import onnx
    import torch
    import torchvision
    import transformers

    sys.path.insert(0, str(ROOT / "bench"))
    import gpu_models

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "gpu_models")
    parser.add_argument("names", nargs="*", default=list(gpu_models.MODELS))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    lines = [f"torch {torch.__version__}, torchvision {torchvision.__version__}, transformers "
             f"{transformers.__version__}; float initializers of more than {STRIPPED_ELEMENTS} elements stripped"]
    for name in args.names:
        spec = gpu_models.MODELS[name]
        inputs = gpu_models.example_inputs(spec)
        with tempfile.TemporaryDirectory() as work:
            path = gpu_models.export(spec, gpu_models.build(spec), inputs, Path(work))
            model = onnx.load(str(path), load_external_data=True)
        strip(model)
        data = gzip.compress(model.SerializeToString(), 9, mtime=0)
        (args.out / f"{name}.onnx.gz").write_bytes(data)
        exporter = "dynamo" if spec.dynamo else "TorchScript, opset 17"
        shapes = [(k, v.shape, str(v.dtype)) for k, v in inputs.items()]
        lines.append(f"{name}: {exporter}; {len(data) / 1024:.1f} KB; inputs {shapes}")
        print(lines[-1], flush=True)
    (args.out / "MANIFEST.txt").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()

"""Where ``bench/models.py`` finds its models, and the inputs it feeds them.

- ``resnet50`` and ``mobilenet_v2``: built by ``tcomp.graph.testing`` (the real architectures, random weights);
- ``vgg19``, ``zfnet512``, ``shufflenet``, ``squeezenet``: the onnx package's light models (the real architectures,
  ``onnx/backend/test/data/light/``); ``densenet121`` and ``inception_v2`` too, run only when named (``OPTIONAL``:
  DenseNet-121 alone takes minutes). They keep their weights only as shapes (every weight 0.02, so every input gives
  the same output): ``tcomp.graph.testing.random_weights`` gives them random ones, and ``expose_logits`` adds the
  final softmax's input as a second output, which the comparison with onnxruntime checks too;
- ``bert`` (BERT-base-like encoder, sequence 128) and ``vit`` (ViT-B/16-like at 224): exported from Hugging Face
  transformers code by ``bench/export_transformers.py`` into a cache folder (they are hundreds of MB, so they are
  not kept in git); ``ensure_exported`` runs that script with an interpreter that has torch and transformers;
  ``gpt2`` and ``llama`` (GPT-2-small-like and Llama-like decoders, sequence 128), ``t5`` and ``whisper`` (a
  T5-small-like encoder at sequence 128, a Whisper-base-like encoder over 30 s of audio), ``convnext`` and ``swin``
  (ConvNeXt-tiny and Swin-tiny at 224), ``gpt2_decode`` and ``llama_decode`` (one generation step of those
  decoders: a token and the key/value cache of 127 before it), ``gpt2_decode_static`` (the GPT-2 step over a static
  cache of 128 positions, the token at position 0), ``bloom`` and ``deberta`` (a BLOOM-like decoder
  and a DeBERTa-v3-base-like encoder, sequence 128) the same way, run only when named;
- ``tv_<name>``: torchvision's image models as ``bench/gpu_models.py`` exports them (random weights from a fixed
  seed, batch norms calibrated; its example image, and PyTorch's output beside it): those of the GPU benchmark
  (``tv_resnet50``, ``tv_mobilenet_v3_small``, ``tv_shufflenet_v2_x1_0``, ``tv_regnet_y_400mf``,
  ``tv_efficientnet_b0``, ``tv_densenet121``, ``tv_squeezenet1_1``, ``tv_convnext_tiny``, ``tv_vit_b_16``) and
  its ``MORE`` (ResNeXt-50, Wide ResNet-50, GoogLeNet, MNASNet, MobileNetV3-large, EfficientNetV2-S,
  RegNetX-400MF, and the segmentation models DeepLabV3-MobileNetV3, LRASPP-MobileNetV3 and FCN-ResNet50), run
  only when named (``--export --export-python PYTHON`` with an interpreter that has torch and torchvision);
- ``bert_base`` and ``vit_b16``: the same architectures and sizes built by ``tcomp.graph.testing`` with the
  operators that export writes (no torch needed; random weights);
- ``<exported>_int8`` (``bert_int8``, ``gpt2_int8`` ... run only when named): that export quantized by onnxruntime's
  ``quantize_dynamic`` (int8 weights, uint8 activations quantized at run time: ``DynamicQuantizeLinear`` and
  ``MatMulInteger``), as CPU deployments of transformers quantize them; ``<exported>_qdq``: by its
  ``quantize_static`` in the default QDQ format (``QuantizeLinear`` / ``DequantizeLinear`` around every operator it
  quantizes; calibrated on three draws of the example inputs); made once into the cache folder. ``resnet50_int8``
  and ``resnet50_qdq``: the built ResNet-50 quantized the same ways (``ConvInteger`` / QDQ convolutions);
  ``mobilenet_v2_qdq``: the built MobileNetV2 under ``quantize_static``; ``llama_uint4`` and ``llama_decode_uint4``:
  the Llama-like export and its generation step with every ``MatMul`` weight quantized to 4 bits by onnxruntime's
  ``MatMulNBitsQuantizer`` in the QDQ format (``uint4`` by blocks of 32 with zero points, as weight-only quantized
  language models are stored; it needs the ``onnx-ir`` package).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

BENCH = Path(__file__).resolve().parent
DEFAULT_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "tcomp" / "bench_models"
LIGHT = {"vgg19": "light_vgg19", "zfnet512": "light_zfnet512", "shufflenet": "light_shufflenet",
         "squeezenet": "light_squeezenet", "densenet121": "light_densenet121", "inception_v2": "light_inception_v2"}
EXPORTED = ("bert", "vit", "gpt2", "convnext", "llama", "swin", "t5", "whisper", "gpt2_decode", "llama_decode",
            "gpt2_decode_static", "bloom", "deberta")
FAMILY = {"bert": "transformer", "vit": "transformer", "gpt2": "transformer", "llama": "transformer",
          "gpt2_decode": "transformer", "llama_decode": "transformer", "gpt2_decode_static": "transformer",
          "bloom": "transformer",
          "deberta": "transformer",
          "swin": "transformer", "t5": "transformer", "whisper": "transformer", "convnext": "cnn",
          "bert_base": "transformer", "vit_b16": "transformer",
          "resnet50": "cnn", "mobilenet_v2": "cnn", "vgg19": "cnn",
          "zfnet512": "cnn", "shufflenet": "cnn", "squeezenet": "cnn", "densenet121": "cnn", "inception_v2": "cnn",
          "bert_int8": "quantized", "vit_int8": "quantized", "gpt2_int8": "quantized", "llama_int8": "quantized",
          "gpt2_decode_int8": "quantized", "bert_qdq": "quantized", "vit_qdq": "quantized",
          "resnet50_int8": "quantized", "resnet50_qdq": "quantized", "mobilenet_v2_qdq": "quantized",
          "whisper_int8": "quantized", "llama_uint4": "quantized", "llama_decode_uint4": "quantized"}
TORCHVISION = ("tv_resnet50", "tv_mobilenet_v3_small", "tv_shufflenet_v2_x1_0", "tv_regnet_y_400mf",
               "tv_efficientnet_b0", "tv_densenet121", "tv_squeezenet1_1", "tv_convnext_tiny", "tv_vit_b_16",
               "tv_resnext50_32x4d", "tv_wide_resnet50_2", "tv_googlenet", "tv_mnasnet1_0", "tv_mobilenet_v3_large",
               "tv_efficientnet_v2_s", "tv_regnet_x_400mf", "tv_deeplabv3_mobilenet_v3_large",
               "tv_lraspp_mobilenet_v3_large", "tv_fcn_resnet50")
FAMILY.update({name: "transformer" if name == "tv_vit_b_16" else "cnn" for name in TORCHVISION})
ALL = ("resnet50", "vit", "bert", "vit_b16", "bert_base", "vgg19", "zfnet512", "shufflenet", "squeezenet",
       "mobilenet_v2")
# not in the default set
QUANTIZED = ("bert_int8", "vit_int8", "gpt2_int8", "llama_int8", "gpt2_decode_int8", "bert_qdq", "vit_qdq",
             "resnet50_int8", "resnet50_qdq", "mobilenet_v2_qdq", "whisper_int8", "llama_uint4", "llama_decode_uint4")
OPTIONAL = ("densenet121", "inception_v2", "gpt2", "llama", "t5", "whisper", "convnext", "swin", "gpt2_decode",
            "llama_decode", "gpt2_decode_static", "bloom", "deberta", *QUANTIZED, *TORCHVISION)


# models built by ``tcomp.graph.testing`` (the real architectures, random weights): its builder and arguments
BUILT: dict[str, tuple[str, dict[str, Any]]] = {
    "resnet50": ("resnet", {"depth": 50, "image_size": 224}),
    "mobilenet_v2": ("mobilenet_v2", {"image_size": 224}),
    "bert_base": ("bert", {}),
    "vit_b16": ("vit", {}),
}


def build(name: str) -> Any:
    """The model ``name`` of ``BUILT``."""
    from tcomp.graph import testing

    builder, arguments = BUILT[name]
    return getattr(testing, builder)(**arguments)


def _built(name: str, cache: Path) -> Path:
    """The built model ``name`` saved once in ``cache`` to be quantized from there, after onnxruntime's
    ``quant_pre_process`` (which its quantization tools ask for): that folds the batch norms into the convolutions, as
    an export in eval mode has them (``tcomp.graph.testing`` writes them as operators of their own)."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    path = cache / f"{name}.onnx"
    if not path.exists():
        cache.mkdir(parents=True, exist_ok=True)
        quant_pre_process(build(name), path, skip_symbolic_shape=True)  # the shapes are static
    return path


class MissingModel(Exception):
    """A model that is not available here (not exported yet); the message says how to get it."""


@dataclass
class Source:
    """A model to run: ``model`` is what ``tcomp.graph.compile`` and onnxruntime take (a path or serialized
    bytes); ``inputs`` its input arrays by name."""

    name: str
    model: str | bytes
    inputs: dict[str, np.ndarray]
    note: str


def light_model_path(name: str) -> Path:
    import onnx

    return Path(onnx.__file__).resolve().parent / "backend" / "test" / "data" / "light" / f"{LIGHT[name]}.onnx"


def example_inputs(model: Any, seed: int = 0, dims: Mapping[str, int] | None = None) -> dict[str, np.ndarray]:
    """Random inputs for the graph inputs of ``model`` (a ``ModelProto``) that are not initializers: floats from a
    normal distribution, integer ``*mask*`` inputs all ones, integer ``*position*`` inputs 0, 1, 2 ... along their
    last axis, other integers (token ids) in ``[0, 1000)``. A symbolic dimension takes its size from ``dims`` (by
    its name), else 1."""
    import onnx

    rng = np.random.default_rng(seed)
    initializers = {t.name for t in model.graph.initializer}
    inputs: dict[str, np.ndarray] = {}
    for value in model.graph.input:
        if value.name in initializers:
            continue
        tensor = value.type.tensor_type
        shape = [d.dim_value if d.dim_value > 0 else (dims or {}).get(d.dim_param, 1) for d in tensor.shape.dim]
        dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type)
        if np.issubdtype(dtype, np.floating):
            inputs[value.name] = rng.standard_normal(shape).astype(dtype)
        elif "mask" in value.name:
            inputs[value.name] = np.ones(shape, dtype)
        elif "position" in value.name:
            positions = np.arange(shape[-1]) if shape else np.zeros((), np.int64)
            inputs[value.name] = np.broadcast_to(positions, shape).astype(dtype)
        else:
            inputs[value.name] = rng.integers(0, 1000, shape).astype(dtype)
    return inputs


def ensure_exported(name: str, cache: Path, export: bool, python: str | None) -> Path:
    """The path of the exported transformer ``name`` in ``cache``; exports it first when ``export`` is set (with
    ``python``, an interpreter with torch and transformers), else raises ``MissingModel`` if it is not there."""
    path = cache / f"{name}.onnx"
    if export:
        interpreter = python or sys.executable
        command = [interpreter, str(BENCH / "export_transformers.py"), str(cache), name]
        print(f"exporting {name}: {' '.join(command)}", flush=True)
        subprocess.run(command, check=True)
    if not path.exists():
        raise MissingModel(f"{name}: not exported in {cache}; run with --export --export-python PYTHON (an "
                           "interpreter with torch and transformers)")
    return path


def _torchvision_source(name: str, cache: Path, export: bool, python: str | None) -> Source:
    """``tv_<model>``: the model exported by ``bench/gpu_models.py`` (once, or again with ``export``), with the
    example inputs saved beside it."""
    base, folder = name[len("tv_"):], cache / "torchvision"
    path = folder / f"{base}.onnx"
    if export or not path.exists():
        if not export:
            raise MissingModel(f"{name}: not exported in {folder}; run with --export --export-python PYTHON (an "
                               "interpreter with torch and torchvision)")
        command = [python or sys.executable, str(BENCH / "gpu_models.py"), "--out", str(folder), "--models", base]
        print(f"exporting {name}: {' '.join(command)}", flush=True)
        subprocess.run(command, check=True)
    with np.load(folder / f"{base}.npz") as saved:
        inputs = {key[len("input_"):]: saved[key] for key in saved.files if key.startswith("input_")}
    return Source(name, str(path), inputs, "torchvision export (bench/gpu_models.py), random weights")


def load_source(name: str, cache: Path, export: bool = False, python: str | None = None) -> Source:
    import onnx

    from tcomp.graph import testing

    if name in BUILT:
        model = build(name)
        return Source(name, model.SerializeToString(), example_inputs(model), "tcomp.graph.testing, random weights")
    if name in LIGHT:  # weights kept only as shapes: random ones, and the logits as an output (see the docstring)
        path = light_model_path(name)
        model = testing.expose_logits(testing.random_weights(onnx.load(str(path))))
        return Source(name, model.SerializeToString(), example_inputs(model),
                      f"onnx light model {path.name}, random weights")
    if name in QUANTIZED:
        return _quantized_source(name, cache, export, python)
    if name in TORCHVISION:
        return _torchvision_source(name, cache, export, python)
    if name in EXPORTED:
        path = ensure_exported(name, cache, export, python)
        model = onnx.load(str(path), load_external_data=False)
        description = path.with_suffix(".json")
        note = "transformers export"
        if description.exists():
            info = json.loads(description.read_text())
            note = f"transformers {info.get('transformers')}, torch {info.get('torch')}, {info.get('exporter')}"
        return Source(name, str(path), example_inputs(model), note)
    raise SystemExit(f"unknown model {name!r}; models: {', '.join(ALL + OPTIONAL)}")


def _quantized_source(name: str, cache: Path, export: bool, python: str | None) -> Source:
    """``<exported>_int8``, ``<exported>_qdq`` or ``<exported>_uint4``: the export quantized by onnxruntime (see the
    module docstring), made once."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )

    base, kind = name.rsplit("_", 1)
    path = cache / f"{name}.onnx"
    if not path.exists() or export:
        source = _built(base, cache) if base in BUILT else ensure_exported(base, cache, export, python)
        if kind == "int8":
            quantize_dynamic(source, path, weight_type=QuantType.QInt8)
        elif kind == "uint4":
            _quantize_4_bits(source, path)
        else:
            exported = onnx.load(str(source), load_external_data=False)

            class Draws(CalibrationDataReader):
                def __init__(self) -> None:
                    self.draws = iter([example_inputs(exported, seed) for seed in range(3)])

                def get_next(self) -> dict[str, np.ndarray] | None:
                    return next(self.draws, None)

            quantize_static(source, path, Draws(), quant_format=QuantFormat.QDQ, activation_type=QuantType.QUInt8,
                            weight_type=QuantType.QInt8)
    model = onnx.load(str(path), load_external_data=False)
    how = {"int8": "quantize_dynamic (int8)", "qdq": "quantize_static (QDQ, int8)",
           "uint4": "MatMulNBitsQuantizer (QDQ, uint4 by blocks of 32)"}[kind]
    return Source(name, str(path), example_inputs(model), f"{base} export, onnxruntime {how}")


def _quantize_4_bits(source: Path, path: Path) -> None:
    """Every ``MatMul`` weight of ``source`` quantized to uint4 by blocks of 32 along K, in the QDQ format."""
    import onnx

    try:
        from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer
    except ImportError as exc:
        raise MissingModel(f"4-bit quantization needs onnxruntime's MatMulNBitsQuantizer and its dependencies "
                           f"(pip install onnx-ir): {exc}") from None
    from onnxruntime.quantization import QuantFormat

    quantizer = MatMulNBitsQuantizer(onnx.load(str(source)), bits=4, block_size=32, is_symmetric=False,
                                     quant_format=QuantFormat.QDQ, op_types_to_quantize=("MatMul",))
    quantizer.process()
    onnx.save(quantizer.model.model, str(path), save_as_external_data=True, location=f"{path.name}.data")

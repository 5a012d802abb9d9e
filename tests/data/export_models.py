"""Export small real models to ONNX with PyTorch's TorchScript or dynamo exporter, as test data for tcomp.

    python tests/data/export_models.py [--dynamo] [--out FOLDER] [--list] [name ...]

Needs torch, torchvision and transformers (not tcomp's dependencies: run it where they are installed). Nothing is
downloaded: every model is the library's own code (torchvision's model classes, Hugging Face transformers' model
classes) built at a small size from a config, with random weights from a fixed seed. By default each model is
exported with the TorchScript exporter (``dynamo=False``, opset 17), which keeps the shape arithmetic that the
library code does (``Shape``, ``Gather``, ``Mod``, ``Range``, ``Where``, ``Expand``, ``Concat`` feeding
``Reshape``); with ``--dynamo``, the transformers models go through the dynamo exporter (``dynamo=True``, opset
18, weights inside the file), whose graphs keep a symbolic batch as ``dim_param`` and compute masks with its own
patterns (``CastLike``, ``Range``, ``Where`` over symbolic sizes). The models marked dynamic are exported with a
symbolic batch axis.

For each model NAME it writes ``NAME.onnx`` (weights inside, each file well under 2 MB) and ``NAME.npz`` with one
or more input sets: ``in<k>_<input name>`` (the inputs of set k) and ``out<k>`` (PyTorch's output for them); a
dynamic model has sets of different batch sizes. A model exported in training mode (``bert_train``: its Dropout
layers drop at random) has for ``out<k>`` the mean of many PyTorch runs and for ``std<k>`` their standard deviation.
A model in bfloat16 (``llama_bf16``, ``bert_bf16``: weights and float inputs converted with ``.to(torch.bfloat16)``)
has its outputs saved as float32, which holds every bfloat16 value exactly.
``MANIFEST.txt`` lists the versions, the sizes and the inputs.

Options: ``--dynamo`` the dynamo exporter (transformers models only); ``--out`` the folder (default:
``torch_models`` beside this script, ``dynamo_models`` with ``--dynamo``); ``--list`` prints the model names;
names restrict the export to those models (their lines in the manifest are replaced, the others kept).
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

OPSET = 17
DRAWS = 4000  # PyTorch runs of a training-mode model, for the mean and deviation of its outputs
DYNAMO_OPSET = 18
SEED = 0


@dataclass
class Spec:
    """How to build one model and its inputs. ``inputs(batch)`` returns the tensors in ``input_names`` order."""

    build: Callable[[], torch.nn.Module]
    input_names: list[str]
    inputs: Callable[[int], tuple[torch.Tensor, ...]]
    batches: tuple[int, ...] = (1,)  # one input set per batch size; several only for a dynamic model
    dynamic: bool = False
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    functions: tuple[type[torch.nn.Module], ...] = ()  # module classes exported as model-local ONNX functions
    training: bool = False  # exported in training mode: its Dropout layers drop at random (see ``export``)
    dtype: torch.dtype | None = None  # weights and float inputs in this type (outputs saved as float32, exactly)


class FirstOutput(torch.nn.Module):
    """Calls a model with keyword inputs and returns its first output tensor (a plain tensor for the exporter)."""

    def __init__(self, net: torch.nn.Module, names: list[str], key: str | None = None) -> None:
        super().__init__()
        self.net, self.names, self.key = net, names, key

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        kwargs = dict(zip(self.names, xs))
        out = self.net(**kwargs) if self.key is None else self.net(*xs)
        if self.key is not None:
            out = out[self.key]
        while isinstance(out, (tuple, list)):
            out = out[0]
        if hasattr(out, "last_hidden_state"):
            out = out.last_hidden_state
        return out


def images(size: int, channels: int = 3) -> Callable[[int], tuple[torch.Tensor, ...]]:
    def make(batch: int) -> tuple[torch.Tensor, ...]:
        generator = torch.Generator().manual_seed(100 + batch)
        return (torch.randn(batch, channels, size, size, generator=generator),)

    return make


def tokens(length: int, vocab: int, mask: bool = False) -> Callable[[int], tuple[torch.Tensor, ...]]:
    def make(batch: int) -> tuple[torch.Tensor, ...]:
        generator = torch.Generator().manual_seed(200 + batch)
        ids = torch.randint(0, vocab, (batch, length), generator=generator)
        if not mask:
            return (ids,)
        attention = torch.ones(batch, length, dtype=torch.long)
        attention[:, length - 3:] = 0  # padding at the end of every sequence
        return ids, attention

    return make


def sequences(length: int, width: int) -> Callable[[int], tuple[torch.Tensor, ...]]:
    def make(batch: int) -> tuple[torch.Tensor, ...]:
        generator = torch.Generator().manual_seed(300 + batch)
        return (torch.randn(batch, length, width, generator=generator),)

    return make


# --------------------------------------------------------------------------------------------------- torch.nn
def transformer_encoder() -> torch.nn.Module:
    layer = torch.nn.TransformerEncoderLayer(d_model=32, nhead=4, dim_feedforward=64, batch_first=True,
                                             activation="gelu")
    return torch.nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False)


class Res2NetBlock(torch.nn.Module):
    """Res2Net's multi-scale block (Gao et al., 2019): the channels split into groups, each group's 3x3 convolution
    taking the previous group's output added in, the groups concatenated back. Scripted, its Python lists export as
    ONNX sequences (``SplitToSequence``, a ``Loop`` of ``SequenceInsert``, ``ConcatFromSequence``)."""

    def __init__(self, channels: int = 32, scales: int = 4) -> None:
        super().__init__()
        self.width = channels // scales
        self.convs = torch.nn.ModuleList(torch.nn.Conv2d(self.width, self.width, 3, padding=1)
                                         for _ in range(scales - 1))
        self.project = torch.nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        groups = torch.split(x, self.width, 1)
        outputs: list[torch.Tensor] = [groups[0]]
        carry = groups[0]
        for index, conv in enumerate(self.convs):
            carry = torch.relu(conv(groups[index + 1] + carry))
            outputs.append(carry)
        return x + self.project(torch.cat(outputs, 1))


def res2net_block() -> torch.nn.Module:
    return torch.jit.script(Res2NetBlock())


# --------------------------------------------------------------------------------------------------- torchvision
def vit() -> torch.nn.Module:
    from torchvision.models import VisionTransformer

    net = VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=32, mlp_dim=64,
                            num_classes=10)
    torch.nn.init.normal_(net.heads.head.weight, std=0.2)  # torchvision starts the head at zero: an all-zero output
    return net


def efficientnet() -> torch.nn.Module:
    from torchvision.models.efficientnet import EfficientNet, _efficientnet_conf

    setting, last = _efficientnet_conf("efficientnet_b0", width_mult=0.25, depth_mult=0.25)
    return EfficientNet(setting, dropout=0.2, num_classes=10, last_channel=last)


def efficientnet_v2() -> torch.nn.Module:
    from torchvision.models.efficientnet import EfficientNet, FusedMBConvConfig, MBConvConfig

    setting = [FusedMBConvConfig(1, 3, 1, 8, 8, 1), FusedMBConvConfig(4, 3, 2, 8, 16, 1),
               MBConvConfig(4, 3, 2, 16, 24, 1, width_mult=1.0, depth_mult=1.0)]
    return EfficientNet(setting, dropout=0.2, num_classes=10, last_channel=64)


def mobilenet_v3() -> torch.nn.Module:
    from torchvision.models.mobilenetv3 import MobileNetV3, _mobilenet_v3_conf

    setting, last = _mobilenet_v3_conf("mobilenet_v3_small", width_mult=0.25)
    return MobileNetV3(setting, last_channel=64, num_classes=10)


def regnet() -> torch.nn.Module:
    from torchvision.models.regnet import BlockParams, RegNet

    params = BlockParams.from_init_params(depth=4, w_0=8, w_a=8.0, w_m=2.0, group_width=8, se_ratio=0.25)
    return RegNet(params, num_classes=10, stem_width=8)


def resnet_stages() -> torch.nn.Module:
    """torchvision's ResNet-50 up to its first stage: the stem and three bottlenecks of 64 -> 256 channels."""
    from torch import nn
    from torchvision.models import resnet50

    net = resnet50()
    return nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool, net.layer1)


def _small_backbone() -> tuple[torch.nn.Module, int]:
    """A dilated MobileNetV3-Large feature extractor at a quarter width; its last block's channels."""
    from torchvision.models._utils import IntermediateLayerGetter
    from torchvision.models.mobilenetv3 import MobileNetV3, _mobilenet_v3_conf

    setting, last = _mobilenet_v3_conf("mobilenet_v3_large", width_mult=0.25, dilated=True, reduced_tail=True)
    features = MobileNetV3(setting, last_channel=last).features
    out = len(features) - 1
    return IntermediateLayerGetter(features, return_layers={str(out): "out"}), features[out].out_channels


def fcn() -> torch.nn.Module:
    from torchvision.models.segmentation.fcn import FCN, FCNHead

    backbone, channels = _small_backbone()
    return FCN(backbone, FCNHead(channels, 4))


def deeplabv3() -> torch.nn.Module:
    from torch import nn
    from torchvision.models.segmentation.deeplabv3 import ASPP, DeepLabV3

    backbone, channels = _small_backbone()
    head = nn.Sequential(ASPP(channels, [2, 4, 6], out_channels=16), nn.Conv2d(16, 16, 3, padding=1, bias=False),
                         nn.BatchNorm2d(16), nn.ReLU(), nn.Conv2d(16, 4, 1))
    return DeepLabV3(backbone, head)


# --------------------------------------------------------------------------------------------------- transformers
def hf(config: Callable[[Any], Any], model_class: str, names: list[str]) -> Callable[[], torch.nn.Module]:
    def build() -> torch.nn.Module:
        import transformers

        net = getattr(transformers, model_class)(config(transformers))
        return FirstOutput(net, names)

    return build


EAGER = {"attn_implementation": "eager"}
BERT = hf(lambda T: T.BertConfig(vocab_size=256, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                 intermediate_size=64, max_position_embeddings=64, **EAGER),
          "BertModel", ["input_ids", "attention_mask"])
LLAMA = hf(lambda T: T.LlamaConfig(vocab_size=256, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                   num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                                   use_cache=False, **EAGER),
           "LlamaModel", ["input_ids", "attention_mask"])

MODELS: dict[str, Spec] = {
    "transformer_functions": Spec(transformer_encoder, ["x"], sequences(10, 32),
                                  functions=(torch.nn.TransformerEncoderLayer, torch.nn.MultiheadAttention),
                                  notes="torch.nn.TransformerEncoder, 2 layers of 32; its layers and their attention "
                                        "exported as model-local functions"),
    "res2net_block": Spec(res2net_block, ["images"], images(16, 32),
                          notes="a Res2Net block scripted by torch.jit.script: its lists export as ONNX sequences"),
    "vit": Spec(vit, ["images"], images(32), batches=(2, 3), dynamic=True,
                notes="torchvision VisionTransformer, 2 layers, hidden 32"),
    "efficientnet": Spec(efficientnet, ["images"], images(32),
                         notes="torchvision EfficientNet-B0 layout at width 0.25, depth 0.25"),
    "efficientnet_v2": Spec(efficientnet_v2, ["images"], images(32),
                            notes="torchvision EfficientNet with FusedMBConv and MBConv blocks"),
    "mobilenet_v3": Spec(mobilenet_v3, ["images"], images(32), batches=(1, 4), dynamic=True,
                         notes="torchvision MobileNetV3-Small at width 0.25"),
    "regnet": Spec(regnet, ["images"], images(32), notes="torchvision RegNet, depth 4, width 8-32, SE blocks"),
    "resnet_stages": Spec(resnet_stages, ["images"], images(64),
                          notes="torchvision ResNet-50's stem and first stage"),
    "fcn": Spec(lambda: FirstOutput(fcn(), ["x"], key="out"), ["images"], images(48),
                notes="torchvision FCN on a dilated MobileNetV3-Large backbone at width 0.25"),
    "deeplabv3": Spec(lambda: FirstOutput(deeplabv3(), ["x"], key="out"), ["images"], images(48),
                      notes="torchvision DeepLabV3 (ASPP, 16 channels) on the same backbone"),
    "gpt2": Spec(hf(lambda T: T.GPT2Config(vocab_size=256, n_embd=32, n_layer=2, n_head=4, n_positions=64,
                                           bos_token_id=0, eos_token_id=0, use_cache=False, **EAGER),
                    "GPT2Model", ["input_ids", "attention_mask"]),
                 ["input_ids", "attention_mask"], tokens(16, 256, mask=True), batches=(1, 2), dynamic=True,
                 notes="transformers GPT2Model with an attention mask"),
    "bert": Spec(BERT, ["input_ids", "attention_mask"], tokens(16, 256, mask=True), batches=(2, 5), dynamic=True,
                 notes="transformers BertModel with an attention mask"),
    "llama": Spec(LLAMA, ["input_ids", "attention_mask"], tokens(16, 256, mask=True),
                  notes="transformers LlamaModel (grouped-query attention, RoPE) with an attention mask"),
    "t5_encoder": Spec(hf(lambda T: T.T5Config(vocab_size=256, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4,
                                               **EAGER), "T5EncoderModel", ["input_ids"]),
                       ["input_ids"], tokens(16, 256), batches=(1, 3), dynamic=True,
                       notes="transformers T5EncoderModel (relative position buckets)"),
    "bert_train": Spec(BERT, ["input_ids", "attention_mask"], tokens(16, 256, mask=True), training=True,
                       notes="transformers BertModel exported in training mode (Dropout of ratio 0.1 drawn at run "
                             f"time); out0 and std0 are the mean and standard deviation of {DRAWS} PyTorch runs"),
    "distilbert": Spec(hf(lambda T: T.DistilBertConfig(vocab_size=256, dim=32, n_layers=2, n_heads=4, hidden_dim=64,
                                                       max_position_embeddings=64, **EAGER),
                          "DistilBertModel", ["input_ids", "attention_mask"]),
                       ["input_ids", "attention_mask"], tokens(16, 256, mask=True),
                       notes="transformers DistilBertModel with an attention mask"),
    "llama_bf16": Spec(LLAMA, ["input_ids", "attention_mask"], tokens(16, 256, mask=True), dtype=torch.bfloat16,
                       notes="the llama model in bfloat16"),
    "bert_bf16": Spec(BERT, ["input_ids", "attention_mask"], tokens(16, 256, mask=True), dtype=torch.bfloat16,
                      notes="the bert model in bfloat16"),
}


# the models the dynamo exporter is used for (torchvision's are covered by the TorchScript exports)
DYNAMO_MODELS = ("gpt2", "bert", "llama", "t5_encoder", "distilbert")


def _export_dynamo(net: torch.nn.Module, inputs: tuple[torch.Tensor, ...], path: str, spec: Spec) -> None:
    batch = torch.export.Dim("batch", min=1, max=64)
    # the models' forward takes *inputs: one parameter, whose dynamic shapes are one tuple
    dynamic_shapes = (tuple({0: batch} for _ in inputs),) if spec.dynamic else None
    program = torch.onnx.export(net, inputs, input_names=spec.input_names, output_names=["output"],
                                dynamic_shapes=dynamic_shapes, opset_version=DYNAMO_OPSET, dynamo=True)
    program.save(path, external_data=False)


def export(name: str, outdir: str, dynamo: bool = False) -> str:
    spec = MODELS[name]
    torch.manual_seed(SEED)
    torch.backends.mha.set_fastpath_enabled(False)  # nn.MultiheadAttention's fused kernel has no ONNX export
    net = spec.build().train(spec.training)
    sets = [spec.inputs(batch) for batch in spec.batches]
    if spec.dtype is not None:
        net = net.to(spec.dtype)
        sets = [tuple(t.to(spec.dtype) if t.is_floating_point() else t for t in inputs) for inputs in sets]
    path = os.path.join(outdir, f"{name}.onnx")
    dynamic_axes = {n: {0: "batch"} for n in [*spec.input_names, "output"]} if spec.dynamic else None
    arrays: dict[str, np.ndarray] = {}
    with torch.no_grad():
        if spec.training:  # the outputs are random: their mean and standard deviation over many runs
            for k, inputs in enumerate(sets):
                draws = torch.stack([net(*inputs) for _ in range(DRAWS)])
                arrays[f"std{k}"] = draws.std(dim=0).numpy()
                arrays[f"out{k}"] = draws.mean(dim=0).numpy()
        else:
            arrays.update({f"out{k}": net(*inputs).float().numpy() for k, inputs in enumerate(sets)})
        if dynamo:
            _export_dynamo(net, sets[-1], path, spec)  # not batch 1: the exporter would specialize it
        else:
            mode = torch.onnx.TrainingMode.TRAINING if spec.training else torch.onnx.TrainingMode.EVAL
            torch.onnx.export(net, sets[0], path, input_names=spec.input_names, output_names=["output"],
                              dynamic_axes=dynamic_axes, opset_version=OPSET, dynamo=False,
                              export_modules_as_functions=set(spec.functions) or False, training=mode,
                              do_constant_folding=not spec.training)
    for k, inputs in enumerate(sets):
        arrays.update({f"in{k}_{n}": t.numpy() for n, t in zip(spec.input_names, inputs)})
    np.savez_compressed(os.path.join(outdir, f"{name}.npz"), **arrays)
    size = os.path.getsize(path) / 2**20
    shapes = [(n, tuple(t.shape), str(t.dtype).replace("torch.", "")) for n, t in zip(spec.input_names, sets[0])]
    batch = f", dynamic batch, sets of batch {list(spec.batches)}" if spec.dynamic else ""
    return f"{name}: {spec.notes}; {size:.2f} MB; inputs {shapes}{batch}"


def _manifest_lines(path: str) -> dict[str, str]:
    """The model lines of an existing manifest, by model name."""
    if not os.path.exists(path):
        return {}
    with open(path) as handle:
        entries = [line.rstrip("\n") for line in handle][1:]
    return {line.split(":", 1)[0]: line for line in entries if ":" in line}


def main(argv: list[str] | None = None) -> int:
    summary, _, details = __doc__.partition("\n\n")
    parser = argparse.ArgumentParser(description=summary, epilog=details,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help="models to export (default: all)")
    parser.add_argument("--dynamo", action="store_true", help="the dynamo exporter (transformers models only)")
    parser.add_argument("--out", help="folder to write to (default: torch_models or dynamo_models beside this script)")
    parser.add_argument("--list", action="store_true", help="print the model names and stop")
    args = parser.parse_args(argv)
    if args.list:
        print("\n".join(MODELS))
        return 0
    known = list(DYNAMO_MODELS) if args.dynamo else list(MODELS)
    unknown = sorted(set(args.names) - set(known))
    if unknown:
        parser.error(f"unknown models {unknown}; models: {known}")
    if args.out is None:
        args.out = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "dynamo_models" if args.dynamo else "torch_models")
    os.makedirs(args.out, exist_ok=True)
    import torchvision
    import transformers

    header = (f"torch {torch.__version__}, torchvision {torchvision.__version__}, transformers "
              f"{transformers.__version__}; "
              + (f"dynamo exporter, opset {DYNAMO_OPSET}" if args.dynamo else f"TorchScript exporter, opset {OPSET}"))
    manifest = os.path.join(args.out, "MANIFEST.txt")
    lines = _manifest_lines(manifest)
    failed = 0
    for name in args.names or known:
        try:
            lines[name] = export(name, args.out, dynamo=args.dynamo)
        except Exception as exc:  # noqa: BLE001  (report every model, keep going)
            traceback.print_exc(limit=3)
            lines[name] = f"{name}: FAILED {type(exc).__name__}: {str(exc)[:200]}"
            failed += 1
        print(lines[name], flush=True)
    with open(manifest, "w") as handle:
        handle.write("\n".join([header, *(lines[n] for n in known if n in lines)]) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

"""Export small models of four more transformer families: BLOOM (ALiBi position biases added to the scores),
DeBERTa-v2 (disentangled attention: relative position terms gathered into the scores, a where-mask), wav2vec 2.0
(a convolutional feature encoder over raw audio, group norm, a grouped positional convolution) and BEiT (relative
position biases in a vision transformer).

Seven more are exported as optimum exports them for serving, every input's batch and length symbolic
(``DYNAMIC_MODELS``, named ``*_batch_dynamic_tiny``): Qwen2 (grouped-query attention, biased projections),
RoBERTa (positions counted from the attention mask), T5 (an encoder-decoder: relative position buckets, the decoder's
``decoder_input_ids`` with a length of its own, ``dec``), Whisper (convolutions over a batch of audio features,
then the decoder), BEiT (its relative position biases broadcast for a batch of images), BLOOM (scores of ``[batch *
heads]`` viewed as ``[batch, heads]`` to meet the mask) and DeBERTa-v3 (disentangled attention: products of the
queries and keys with position embeddings repeated for the batch). Their ``.npz`` hold
PyTorch's inputs and outputs at each of ``DYNAMIC_CASES``, as ``input_<name>@<batch>x<length>`` and
``output@<batch>x<length>`` (the decoders' ``dec`` is half the length); BEiT's at each of ``IMAGE_BATCHES``, as
``@<batch>``.

Two image models are exported with their images' size symbolic too (``IMAGE_SIZE_MODELS``, named
``*_images_dynamic_tiny``): ResNet as optimum exports vision models (the TorchScript exporter, every dimension of
``pixel_values`` named: ``batch_size``, ``num_channels``, ``height``, ``width``) and SegFormer (a segmentation
map a quarter of the image's size) with the dynamo exporter's ``batch``, ``height`` and ``width``. Their ``.npz``
hold PyTorch's inputs and outputs at each of ``IMAGE_SIZES``, as ``@<batch>x<height>x<width>``.

Random weights from a fixed seed; nothing is downloaded. Writes ``NAME.onnx`` (weights in ``NAME.onnx.data``) and
``NAME.npz`` (the inputs as ``input_<name>``, PyTorch's first output as ``output``) with the dynamo exporter.

    python tests/data/hf_models/export_families.py OUTDIR
"""

import os
import sys
from collections.abc import Callable

import numpy as np
import torch
import transformers as T

EAGER = {"attn_implementation": "eager"}
TEXT = {"vocab_size": 512, "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
        "intermediate_size": 128, "max_position_embeddings": 64}


def ids() -> torch.Tensor:
    return torch.randint(0, 512, (1, 16), generator=torch.Generator().manual_seed(1))


def image() -> torch.Tensor:
    return torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))


def audio() -> torch.Tensor:
    return torch.randn(1, 4000, generator=torch.Generator().manual_seed(1))


def beit() -> torch.nn.Module:
    return T.BeitModel(T.BeitConfig(image_size=64, patch_size=16, hidden_size=64, num_hidden_layers=2,
                                    num_attention_heads=4, intermediate_size=128, use_relative_position_bias=True,
                                    **EAGER))


MODELS: dict[str, tuple[Callable[[], torch.nn.Module], str, Callable[[], torch.Tensor]]] = {
    "bloom_tiny": (lambda: T.BloomModel(T.BloomConfig(vocab_size=512, hidden_size=64, n_layer=2, n_head=4, **EAGER)),
                   "input_ids", ids),
    "deberta_v2_tiny": (lambda: T.DebertaV2Model(T.DebertaV2Config(**TEXT, **EAGER)), "input_ids", ids),
    "wav2vec2_tiny": (lambda: T.Wav2Vec2Model(T.Wav2Vec2Config(
        hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128, conv_dim=(32, 32),
        conv_stride=(5, 2), conv_kernel=(10, 3), num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4,
        **EAGER)), "input_values", audio),
    "beit_tiny": (lambda: beit(), "pixel_values", image),
}


DECODER = {**TEXT, "num_key_value_heads": 2}
SEQ2SEQ = {"vocab_size": 512, "d_model": 64, "encoder_layers": 2, "decoder_layers": 2, "encoder_attention_heads": 4,
           "decoder_attention_heads": 4, "encoder_ffn_dim": 128, "decoder_ffn_dim": 128}
DYNAMIC_CASES = ((1, 16), (2, 7), (3, 12), (1, 5), (2, 20))  # (batch, length) of the stored cases, in running order
DYNAMIC_MODELS: dict[str, tuple[Callable[[], torch.nn.Module], tuple[str, ...]]] = {
    "qwen2_batch_dynamic_tiny": (lambda: T.Qwen2Model(T.Qwen2Config(**DECODER, **EAGER)),
                                 ("input_ids", "attention_mask")),
    "roberta_batch_dynamic_tiny": (lambda: T.RobertaModel(T.RobertaConfig(**TEXT, **EAGER)),
                                   ("input_ids", "attention_mask")),
    "t5_batch_dynamic_tiny": (lambda: T.T5Model(T.T5Config(vocab_size=512, d_model=64, d_kv=16, d_ff=128, num_layers=2,
                                                           num_heads=4, **EAGER)),
                              ("input_ids", "attention_mask", "decoder_input_ids")),
    "whisper_batch_dynamic_tiny": (lambda: T.WhisperModel(T.WhisperConfig(
        **SEQ2SEQ, num_mel_bins=80, max_source_positions=100, max_target_positions=256, pad_token_id=0,
        bos_token_id=1, eos_token_id=2, decoder_start_token_id=1, **EAGER)), ("input_features", "decoder_input_ids")),
    "beit_batch_dynamic_tiny": (beit, ("pixel_values",)),
    "bloom_batch_dynamic_tiny": (lambda: T.BloomModel(T.BloomConfig(
        vocab_size=512, hidden_size=64, n_layer=2, n_head=4, **EAGER)), ("input_ids", "attention_mask")),
    "deberta_v3_batch_dynamic_tiny": (lambda: T.DebertaV2Model(T.DebertaV2Config(
        **TEXT, relative_attention=True, position_buckets=32, pos_att_type=["p2c", "c2p"], norm_rel_ebd="layer_norm",
        share_att_key=True, **EAGER)), ("input_ids", "attention_mask")),
}
IMAGE_BATCHES = (1, 2, 3, 5)  # the batches of images stored for an image model's export
IMAGE_SIZE_MODELS: dict[str, tuple[Callable[[], torch.nn.Module], str]] = {
    "resnet_images_dynamic_tiny": (lambda: T.ResNetModel(T.ResNetConfig(
        embedding_size=16, hidden_sizes=[16, 32, 64, 128], depths=[1, 1, 1, 1])), "torchscript"),
    "segformer_images_dynamic_tiny": (lambda: T.SegformerForSemanticSegmentation(T.SegformerConfig(
        num_encoder_blocks=2, hidden_sizes=[8, 16], num_attention_heads=[1, 2], depths=[1, 1], sr_ratios=[4, 2],
        patch_sizes=[7, 3], strides=[4, 2], mlp_ratios=[4, 4], decoder_hidden_size=16, num_labels=5, **EAGER)),
        "dynamo"),
}
IMAGE_SIZES = ((1, 48, 48), (2, 64, 56), (3, 64, 56), (4, 48, 48), (2, 48, 48))  # in running order


class First(torch.nn.Module):
    """The model's first output, its inputs given by position under ``names``."""

    def __init__(self, net: torch.nn.Module, *names: str) -> None:
        super().__init__()
        self.net, self.names = net, names

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        return self.net(**dict(zip(self.names, xs)), return_dict=False)[0]


def dynamic_inputs(names: tuple[str, ...], batch: int, length: int, seed: int) -> dict[str, torch.Tensor]:
    """Inputs of ``batch`` sequences of ``length`` tokens (sequence ``i`` padded on the right by ``i`` tokens, its
    mask zero there), ``length // 2`` decoder tokens (at least 2), 200 frames of 80 mel bins."""
    generator = torch.Generator().manual_seed(seed)
    mask = torch.ones(batch, length, dtype=torch.int64)
    for i in range(batch):
        mask[i, length - i:] = 0
    make = {"input_ids": lambda: torch.randint(0, 512, (batch, length), generator=generator),
            "attention_mask": lambda: mask,
            "decoder_input_ids": lambda: torch.randint(0, 512, (batch, max(2, length // 2)), generator=generator),
            "input_features": lambda: torch.randn(batch, 80, 200, generator=generator),
            "pixel_values": lambda: torch.randn(batch, 3, 64, 64, generator=generator)}
    return {name: make[name]() for name in names}


def export_dynamic(name: str, outdir: str) -> None:
    torch.manual_seed(0)
    make, names = DYNAMIC_MODELS[name]
    net = First(make().eval(), *names).eval()
    batch, seq, dec = (torch.export.Dim("batch", min=1, max=16), torch.export.Dim("seq", min=2, max=60),
                       torch.export.Dim("dec", min=2, max=30))
    dims = {"input_ids": {0: batch, 1: seq}, "attention_mask": {0: batch, 1: seq},
            "decoder_input_ids": {0: batch, 1: dec}, "input_features": {0: batch}, "pixel_values": {0: batch}}
    images = names == ("pixel_values",)
    cases = [(count, 0, f"@{count}") for count in IMAGE_BATCHES] if images else [
        (count, length, f"@{count}x{length}") for count, length in DYNAMIC_CASES]
    stored: dict[str, np.ndarray] = {}
    with torch.no_grad():
        torch.onnx.export(net, tuple(dynamic_inputs(names, 2, 9, 0).values()), os.path.join(outdir, f"{name}.onnx"),
                          input_names=list(names), output_names=["output"], dynamo=True,
                          dynamic_shapes={"xs": tuple(dims[n] for n in names)})
        for count, length, case in cases:
            inputs = dynamic_inputs(names, count, length, 100 * count + length)
            stored[f"output{case}"] = net(*inputs.values()).numpy()
            stored.update({f"input_{n}{case}": x.numpy() for n, x in inputs.items()})
    np.savez(os.path.join(outdir, f"{name}.npz"), **stored)
    print(f"{name}: torch {torch.__version__}, transformers {T.__version__}, dynamo exporter, inputs {list(names)}, "
          f"cases {[case for _, _, case in cases]}")


def export_image_sizes(name: str, outdir: str) -> None:
    torch.manual_seed(0)
    make, exporter = IMAGE_SIZE_MODELS[name]
    net = First(make().eval(), "pixel_values").eval()
    path = os.path.join(outdir, f"{name}.onnx")
    example = (torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0)),)
    with torch.no_grad():
        if exporter == "dynamo":
            dims = {0: torch.export.Dim("batch", min=1, max=16), 2: torch.export.Dim("height", min=32, max=512),
                    3: torch.export.Dim("width", min=32, max=512)}
            torch.onnx.export(net, example, path, input_names=["pixel_values"], output_names=["output"], dynamo=True,
                              dynamic_shapes={"xs": (dims,)})
        else:  # optimum's axes for vision models
            axes = {"pixel_values": {0: "batch_size", 1: "num_channels", 2: "height", 3: "width"},
                    "output": {0: "batch_size"}}
            torch.onnx.export(net, example, path, input_names=["pixel_values"], output_names=["output"], dynamo=False,
                              opset_version=17, dynamic_axes=axes)
        stored: dict[str, np.ndarray] = {}
        for batch, height, width in IMAGE_SIZES:
            case = f"@{batch}x{height}x{width}"
            x = torch.randn(batch, 3, height, width, generator=torch.Generator().manual_seed(batch * height + width))
            stored[f"input_pixel_values{case}"], stored[f"output{case}"] = x.numpy(), net(x).numpy()
    np.savez(os.path.join(outdir, f"{name}.npz"), **stored)
    print(f"{name}: torch {torch.__version__}, transformers {T.__version__}, {exporter} exporter, input pixel_values, "
          f"cases {[f'{b}x{h}x{w}' for b, h, w in IMAGE_SIZES]}")


def export(name: str, outdir: str) -> None:
    torch.manual_seed(0)
    make, input_name, make_input = MODELS[name]
    net = First(make().eval(), input_name).eval()
    x = make_input()
    with torch.no_grad():
        want = net(x)
        torch.onnx.export(net, (x,), os.path.join(outdir, f"{name}.onnx"), input_names=[input_name],
                          output_names=["output"], dynamo=True)
    np.savez(os.path.join(outdir, f"{name}.npz"), output=want.numpy(), **{f"input_{input_name}": x.numpy()})
    print(f"{name}: torch {torch.__version__}, transformers {T.__version__}, dynamo exporter, input {input_name} "
          f"{tuple(x.shape)}")


if __name__ == "__main__":
    for model in MODELS:
        export(model, sys.argv[1])
    for model in DYNAMIC_MODELS:
        export_dynamic(model, sys.argv[1])
    for model in IMAGE_SIZE_MODELS:
        export_image_sizes(model, sys.argv[1])

"""Export small models of four more transformer families: BLOOM (ALiBi position biases added to the scores),
DeBERTa-v2 (disentangled attention: relative position terms gathered into the scores, a where-mask), wav2vec 2.0
(a convolutional feature encoder over raw audio, group norm, a grouped positional convolution) and BEiT (relative
position biases in a vision transformer).

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


MODELS: dict[str, tuple[Callable[[], torch.nn.Module], str, Callable[[], torch.Tensor]]] = {
    "bloom_tiny": (lambda: T.BloomModel(T.BloomConfig(vocab_size=512, hidden_size=64, n_layer=2, n_head=4, **EAGER)),
                   "input_ids", ids),
    "deberta_v2_tiny": (lambda: T.DebertaV2Model(T.DebertaV2Config(**TEXT, **EAGER)), "input_ids", ids),
    "wav2vec2_tiny": (lambda: T.Wav2Vec2Model(T.Wav2Vec2Config(
        hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128, conv_dim=(32, 32),
        conv_stride=(5, 2), conv_kernel=(10, 3), num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4,
        **EAGER)), "input_values", audio),
    "beit_tiny": (lambda: T.BeitModel(T.BeitConfig(image_size=64, patch_size=16, hidden_size=64, num_hidden_layers=2,
                                                   num_attention_heads=4, intermediate_size=128,
                                                   use_relative_position_bias=True, **EAGER)), "pixel_values", image),
}


class First(torch.nn.Module):
    def __init__(self, net: torch.nn.Module, name: str) -> None:
        super().__init__()
        self.net, self.name = net, name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(**{self.name: x}, return_dict=False)[0]


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

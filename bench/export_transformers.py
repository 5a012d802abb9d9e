"""Export full-size transformers to ONNX for ``bench/models.py``: a BERT-base-like encoder, a ViT-B/16-like image
model, a GPT-2-small-like, a Llama-like and a BLOOM-like decoder, a T5-small-like, a Whisper-base-like and a
DeBERTa-v3-base-like encoder, ConvNeXt-tiny and Swin-tiny, built from Hugging Face transformers code with random
weights from a fixed seed.

    /path/to/python-with-torch bench/export_transformers.py OUTDIR [bert] [vit] [gpt2] [llama] [t5] [whisper]
        [convnext] [swin] [gpt2_decode] [llama_decode] [gpt2_decode_static] [gpt2_decode_dynamic]
        [llama_decode_dynamic] [gpt2_decode_batch_dynamic] [gpt2_prompt_dynamic] [llama_prompt_dynamic]
        [bert_prompt_dynamic] [gpt2_batch_dynamic] [llama_batch_dynamic] [bert_batch_dynamic] [bloom] [deberta]
        [--exporter dynamo|torchscript]

Needs torch and transformers (not tcomp's dependencies: ``bench/models.py --export`` runs this script with the
interpreter named by ``--export-python``). Nothing is downloaded. Each model is written as ``NAME.onnx`` (weights in
``NAME.onnx.data`` with the dynamo exporter) with ``NAME.json`` beside it, which records the versions, the
configuration and the inputs, so that a cache made by another version is recognized.

- ``bert``: ``BertModel`` with 12 layers, hidden size 768, 12 heads, feed-forward 3072, at sequence length 128,
  inputs ``input_ids`` and ``attention_mask`` (batch 1);
- ``vit``: ``ViTModel`` with patches of 16 at 224x224, 12 layers, hidden size 768, 12 heads, feed-forward 3072,
  input ``pixel_values`` (batch 1);
- ``gpt2``: ``GPT2Model`` with 12 layers, hidden size 768, 12 heads, feed-forward 3072 (causal attention), at
  sequence length 128, input ``input_ids``;
- ``llama``: ``LlamaModel`` with 12 layers, hidden size 768, 12 query heads sharing 4 key/value heads, a SiLU-gated
  feed-forward of 2048, RMS norms and rotary positions, at sequence length 128, input ``input_ids``;
- ``t5``: ``T5EncoderModel`` with 6 layers, model size 512, 8 heads, feed-forward 2048 (relative position buckets,
  RMS norms), at sequence length 128, input ``input_ids``;
- ``whisper``: Whisper's encoder with 6 layers, model size 512, 8 heads, feed-forward 2048 (two 1-d convolutions,
  then attention over 1500 frames), input ``input_features``: 80 mel bins by 3000 frames (30 s of audio);
- ``convnext``: ``ConvNextModel``, the tiny configuration (stages of 3, 3, 9 and 3 blocks, 96 to 768 channels:
  depthwise 7x7 convolutions, channels-last layer norms, GELU MLPs), input ``pixel_values`` at 224x224;
- ``swin``: ``SwinModel``, the tiny configuration (patches of 4, windows of 7x7, stages of 2, 2, 6 and 2 blocks with
  3 to 24 heads: shifted windows by roll, reshapes and transposes), input ``pixel_values`` at 224x224;
- ``bloom``: ``BloomModel`` with 12 layers, hidden size 768, 12 heads (ALiBi position biases), a vocabulary of
  32000, at sequence length 128, input ``input_ids``;
- ``deberta``: ``DebertaV2Model`` configured as DeBERTa-v3-base (12 layers of 768, 12 heads, feed-forward 3072,
  disentangled relative attention over 256 position buckets), a vocabulary of 32000, at sequence length 128,
  inputs ``input_ids`` and ``attention_mask``;
- ``gpt2_decode`` and ``llama_decode``: one step of generation of the ``gpt2`` and ``llama`` models as served: the
  next token's ``input_ids`` and the key/value cache of the 127 tokens before it (``past.I.key``, ``past.I.value``
  per layer) in, its hidden state and the cache with it appended (``present.I.key``, ``present.I.value``) out;
- ``gpt2_decode_static``: the step of ``gpt2`` over a static cache of 128 positions (``StaticCache``): the token's
  ``input_ids``, its ``cache_position`` and each layer's cache (``cache.I.key``, ``cache.I.value``) in, its hidden
  state and the caches with its keys and values written at that position out; every shape fixed for every step;
- ``gpt2_decode_dynamic`` and ``llama_decode_dynamic``: ``gpt2_decode`` and ``llama_decode`` with the cache length a
  symbolic dimension (1 to 1023), as serving exports leave it (``bench/decode.py`` runs them at several lengths);
- ``gpt2_decode_batch_dynamic``: ``gpt2_decode`` for a batch of sequences, the batch's size (1 to 64) and the
  cache length both symbolic (a server generating for several requests at once);
- ``gpt2_prompt_dynamic``, ``llama_prompt_dynamic`` and ``bert_prompt_dynamic``: ``gpt2``, ``llama`` and ``bert``
  reading a prompt whose length is a symbolic dimension (``seq``, 2 to 1024; to 512 for BERT), as serving exports
  leave it (``bench/decode.py --models ...`` runs them);
- ``gpt2_batch_dynamic``, ``llama_batch_dynamic`` and ``bert_batch_dynamic``: ``gpt2``, ``llama`` and ``bert``
  reading a batch of prompts whose size and length are symbolic dimensions (``batch``, 1 to 64, and ``seq``), as
  optimum exports them.

Attention is the library's eager implementation (the operator graph users export: MatMul, Softmax, MatMul).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

SEED = 0
SEQUENCE = 128
LAYERS = 12
HIDDEN = 768
HEADS = 12
FFN = 3072


def _token_ids(torch: Any, vocab: int) -> Any:
    """A batch of one sequence of ``SEQUENCE`` random token ids below ``vocab``, the same for a seed."""
    return torch.randint(0, vocab, (1, SEQUENCE), generator=torch.Generator().manual_seed(SEED))


def _normal(torch: Any, *shape: int) -> Any:
    """Standard normal values of ``shape`` (images, audio features), the same for a seed."""
    return torch.randn(*shape, generator=torch.Generator().manual_seed(SEED))


def bert(transformers: Any, torch: Any) -> tuple[Any, tuple[Any, ...], list[str], dict[str, Any]]:
    config = transformers.BertConfig(hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
                                     intermediate_size=FFN, attn_implementation="eager")
    net = transformers.BertModel(config, add_pooling_layer=False).eval()
    ids = _token_ids(torch, config.vocab_size)
    mask = torch.ones(1, SEQUENCE, dtype=torch.long)
    return net, (ids, mask), ["input_ids", "attention_mask"], config.to_dict()


def vit(transformers: Any, torch: Any) -> tuple[Any, tuple[Any, ...], list[str], dict[str, Any]]:
    config = transformers.ViTConfig(image_size=224, patch_size=16, hidden_size=HIDDEN, num_hidden_layers=LAYERS,
                                    num_attention_heads=HEADS, intermediate_size=FFN, attn_implementation="eager")
    net = transformers.ViTModel(config, add_pooling_layer=False).eval()
    pixels = _normal(torch, 1, 3, 224, 224)
    return net, (pixels,), ["pixel_values"], config.to_dict()


def gpt2(transformers: Any, torch: Any) -> tuple[Any, tuple[Any, ...], list[str], dict[str, Any]]:
    config = transformers.GPT2Config(n_embd=HIDDEN, n_layer=LAYERS, n_head=HEADS, n_inner=FFN, n_positions=1024,
                                     attn_implementation="eager", use_cache=False)
    net = transformers.GPT2Model(config).eval()
    ids = _token_ids(torch, config.vocab_size)
    return net, (ids,), ["input_ids"], config.to_dict()


def convnext(transformers: Any, torch: Any) -> tuple[Any, tuple[Any, ...], list[str], dict[str, Any]]:
    config = transformers.ConvNextConfig(image_size=224, depths=[3, 3, 9, 3], hidden_sizes=[96, 192, 384, 768])
    net = transformers.ConvNextModel(config).eval()
    pixels = _normal(torch, 1, 3, 224, 224)
    return net, (pixels,), ["pixel_values"], config.to_dict()


def llama(transformers: Any, torch: Any) -> tuple[Any, tuple[Any, ...], list[str], dict[str, Any]]:
    config = transformers.LlamaConfig(hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
                                      num_key_value_heads=HEADS // 3, intermediate_size=2048, vocab_size=32000,
                                      attn_implementation="eager", use_cache=False)
    net = transformers.LlamaModel(config).eval()
    ids = _token_ids(torch, config.vocab_size)
    return net, (ids,), ["input_ids"], config.to_dict()


def swin(transformers: Any, torch: Any) -> tuple[Any, tuple[Any, ...], list[str], dict[str, Any]]:
    config = transformers.SwinConfig(image_size=224, patch_size=4, embed_dim=96, depths=[2, 2, 6, 2],
                                     num_heads=[3, 6, 12, 24], window_size=7, attn_implementation="eager")
    net = transformers.SwinModel(config, add_pooling_layer=False).eval()
    pixels = _normal(torch, 1, 3, 224, 224)
    return net, (pixels,), ["pixel_values"], config.to_dict()


def t5(transformers: Any, torch: Any) -> tuple[Any, tuple[Any, ...], list[str], dict[str, Any]]:
    config = transformers.T5Config(d_model=512, d_kv=64, d_ff=2048, num_layers=6, num_heads=8, use_cache=False)
    net = transformers.T5EncoderModel(config).eval()
    ids = _token_ids(torch, config.vocab_size)
    return net, (ids,), ["input_ids"], config.to_dict()


def whisper(transformers: Any, torch: Any) -> tuple[Any, tuple[Any, ...], list[str], dict[str, Any]]:
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    config = transformers.WhisperConfig(d_model=512, encoder_layers=6, encoder_attention_heads=8,
                                        encoder_ffn_dim=2048, num_mel_bins=80, max_source_positions=1500,
                                        attn_implementation="eager")
    net = WhisperEncoder(config).eval()
    features = _normal(torch, 1, 80, 3000)
    return net, (features,), ["input_features"], config.to_dict()


def bloom(transformers: Any, torch: Any) -> tuple[Any, tuple[Any, ...], list[str], dict[str, Any]]:
    config = transformers.BloomConfig(vocab_size=32000, hidden_size=HIDDEN, n_layer=LAYERS, n_head=HEADS,
                                      attn_implementation="eager")
    net = transformers.BloomModel(config).eval()
    return net, (_token_ids(torch, config.vocab_size),), ["input_ids"], config.to_dict()


def deberta(transformers: Any, torch: Any) -> tuple[Any, tuple[Any, ...], list[str], dict[str, Any]]:
    config = transformers.DebertaV2Config(vocab_size=32000, hidden_size=HIDDEN, num_hidden_layers=LAYERS,
                                          num_attention_heads=HEADS, intermediate_size=FFN, relative_attention=True,
                                          pos_att_type=["p2c", "c2p"], position_buckets=256,
                                          max_relative_positions=-1, norm_rel_ebd="layer_norm", share_att_key=True,
                                          attn_implementation="eager")
    net = transformers.DebertaV2Model(config).eval()
    ids = _token_ids(torch, config.vocab_size)
    mask = torch.ones(1, SEQUENCE, dtype=torch.long)
    return net, (ids, mask), ["input_ids", "attention_mask"], config.to_dict()


def decode_step(transformers: Any, torch: Any, net: Any, layers: int, masked: bool = False) -> Any:
    """``net`` (a transformers decoder of ``layers`` layers) as one step of generation: ``(ids, *past)`` in, where
    ``past`` is each layer's key and value cache in turn, the token's hidden state and each layer's cache with it
    appended out (``output_names``). ``masked``: ``(ids, mask, *past)`` in, the attention mask over the cache and
    the token (``[batch, past + 1]``) as optimum exports a step. Also used by
    ``tests/data/hf_models/export_decode.py``."""

    class DecodeStep(torch.nn.Module):
        output_names = ["output"] + [f"present.{i}.{kind}" for i in range(layers) for kind in ("key", "value")]

        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def forward(self, ids: Any, *past: Any) -> Any:
            return self.step(ids, None, past)

        def step(self, ids: Any, mask: Any, past: Any) -> Any:
            cache = transformers.DynamicCache()
            for layer in range(layers):
                cache.update(past[2 * layer], past[2 * layer + 1], layer)
            result = self.net(input_ids=ids, attention_mask=mask, past_key_values=cache, use_cache=True,
                              return_dict=True)
            present = [t for layer in result.past_key_values.layers for t in (layer.keys, layer.values)]
            return (result.last_hidden_state, *present)

    class MaskedDecodeStep(DecodeStep):
        def forward(self, ids: Any, mask: Any, *past: Any) -> Any:
            return self.step(ids, mask, past)

    return (MaskedDecodeStep if masked else DecodeStep)().eval()


def static_decode_step(transformers: Any, torch: Any, net: Any, layers: int, length: int) -> Any:
    """``net`` as one step of generation over a static cache (``transformers.StaticCache``): ``(ids, position,
    *cache)`` in, where ``cache`` holds each layer's keys and values for ``length`` positions and ``position`` (one
    int64) is where the token goes; the token's hidden state and the caches with its keys and values written at
    ``position`` out. Every shape is fixed, whatever the position: such a model compiles once for every step.
    Attention reads positions up to ``position`` (a mask computed from it). Also used by
    ``tests/data/hf_models/export_decode.py``."""

    class StaticDecodeStep(torch.nn.Module):
        output_names = ["output"] + [f"present.{i}.{kind}" for i in range(layers) for kind in ("key", "value")]

        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def forward(self, ids: Any, position: Any, *cache: Any) -> Any:
            static = transformers.StaticCache(config=net.config, max_cache_len=length)
            for layer, keys, values in zip(static.layers, cache[0::2], cache[1::2]):
                layer.lazy_initialization(keys, values)
                layer.keys, layer.values = keys.clone(), values.clone()  # written in place: not the inputs
                layer.cumulative_length = position.clone()  # where the layer writes the token
                layer.is_initialized = True
            mask = (torch.arange(length)[None, :] <= position[:, None]).to(torch.long)
            result = self.net(input_ids=ids, past_key_values=static, use_cache=True, cache_position=position,
                              position_ids=position[None], attention_mask=mask, return_dict=True)
            return (result.last_hidden_state, *[t for layer in static.layers for t in (layer.keys, layer.values)])

    return StaticDecodeStep().eval()


def _decode_step(transformers: Any, torch: Any, net: Any, vocab: int, layers: int, kv_heads: int,
                 head_dim: int) -> tuple[Any, tuple[Any, ...], list[str]]:
    """One step of generation as exported for serving: the next token's id and the key/value cache of the
    ``SEQUENCE - 1`` tokens before it in, the token's hidden state and the cache with it appended out."""
    ids = torch.randint(0, vocab, (1, 1), generator=torch.Generator().manual_seed(SEED))
    generator = torch.Generator().manual_seed(SEED)
    past = tuple(torch.randn(1, kv_heads, SEQUENCE - 1, head_dim, generator=generator) for _ in range(2 * layers))
    names = ["input_ids"] + [f"past.{i}.{kind}" for i in range(layers) for kind in ("key", "value")]
    return decode_step(transformers, torch, net, layers), (ids, *past), names


def gpt2_decode(transformers: Any, torch: Any) -> tuple[Any, tuple[Any, ...], list[str], dict[str, Any]]:
    config = transformers.GPT2Config(n_embd=HIDDEN, n_layer=LAYERS, n_head=HEADS, n_inner=FFN, n_positions=1024,
                                     attn_implementation="eager")
    net = transformers.GPT2Model(config).eval()
    step, inputs, names = _decode_step(transformers, torch, net, config.vocab_size, LAYERS, HEADS, HIDDEN // HEADS)
    return step, inputs, names, config.to_dict()


def _cache_length_symbolic(torch: Any, step: tuple[Any, tuple[Any, ...], list[str], dict[str, Any]]) -> Any:
    """A decoding step (as ``gpt2_decode`` returns it) whose cache length is a symbolic dimension, ``past``."""
    module, inputs, names, config = step
    past = torch.export.Dim("past", min=1, max=1023)
    module.dynamic_shapes = {"ids": None, "past": tuple({2: past} for _ in inputs[1:])}
    return module, inputs, names, config


def _batch_and_cache_symbolic(torch: Any, step: tuple[Any, tuple[Any, ...], list[str], dict[str, Any]]) -> Any:
    """A decoding step (as ``gpt2_decode`` returns it) for a batch of sequences whose size and cache length are
    symbolic dimensions, ``batch`` (1 to 64) and ``past``: a server's batched generation."""
    module, inputs, names, config = step
    batch, past = torch.export.Dim("batch", min=1, max=64), torch.export.Dim("past", min=1, max=1023)
    module.dynamic_shapes = {"ids": {0: batch}, "past": tuple({0: batch, 2: past} for _ in inputs[1:])}
    inputs = tuple(torch.cat([x, x.flip(0)]) for x in inputs)  # two sequences: a batch of one fixes the size at 1
    return module, inputs, names, config


def gpt2_decode_batch_dynamic(transformers: Any, torch: Any) -> tuple[Any, tuple[Any, ...], list[str], dict[str, Any]]:
    return _batch_and_cache_symbolic(torch, gpt2_decode(transformers, torch))


def gpt2_decode_dynamic(transformers: Any, torch: Any) -> tuple[Any, tuple[Any, ...], list[str], dict[str, Any]]:
    return _cache_length_symbolic(torch, gpt2_decode(transformers, torch))


def llama_decode_dynamic(transformers: Any, torch: Any) -> tuple[Any, tuple[Any, ...], list[str], dict[str, Any]]:
    return _cache_length_symbolic(torch, llama_decode(transformers, torch))


def _prompt_length_symbolic(torch: Any, model: tuple[Any, tuple[Any, ...], list[str], dict[str, Any]],
                            longest: int) -> Any:
    """A model reading a prompt (``input_ids``, and an ``attention_mask`` where it takes one: as ``gpt2`` or
    ``bert`` returns it) whose length is a symbolic dimension, ``seq`` (2 to ``longest``)."""
    net, inputs, names, config = model
    seq = torch.export.Dim("seq", min=2, max=longest)
    net.dynamic_shapes = {"xs": tuple({1: seq} for _ in inputs)}  # the arguments of ``export``'s FirstOutput
    return net, inputs, names, config


def _batch_and_length_symbolic(torch: Any, model: tuple[Any, tuple[Any, ...], list[str], dict[str, Any]],
                               longest: int) -> Any:
    """A model reading a batch of prompts (as ``gpt2`` or ``bert`` returns it) whose batch size and length are
    symbolic dimensions, ``batch`` (1 to 64) and ``seq`` (2 to ``longest``), as optimum exports them."""
    net, inputs, names, config = model
    batch, seq = torch.export.Dim("batch", min=1, max=64), torch.export.Dim("seq", min=2, max=longest)
    net.dynamic_shapes = {"xs": tuple({0: batch, 1: seq} for _ in inputs)}
    inputs = tuple(torch.cat([x, x.flip(1)]) for x in inputs)  # two prompts: a batch of one fixes the size at 1
    return net, inputs, names, config


def gpt2_batch_dynamic(transformers: Any, torch: Any) -> tuple[Any, tuple[Any, ...], list[str], dict[str, Any]]:
    return _batch_and_length_symbolic(torch, gpt2(transformers, torch), 1024)


def llama_batch_dynamic(transformers: Any, torch: Any) -> tuple[Any, tuple[Any, ...], list[str], dict[str, Any]]:
    return _batch_and_length_symbolic(torch, llama(transformers, torch), 1024)


def bert_batch_dynamic(transformers: Any, torch: Any) -> tuple[Any, tuple[Any, ...], list[str], dict[str, Any]]:
    return _batch_and_length_symbolic(torch, bert(transformers, torch), 512)


def gpt2_prompt_dynamic(transformers: Any, torch: Any) -> tuple[Any, tuple[Any, ...], list[str], dict[str, Any]]:
    return _prompt_length_symbolic(torch, gpt2(transformers, torch), 1024)


def llama_prompt_dynamic(transformers: Any, torch: Any) -> tuple[Any, tuple[Any, ...], list[str], dict[str, Any]]:
    return _prompt_length_symbolic(torch, llama(transformers, torch), 1024)


def bert_prompt_dynamic(transformers: Any, torch: Any) -> tuple[Any, tuple[Any, ...], list[str], dict[str, Any]]:
    return _prompt_length_symbolic(torch, bert(transformers, torch), 512)


def gpt2_decode_static(transformers: Any, torch: Any) -> tuple[Any, tuple[Any, ...], list[str], dict[str, Any]]:
    config = transformers.GPT2Config(n_embd=HIDDEN, n_layer=LAYERS, n_head=HEADS, n_inner=FFN, n_positions=1024,
                                     attn_implementation="eager")
    net = transformers.GPT2Model(config).eval()
    ids = torch.randint(0, config.vocab_size, (1, 1), generator=torch.Generator().manual_seed(SEED))
    generator = torch.Generator().manual_seed(SEED)
    cache = tuple(torch.randn(1, HEADS, SEQUENCE, HIDDEN // HEADS, generator=generator) for _ in range(2 * LAYERS))
    position = torch.tensor([SEQUENCE - 1])
    names = ["input_ids", "cache_position"] + [f"cache.{i}.{kind}" for i in range(LAYERS) for kind in ("key", "value")]
    step = static_decode_step(transformers, torch, net, LAYERS, SEQUENCE)
    return step, (ids, position, *cache), names, config.to_dict()


def llama_decode(transformers: Any, torch: Any) -> tuple[Any, tuple[Any, ...], list[str], dict[str, Any]]:
    config = transformers.LlamaConfig(hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
                                      num_key_value_heads=HEADS // 3, intermediate_size=2048, vocab_size=32000,
                                      attn_implementation="eager")
    net = transformers.LlamaModel(config).eval()
    step, inputs, names = _decode_step(transformers, torch, net, config.vocab_size, LAYERS, HEADS // 3,
                                       HIDDEN // HEADS)
    return step, inputs, names, config.to_dict()


MODELS = {"bert": bert, "vit": vit, "gpt2": gpt2, "convnext": convnext, "llama": llama, "swin": swin, "t5": t5,
          "whisper": whisper, "gpt2_decode": gpt2_decode, "llama_decode": llama_decode,
          "gpt2_decode_static": gpt2_decode_static, "gpt2_decode_dynamic": gpt2_decode_dynamic,
          "gpt2_decode_batch_dynamic": gpt2_decode_batch_dynamic,
          "llama_decode_dynamic": llama_decode_dynamic, "gpt2_prompt_dynamic": gpt2_prompt_dynamic,
          "llama_prompt_dynamic": llama_prompt_dynamic, "bert_prompt_dynamic": bert_prompt_dynamic,
          "gpt2_batch_dynamic": gpt2_batch_dynamic, "llama_batch_dynamic": llama_batch_dynamic,
          "bert_batch_dynamic": bert_batch_dynamic, "bloom": bloom,
          "deberta": deberta}


def export(name: str, outdir: str, exporter: str) -> None:
    import torch
    import transformers

    torch.manual_seed(SEED)
    net, inputs, names, config = MODELS[name](transformers, torch)

    class FirstOutput(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def forward(self, *xs: Any) -> Any:
            return self.net(**dict(zip(names, xs)), return_dict=False)[0]

    path = os.path.join(outdir, f"{name}.onnx")
    dynamo = exporter == "dynamo"
    options: dict[str, Any] = {} if dynamo else {"opset_version": 17}
    if dynamo and hasattr(net, "dynamic_shapes"):  # symbolic dimensions (a cache length, a prompt length)
        options["dynamic_shapes"] = net.dynamic_shapes
    # a decoding step names its outputs (the hidden state and the cache); a model, its first output
    module, outputs = (net, net.output_names) if hasattr(net, "output_names") else (FirstOutput().eval(), ["output"])
    with torch.no_grad():
        torch.onnx.export(module, inputs, path, input_names=names, output_names=outputs, dynamo=dynamo, **options)
    description = {
        "model": name, "exporter": exporter, "torch": torch.__version__, "transformers": transformers.__version__,
        "inputs": [[n, list(t.shape), str(t.dtype).replace("torch.", "")] for n, t in zip(names, inputs)],
        "config": {k: v for k, v in config.items() if isinstance(v, (int, float, str, bool))},
    }
    with open(os.path.join(outdir, f"{name}.json"), "w") as handle:
        json.dump(description, handle, indent=1)
    print(f"{name}: {path} ({exporter} exporter)", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("outdir")
    parser.add_argument("names", nargs="*", help=f"models to export (default: all of {list(MODELS)})")
    parser.add_argument("--exporter", choices=["dynamo", "torchscript"], default="dynamo")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.names) - set(MODELS))
    if unknown:
        parser.error(f"unknown models {unknown}; models: {list(MODELS)}")
    os.makedirs(args.outdir, exist_ok=True)
    for name in args.names or list(MODELS):
        export(name, args.outdir, args.exporter)
    return 0


if __name__ == "__main__":
    sys.exit(main())

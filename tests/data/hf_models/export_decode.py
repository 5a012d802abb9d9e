"""Export one step of generation of the small GPT-2 and Llama decoders (``gpt2_decode_tiny``, ``llama_decode_tiny``).

The decoders have the configurations of ``gpt2_tiny`` and ``llama_tiny``. A step is the graph a server runs for each
new token: the token's ``input_ids`` (1 x 1) and the key/value cache of the 31 tokens before it (``past.I.key``,
``past.I.value`` per layer: 1 x heads x 31 x head size) in; the token's hidden state (``output``) and the cache with
it appended (``present.I.key``, ``present.I.value``: 32 positions) out. ``gpt2_decode_dynamic_tiny`` and
``llama_decode_dynamic_tiny`` are the same steps with the cache length a symbolic dimension, as serving exports
leave it; their ``.npz`` holds inputs and outputs at three lengths (``DYNAMIC_LENGTHS``). ``gpt2_decode_static_tiny``
is GPT-2's step over a static cache of 32 positions, with cases at three positions (``STATIC_POSITIONS``);
``gpt2_decode_batch_dynamic_tiny`` GPT-2's step for a batch of sequences, the batch's size and the cache length
symbolic, with cases at ``BATCH_STEPS``; ``llama_decode_masked_dynamic_tiny`` Llama's, with the attention mask of
``[batch, past + 1]`` that optimum exports (the sequences padded on the left), at the same cases.
``gpt2_prompt_dynamic_tiny`` is a one-layer GPT-2 wide enough for the packed GEMM (``PROMPT_WIDTH``) reading a prompt
(``input_ids``) whose length is a symbolic dimension, with cases at ``PROMPT_LENGTHS``; ``gpt2_batch_dynamic_tiny``
the same model reading a batch of prompts whose size and length are both symbolic (with their attention mask), with
cases at ``BATCH_CASES``. Needs
torch and transformers (random weights from a fixed seed; nothing is downloaded). Writes ``NAME.onnx`` (weights in
``NAME.onnx.data``) and ``NAME.npz``: the inputs as ``input_<name>`` and PyTorch's outputs under their names.

    python tests/data/hf_models/export_decode.py OUTDIR
"""

import os
import sys
from pathlib import Path

import numpy as np
import torch
import transformers

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "bench"))
from export_transformers import decode_step, static_decode_step  # noqa: E402  (the steps the benchmark exports)

PAST = 31
LAYERS = 2
DYNAMIC_LENGTHS = (5, 6, 31)  # the cache lengths stored for the exports whose cache length is symbolic
# (batch, cache length) of the cases stored for the step whose batch and cache length are symbolic, in running order
BATCH_STEPS = ((2, 5), (3, 6), (4, 31), (1, 6), (1, 9), (2, 40))
STATIC_POSITIONS = (5, 6, 31)  # the token's positions stored for the step over a static cache
PROMPT_WIDTH = 288  # the prompt model's hidden size: its products take the packed GEMM for any prompt length
PROMPT_LENGTHS = (5, 6, 31, 100)  # the prompt lengths stored for the export whose prompt length is symbolic
# (batch, length) of the cases stored for the export whose batch and length are symbolic, in the order they run
BATCH_CASES = ((2, 5), (3, 7), (4, 31), (1, 6), (1, 9), (2, 100), (1, 50))


def gpt2() -> tuple[torch.nn.Module, int, int]:
    config = transformers.GPT2Config(vocab_size=512, n_embd=64, n_layer=LAYERS, n_head=4, n_positions=64,
                                     attn_implementation="eager")
    return transformers.GPT2Model(config).eval(), 4, 16


def llama() -> tuple[torch.nn.Module, int, int]:
    config = transformers.LlamaConfig(vocab_size=512, hidden_size=64, intermediate_size=172, num_hidden_layers=LAYERS,
                                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                                      attn_implementation="eager")
    return transformers.LlamaModel(config).eval(), 2, 16


def _step_inputs(kv_heads: int, head_size: int, past_length: int, seed: int, batch: int = 1,
                 masked: bool = False) -> tuple[torch.Tensor, ...]:
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, 512, (batch, 1), generator=generator)
    past = [torch.randn(batch, kv_heads, past_length, head_size, generator=generator) for _ in range(2 * LAYERS)]
    if not masked:
        return (ids, *past)
    mask = torch.ones(batch, past_length + 1, dtype=torch.int64)
    for i in range(batch):
        mask[i, :min(i, past_length)] = 0  # sequence i of a batch padded on the left by i tokens
    return (ids, mask, *past)


def export(name: str, make: object, outdir: str, dynamic_lengths: tuple[int, ...] = (),
           batches: tuple[int, ...] = (), masked: bool = False) -> None:
    """``dynamic_lengths``: export the cache length as a symbolic dimension (``past``) and store PyTorch's inputs
    and outputs at each of these lengths, as ``input_<name>@<length>`` and ``<name>@<length>``; with ``batches``
    (one per length), the batch's size a symbolic dimension too (``batch``), the cases named
    ``@<batch>x<length>``. ``masked``: the step takes an ``attention_mask`` of ``[batch, past + 1]`` too (the
    sequences of a batch padded on the left), as optimum exports it."""
    torch.manual_seed(0)
    net, kv_heads, head_size = make()  # type: ignore[operator]
    example = _step_inputs(kv_heads, head_size, PAST, 1, 2 if batches else 1, masked)
    cache_names = [f"{i}.{kind}" for i in range(LAYERS) for kind in ("key", "value")]
    inputs = ["input_ids"] + (["attention_mask"] if masked else []) + [f"past.{n}" for n in cache_names]
    step = decode_step(transformers, torch, net, LAYERS, masked)
    outputs = step.output_names
    options = {}
    if dynamic_lengths:
        past = torch.export.Dim("past", min=1, max=63)
        batch = {0: torch.export.Dim("batch", min=1, max=16)} if batches else {}
        shapes = {"ids": batch or None, "mask": {**batch, 1: past + 1}}  # in the order of the step's arguments
        options["dynamic_shapes"] = {**{k: v for k, v in shapes.items() if masked or k == "ids"},
                                     "past": tuple({**batch, 2: past} for _ in cache_names)}
    stored: dict[str, np.ndarray] = {}
    with torch.no_grad():
        torch.onnx.export(step, example, os.path.join(outdir, f"{name}.onnx"), input_names=inputs,
                          output_names=outputs, dynamo=True, **options)
        for length, count in zip(dynamic_lengths or (PAST,), batches or (1,) * len(dynamic_lengths or (PAST,))):
            step_inputs = _step_inputs(kv_heads, head_size, length, 1 + length, count, masked) \
                if dynamic_lengths else example
            case = (f"@{count}x{length}" if batches else f"@{length}") if dynamic_lengths else ""
            _store_case(stored, step, inputs, step_inputs, case)
    _save(outdir, name, stored)


def export_static(name: str, make: object, outdir: str) -> None:
    """The step over a static cache of ``PAST + 1`` positions (``static_decode_step``: the token's id, its
    ``cache_position`` and each layer's cache in; every shape fixed): PyTorch's inputs and outputs with the token at
    each of ``STATIC_POSITIONS``, stored as ``input_<name>@<position>`` and ``<name>@<position>``."""
    torch.manual_seed(0)
    net, kv_heads, head_size = make()  # type: ignore[operator]
    step = static_decode_step(transformers, torch, net, LAYERS, PAST + 1)
    inputs = ["input_ids", "cache_position"] + [f"cache.{i}.{kind}" for i in range(LAYERS) for kind in ("key", "value")]
    stored: dict[str, np.ndarray] = {}
    with torch.no_grad():
        for position in STATIC_POSITIONS:
            ids, *cache = _step_inputs(kv_heads, head_size, PAST + 1, 1 + position)
            step_inputs = (ids, torch.tensor([position]), *cache)
            if not stored:
                torch.onnx.export(step, step_inputs, os.path.join(outdir, f"{name}.onnx"), input_names=inputs,
                                  output_names=step.output_names, dynamo=True)
            _store_case(stored, step, inputs, step_inputs, f"@{position}")
    _save(outdir, name, stored)


def _prompt_model() -> torch.nn.Module:
    """The one-layer GPT-2 of ``PROMPT_WIDTH`` (random weights from seed 0) reading ``input_ids`` (and an
    ``attention_mask`` where one is given), its hidden states out."""
    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=256, n_embd=PROMPT_WIDTH, n_layer=1, n_head=4, n_positions=128,
                                     attn_implementation="eager", use_cache=False)
    net = transformers.GPT2Model(config).eval()

    class Prompt(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = net
            self.output_names = ["output"]

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                    ) -> tuple[torch.Tensor]:
            return (self.net(input_ids=input_ids, attention_mask=attention_mask, return_dict=False)[0],)

    return Prompt().eval()


def export_prompt(name: str, outdir: str) -> None:
    """``_prompt_model`` reading a prompt of symbolic length (``seq``, 2 to 127): PyTorch's inputs and outputs at
    each of ``PROMPT_LENGTHS``, as ``input_input_ids@<length>`` and ``output@<length>``."""
    prompt = _prompt_model()
    stored: dict[str, np.ndarray] = {}
    with torch.no_grad():
        for length in PROMPT_LENGTHS:
            ids = torch.randint(0, 256, (1, length), generator=torch.Generator().manual_seed(length))
            if not stored:
                seq = torch.export.Dim("seq", min=2, max=127)
                torch.onnx.export(prompt, (ids,), os.path.join(outdir, f"{name}.onnx"), input_names=["input_ids"],
                                  output_names=prompt.output_names, dynamo=True,
                                  dynamic_shapes={"input_ids": {1: seq}})
            _store_case(stored, prompt, ["input_ids"], (ids,), f"@{length}")
    _save(outdir, name, stored)


def export_batch(name: str, outdir: str) -> None:
    """``_prompt_model`` reading a batch of prompts padded on the right (``input_ids`` and
    ``attention_mask``) whose batch size and length are symbolic dimensions (``batch``, 1 to 16, and ``seq``, 2 to
    127), as optimum exports them: PyTorch's inputs and outputs at each of ``BATCH_CASES``, as
    ``input_input_ids@<batch>x<length>``, ``input_attention_mask@...`` and ``output@...``."""
    prompts = _prompt_model()
    stored: dict[str, np.ndarray] = {}
    with torch.no_grad():
        for batch, length in BATCH_CASES:
            generator = torch.Generator().manual_seed(batch * 1000 + length)
            ids = torch.randint(0, 256, (batch, length), generator=generator)
            kept = torch.randint(1, length + 1, (batch,), generator=generator)  # each prompt's own length
            mask = (torch.arange(length)[None, :] < kept[:, None]).to(torch.int64)
            if not stored:
                dims = {0: torch.export.Dim("batch", min=1, max=16), 1: torch.export.Dim("seq", min=2, max=127)}
                torch.onnx.export(prompts, (ids, mask), os.path.join(outdir, f"{name}.onnx"),
                                  input_names=["input_ids", "attention_mask"], output_names=prompts.output_names,
                                  dynamo=True, dynamic_shapes={"input_ids": dims, "attention_mask": dims})
            _store_case(stored, prompts, ["input_ids", "attention_mask"], (ids, mask), f"@{batch}x{length}")
    _save(outdir, name, stored)


def _store_case(stored: dict[str, np.ndarray], step: torch.nn.Module, inputs: list[str],
                step_inputs: tuple[torch.Tensor, ...], suffix: str) -> None:
    stored.update({f"input_{n}{suffix}": a.numpy() for n, a in zip(inputs, step_inputs)})
    stored.update({f"{n}{suffix}": a.numpy() for n, a in zip(step.output_names, step(*step_inputs))})


def _save(outdir: str, name: str, stored: dict[str, np.ndarray]) -> None:
    np.savez(os.path.join(outdir, f"{name}.npz"), **stored)
    print(f"{name}: torch {torch.__version__}, transformers {transformers.__version__}, dynamo exporter")


if __name__ == "__main__":
    export("gpt2_decode_tiny", gpt2, sys.argv[1])
    export("llama_decode_tiny", llama, sys.argv[1])
    export("gpt2_decode_dynamic_tiny", gpt2, sys.argv[1], DYNAMIC_LENGTHS)
    export("llama_decode_dynamic_tiny", llama, sys.argv[1], DYNAMIC_LENGTHS)
    export("gpt2_decode_batch_dynamic_tiny", gpt2, sys.argv[1], tuple(n for _, n in BATCH_STEPS),
           tuple(b for b, _ in BATCH_STEPS))
    export("llama_decode_masked_dynamic_tiny", llama, sys.argv[1], tuple(n for _, n in BATCH_STEPS),
           tuple(b for b, _ in BATCH_STEPS), masked=True)
    export_static("gpt2_decode_static_tiny", gpt2, sys.argv[1])
    export_prompt("gpt2_prompt_dynamic_tiny", sys.argv[1])
    export_batch("gpt2_batch_dynamic_tiny", sys.argv[1])

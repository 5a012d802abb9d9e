"""The models of the GPU benchmark, built by PyTorch and exported to ONNX where they are timed (needs torch,
torchvision and transformers; nothing is downloaded: weights are random from a fixed seed), and the run of one
model: export, compile with tcomp for cuda, check against PyTorch, time both as CUDA graphs.

Each ``ModelSpec`` makes a PyTorch module in eval mode and its example inputs: torchvision's ResNet-50,
MobileNetV3-small, ShuffleNetV2, RegNetY-400MF, EfficientNet-B0, DenseNet-121, SqueezeNet 1.1, ConvNeXt-tiny and
ViT-B/16 at 224x224, and Hugging Face encoders built from their configs: BERT-base and GPT-2 (124M) on 128 tokens.
``export`` writes ``NAME.onnx`` (weights in ``NAME.onnx.data`` when the exporter puts them there) and ``NAME.npz``
(the inputs as ``input_<name>``, PyTorch's float32 output on the CPU as ``output``).

``run_model`` (``--run NAME``, what ``bench/gpu.py`` starts once per model, in parallel) exports the model, compiles
it with ``tcomp.graph.compile(target="cuda")``, checks tcomp's output against PyTorch's (relative error: max
|difference| / max |PyTorch|), then, holding the GPU lock (a file lock, so no other model's kernels run meanwhile),
times PyTorch's kernels captured as a CUDA graph (TF32 off, cuDNN autotuned) and tcomp's kernels replayed as a CUDA
graph, round after round, with CUDA events; it appends one JSON line to ``--result``. Without a GPU it stops after
the compilation (the export and the compiler's path checked, nothing run).

    python bench/gpu_models.py --out DIR [--models resnet50 vit_b_16 ...] [--batch 1]      (exports only)
    python bench/gpu_models.py --run NAME --out DIR --result FILE [--lock FILE] [--rounds 20] [--number 5]
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

IMAGE = (3, 224, 224)
TOKENS = 128


@dataclass(frozen=True)
class ModelSpec:
    name: str
    make: Callable[[], Any]  # () -> torch.nn.Module
    kind: str  # "image" or "tokens"
    dynamo: bool = False  # export with torch.onnx.export(dynamo=True) (the TorchScript exporter fails on some)
    vocab: int = 0


def _torchvision(name: str, **kwargs: Any) -> Callable[[], Any]:
    def make() -> Any:
        import torchvision

        return getattr(torchvision.models, name)(weights=None, **kwargs)

    return make


def _segmentation(name: str) -> Callable[[], Any]:
    """A torchvision segmentation model giving its ``out`` map alone (the module returns a dict)."""

    def make() -> Any:
        import torch
        import torchvision

        inner = getattr(torchvision.models.segmentation, name)(weights=None, weights_backbone=None)

        class Segmentation(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.inner = inner

            def forward(self, image: Any) -> Any:
                return self.inner(image)["out"]

        return Segmentation()

    return make


def _bert() -> Any:
    import transformers

    config = transformers.BertConfig(attn_implementation="eager")
    return _Encoder(transformers.BertModel(config, add_pooling_layer=False), causal=False, token_types=True)


def _gpt2() -> Any:
    import transformers

    config = transformers.GPT2Config(attn_implementation="eager", use_cache=False)
    return _Encoder(transformers.GPT2Model(config), causal=True, token_types=False)


def _Encoder(inner: Any, causal: bool, token_types: bool) -> Any:  # noqa: N802 - builds a torch module class
    """A Hugging Face encoder on ``TOKENS`` tokens giving its ``last_hidden_state``: the attention mask (zeros, or
    the causal mask), the positions and the token types are constant buffers, so the export holds the model's
    arithmetic and not the code that would build them from a padding mask."""
    import torch

    class Encoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = inner
            mask = torch.zeros(1, 1, TOKENS, TOKENS)
            if causal:
                mask = torch.triu(torch.full((TOKENS, TOKENS), torch.finfo(torch.float32).min), 1)[None, None]
            self.register_buffer("mask", mask)
            self.register_buffer("positions", torch.arange(TOKENS).unsqueeze(0))
            self.register_buffer("token_types", torch.zeros(1, TOKENS, dtype=torch.int64))

        def forward(self, input_ids: Any) -> Any:
            extra = {"token_type_ids": self.token_types} if token_types else {}
            return self.inner(input_ids=input_ids, attention_mask=self.mask, position_ids=self.positions,
                              **extra).last_hidden_state

    return Encoder()


MODELS: dict[str, ModelSpec] = {spec.name: spec for spec in (
    ModelSpec("resnet50", _torchvision("resnet50"), "image"),
    ModelSpec("mobilenet_v3_small", _torchvision("mobilenet_v3_small"), "image"),
    ModelSpec("shufflenet_v2_x1_0", _torchvision("shufflenet_v2_x1_0"), "image"),
    ModelSpec("regnet_y_400mf", _torchvision("regnet_y_400mf"), "image"),
    ModelSpec("efficientnet_b0", _torchvision("efficientnet_b0"), "image"),
    ModelSpec("densenet121", _torchvision("densenet121"), "image"),
    ModelSpec("squeezenet1_1", _torchvision("squeezenet1_1"), "image"),
    ModelSpec("convnext_tiny", _torchvision("convnext_tiny"), "image"),
    ModelSpec("vit_b_16", _torchvision("vit_b_16"), "image", dynamo=True),
    ModelSpec("bert_base", _bert, "tokens", dynamo=True, vocab=30522),
    ModelSpec("gpt2", _gpt2, "tokens", dynamo=True, vocab=50257),
)}
# more of torchvision's models, for the CPU benchmark (``bench/models.py --models tv_<name>``) or named here
MORE: dict[str, ModelSpec] = {spec.name: spec for spec in (
    *(ModelSpec(name, _torchvision(name), "image") for name in (
        "resnext50_32x4d", "wide_resnet50_2", "googlenet", "mnasnet1_0", "mobilenet_v3_large", "efficientnet_v2_s",
        "regnet_x_400mf")),
    *(ModelSpec(name, _segmentation(name), "image") for name in (
        "deeplabv3_mobilenet_v3_large", "lraspp_mobilenet_v3_large", "fcn_resnet50")),
)}
ALL_MODELS = {**MODELS, **MORE}


def example_inputs(spec: ModelSpec, batch: int = 1, seed: int = 0) -> dict[str, np.ndarray]:
    """The model's inputs by ONNX input name: an image batch in [0, 1) normalized as torchvision's transforms do,
    or random token ids."""
    rng = np.random.default_rng(seed)
    if spec.kind == "image":
        mean = np.array([0.485, 0.456, 0.406], np.float32).reshape(1, 3, 1, 1)
        std = np.array([0.229, 0.224, 0.225], np.float32).reshape(1, 3, 1, 1)
        image = rng.uniform(0, 1, (batch, *IMAGE)).astype(np.float32)
        return {"input": ((image - mean) / std).astype(np.float32)}
    return {"input_ids": rng.integers(0, spec.vocab, (batch, TOKENS)).astype(np.int64)}


def build(spec: ModelSpec, seed: int = 0) -> Any:
    """The PyTorch module of ``spec`` in eval mode, its weights drawn from ``seed``."""
    import torch

    torch.manual_seed(seed)
    model = spec.make().eval()
    if spec.kind == "image":
        _calibrate_batch_norms(model, seed)
    return model


def _calibrate_batch_norms(model: Any, seed: int) -> None:
    """Give every batch norm running statistics of the data it sees (random weights leave mean 0, variance 1,
    which makes activations grow without bound through deep networks): one forward pass in training mode with
    cumulative averages, then eval mode."""
    import torch

    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None
    generator = torch.Generator().manual_seed(seed + 1)
    model.train()
    with torch.no_grad():
        model(torch.rand((4, *IMAGE), generator=generator))
    model.eval()


def torch_inputs(inputs: dict[str, np.ndarray], device: str = "cpu") -> tuple[Any, ...]:
    import torch

    return tuple(torch.from_numpy(v).to(device) for v in inputs.values())


def export(spec: ModelSpec, model: Any, inputs: dict[str, np.ndarray], folder: Path) -> Path:
    """Export ``model`` (on the CPU) to ``folder/NAME.onnx`` and write ``NAME.npz`` with the inputs and PyTorch's
    output; returns the ONNX path."""
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{spec.name}.onnx"
    args = torch_inputs(inputs)
    names = list(inputs)
    with torch.no_grad():
        if spec.dynamo:
            program = torch.onnx.export(model, args, input_names=names, output_names=["output"], dynamo=True)
            program.save(str(path))
        else:
            torch.onnx.export(model, args, str(path), input_names=names, output_names=["output"], opset_version=17,
                              dynamo=False)
        output = model(*args)
    np.savez(folder / f"{spec.name}.npz", output=output.numpy(), **{f"input_{k}": v for k, v in inputs.items()})
    return path


@contextlib.contextmanager
def gpu_lock(path: Path | None) -> Iterator[None]:
    """Hold the file lock at ``path`` (no lock when ``None``): one model at a time runs kernels on the GPU."""
    if path is None:
        yield
        return
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def relative_error(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.abs(got.astype(np.float64) - want).max() / max(float(np.abs(want).max()), 1e-30))


def _torch_graph(model: Any, inputs: dict[str, np.ndarray]) -> Any:
    """PyTorch's forward pass on the GPU captured as a CUDA graph (after warm-up runs that let cuDNN pick its
    algorithms); returns a function replaying it."""
    import torch

    static = torch_inputs(inputs, "cuda")
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.no_grad(), torch.cuda.stream(stream):
        for _ in range(3):
            model(*static)
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.no_grad(), torch.cuda.graph(graph):
        model(*static)
    return graph.replay


def _torch_seconds(replay: Callable[[], None], number: int) -> float:
    import torch

    start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(number):
        replay()
    stop.record()
    stop.synchronize()
    return start.elapsed_time(stop) / 1e3 / number


def run_model(name: str, folder: Path, lock: Path | None, rounds: int, number: int, profile: int = 5,
              on_gpu: bool = True) -> dict[str, Any]:
    """Export, compile, check and time one model (module docstring); the result as a JSON-ready dict."""
    import warnings

    import torch

    import tcomp.graph as tg

    spec = ALL_MODELS[name]
    result: dict[str, Any] = {"model": name, "status": "ok"}
    phase = "export"
    try:
        start = time.perf_counter()
        model = build(spec)
        inputs = example_inputs(spec)
        path = export(spec, model, inputs, folder)
        want = np.load(folder / f"{name}.npz")["output"]
        result["export_s"] = time.perf_counter() - start
        phase = "compile"
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", tg.EmulationWarning)
            executor = tg.compile(str(path), target="cuda")
        result["compile_s"] = time.perf_counter() - start
        result["kernels"] = executor.num_kernels
        result["target"] = executor.program.target
        if not on_gpu:
            result["status"] = "compiled (no GPU: not run)"
            return result
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cudnn.benchmark = True
        gpu_model = model.cuda().eval()
        with gpu_lock(lock):
            phase = "run"
            got = executor.run(inputs)[0]
            result["rel_error"] = relative_error(got, want)
            phase = "time"
            replay = _torch_graph(gpu_model, inputs)
            executor.benchmark(repeat=1, number=number, cuda_graph=True)  # warm-up, captures the graph
            tcomp_times, torch_times = [], []
            for _ in range(rounds):
                torch_times.append(_torch_seconds(replay, number))
                tcomp_times.append(executor.benchmark(repeat=1, number=number, warmup=0, cuda_graph=True)[0])
            result["tcomp_ms"] = [1e3 * min(tcomp_times), 1e3 * float(np.median(tcomp_times))]
            result["torch_ms"] = [1e3 * min(torch_times), 1e3 * float(np.median(torch_times))]
            phase = "profile"
            slowest = sorted(executor.profile(repeat=3), key=lambda row: -row[2])[:profile]
            result["slowest"] = [[node, kernel, 1e3 * seconds] for node, kernel, seconds in slowest]
    except Exception as exc:  # noqa: BLE001 - a model that fails is a row of the table, not the end of the run
        result["status"] = f"{phase} failed"
        result["error"] = f"{type(exc).__name__}: {str(exc)[:500]}"
        result["traceback"] = traceback.format_exc(limit=6)[-2000:]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--models", nargs="*", default=list(MODELS), choices=list(ALL_MODELS), metavar="MODEL")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--run", choices=list(ALL_MODELS), help="export, compile, check and time this model")
    parser.add_argument("--result", type=Path, help="the JSON-lines file --run appends its result to")
    parser.add_argument("--lock", type=Path, help="the file lock that keeps one model at a time on the GPU")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--number", type=int, default=5)
    args = parser.parse_args()
    if args.run:
        from tcomp.runtime.cuda_device import gpu_available

        result = run_model(args.run, args.out, args.lock, args.rounds, args.number, on_gpu=gpu_available())
        if args.result:
            with open(args.result, "a") as handle:
                handle.write(json.dumps(result) + "\n")
        print(json.dumps({k: v for k, v in result.items() if k != "traceback"}), flush=True)
        return
    for name in args.models:
        spec = ALL_MODELS[name]
        start = time.perf_counter()
        try:
            model = build(spec)
            path = export(spec, model, example_inputs(spec, args.batch), args.out)
        except Exception as exc:  # noqa: BLE001 - report every model, go on with the next
            print(f"{name}: export failed: {type(exc).__name__}: {str(exc)[:300]}", flush=True)
            continue
        size = sum(p.stat().st_size for p in args.out.glob(f"{name}.onnx*")) / 1e6
        print(f"{name}: {path} ({size:.0f} MB) in {time.perf_counter() - start:.1f} s", flush=True)
    sys.exit(0)


if __name__ == "__main__":
    main()

"""ONNX models built programmatically with random weights, for tests and benchmarks (``relay.testing``'s role).

``resnet(depth)`` (18/34 basic blocks, 50/101/152 bottlenecks, the torchvision architecture), ``vgg(depth)``,
``mobilenet_v2()`` (inverted residuals with depthwise convolutions), ``transformer_encoder()`` (one BERT-style
block with shapes computed in the graph), and whole encoders with the operators PyTorch's dynamo exporter writes for
Hugging Face's eager attention: ``bert()`` (token ids and an attention mask in, post-norm layers) and ``vit()``
(patches by a strided convolution, a class token, pre-norm layers). Each returns an ``onnx.ModelProto``; ``width``
scales the channels and ``image_size`` the resolution so tests can run small versions of the real architectures.
Weights are He-scaled so activations stay of order one; batch norms carry random statistics.

For models from elsewhere: ``random_weights(model)`` gives the onnx package's light models (weights kept only as
shapes) random weights, and ``expose_logits(model)`` adds a final softmax's input as an output, so that comparing
outputs checks something.
"""

from __future__ import annotations

import math

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


class ModelBuilder:
    """Accumulates nodes and initializers; names are made unique with a counter."""

    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.count = 0

    def name(self, base: str) -> str:
        self.count += 1
        return f"{base}_{self.count}"

    def const(self, value: np.ndarray, base: str = "w") -> str:
        name = self.name(base)
        self.initializers.append(numpy_helper.from_array(np.require(value, requirements="C"), name))
        return name

    def node(self, op: str, inputs: list[str], n_out: int = 1, **attrs: object) -> str:
        outputs = [self.name(op.lower()) for _ in range(n_out)]
        self.nodes.append(helper.make_node(op, inputs, outputs, name=self.name(op), **attrs))
        return outputs[0]

    def conv(self, x: str, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1,
             bias: bool = False) -> str:
        fan_in = cin // groups * kernel * kernel
        w = (self.rng.standard_normal((cout, cin // groups, kernel, kernel)) * math.sqrt(2.0 / fan_in))
        inputs = [x, self.const(w.astype(np.float32), "conv_w")]
        if bias:
            inputs.append(self.const((self.rng.standard_normal(cout) * 0.1).astype(np.float32), "conv_b"))
        pad = kernel // 2
        return self.node("Conv", inputs, kernel_shape=[kernel, kernel], strides=[stride, stride],
                         pads=[pad, pad, pad, pad], group=groups)

    def batch_norm(self, x: str, channels: int, gain: float = 1.0) -> str:
        scale = (self.rng.uniform(0.5, 1.5, channels) * gain).astype(np.float32)
        shift = (self.rng.standard_normal(channels) * 0.1).astype(np.float32)
        mean = (self.rng.standard_normal(channels) * 0.1).astype(np.float32)
        var = self.rng.uniform(0.5, 1.5, channels).astype(np.float32)
        names = [self.const(v, k) for v, k in ((scale, "bn_scale"), (shift, "bn_bias"), (mean, "bn_mean"),
                                               (var, "bn_var"))]
        return self.node("BatchNormalization", [x, *names], epsilon=1e-5)

    def dense(self, x: str, cin: int, cout: int) -> str:
        w = (self.rng.standard_normal((cout, cin)) * math.sqrt(1.0 / cin)).astype(np.float32)
        b = (self.rng.standard_normal(cout) * 0.1).astype(np.float32)
        return self.node("Gemm", [x, self.const(w, "fc_w"), self.const(b, "fc_b")], transB=1)

    def model(self, name: str, inputs: list[tuple[str, list[int | str]]], output: str, out_shape: list[int | str],
              opset: int = 13) -> onnx.ModelProto:
        graph = helper.make_graph(
            self.nodes, name,
            [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs],
            [helper.make_tensor_value_info(output, TensorProto.FLOAT, out_shape)],
            self.initializers,
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                                  producer_name="tcomp.graph.testing")
        model.ir_version = 8
        return model


def _channels(value: int, width: float) -> int:
    return max(8, int(round(value * width / 8)) * 8)


def resnet(depth: int = 50, batch: int = 1, image_size: int = 224, width: float = 1.0, num_classes: int = 1000,
           seed: int = 0, softmax: bool = True) -> onnx.ModelProto:
    """torchvision's ResNet (v1.5: stride on the 3x3 convolution of a bottleneck). The last batch norm of each
    residual branch starts small (as with zero-initialized residuals), so activations stay bounded in deep nets.
    ``softmax=False`` ends with the logits."""
    layouts = {18: ([2, 2, 2, 2], False), 34: ([3, 4, 6, 3], False), 50: ([3, 4, 6, 3], True),
               101: ([3, 4, 23, 3], True), 152: ([3, 8, 36, 3], True)}
    if depth not in layouts:
        raise ValueError(f"ResNet depth must be one of {sorted(layouts)}, got {depth}")
    blocks, bottleneck = layouts[depth]
    b = ModelBuilder(seed)
    stem = _channels(64, width)
    x = b.node("Relu", [b.batch_norm(b.conv("data", 3, stem, 7, stride=2), stem)])
    x = b.node("MaxPool", [x], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    cin = stem
    expansion = 4 if bottleneck else 1
    for stage, count in enumerate(blocks):
        planes = _channels(64 * 2**stage, width)
        for index in range(count):
            stride = 2 if stage > 0 and index == 0 else 1
            cout = planes * expansion
            if bottleneck:
                y = b.node("Relu", [b.batch_norm(b.conv(x, cin, planes, 1), planes)])
                y = b.node("Relu", [b.batch_norm(b.conv(y, planes, planes, 3, stride), planes)])
                y = b.batch_norm(b.conv(y, planes, cout, 1), cout, gain=0.2)
            else:
                y = b.node("Relu", [b.batch_norm(b.conv(x, cin, planes, 3, stride), planes)])
                y = b.batch_norm(b.conv(y, planes, cout, 3), cout, gain=0.2)
            shortcut = x
            if stride != 1 or cin != cout:
                shortcut = b.batch_norm(b.conv(x, cin, cout, 1, stride), cout)
            x = b.node("Relu", [b.node("Add", [y, shortcut])])
            cin = cout
    x = b.node("GlobalAveragePool", [x])
    x = b.node("Flatten", [x], axis=1)
    out = b.dense(x, cin, num_classes)
    if softmax:
        out = b.node("Softmax", [out], axis=1)
    return b.model(f"resnet{depth}", [("data", [batch, 3, image_size, image_size])], out, [batch, num_classes])


def vgg(depth: int = 11, batch: int = 1, image_size: int = 224, width: float = 1.0, num_classes: int = 1000,
        hidden: int = 4096, seed: int = 0, softmax: bool = True) -> onnx.ModelProto:
    """VGG (configurations A/B/D/E) with ReLU, max pooling, and a classifier with dropout (inference)."""
    configs = {11: [1, 1, 2, 2, 2], 13: [2, 2, 2, 2, 2], 16: [2, 2, 3, 3, 3], 19: [2, 2, 4, 4, 4]}
    if depth not in configs:
        raise ValueError(f"VGG depth must be one of {sorted(configs)}, got {depth}")
    b = ModelBuilder(seed)
    x, cin = "data", 3
    for stage, count in enumerate(configs[depth]):
        cout = _channels(min(64 * 2**stage, 512), width)
        for _ in range(count):
            x = b.node("Relu", [b.conv(x, cin, cout, 3, bias=True)])
            cin = cout
        x = b.node("MaxPool", [x], kernel_shape=[2, 2], strides=[2, 2])
    spatial = image_size // 32
    x = b.node("Flatten", [x], axis=1)
    x = b.node("Dropout", [b.node("Relu", [b.dense(x, cin * spatial * spatial, hidden)])])
    x = b.node("Dropout", [b.node("Relu", [b.dense(x, hidden, hidden)])])
    out = b.dense(x, hidden, num_classes)
    if softmax:
        out = b.node("Softmax", [out], axis=1)
    return b.model(f"vgg{depth}", [("data", [batch, 3, image_size, image_size])], out, [batch, num_classes])


def mobilenet_v2(batch: int = 1, image_size: int = 224, width: float = 1.0, num_classes: int = 1000,
                 seed: int = 0) -> onnx.ModelProto:
    """MobileNetV2: inverted residual blocks (1x1 expansion, 3x3 depthwise, 1x1 projection) with ReLU6."""
    settings = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                (6, 320, 1, 1)]
    b = ModelBuilder(seed)
    zero, six = b.const(np.array(0.0, np.float32), "zero"), b.const(np.array(6.0, np.float32), "six")

    def relu6(value: str) -> str:
        return b.node("Clip", [value, zero, six])

    cin = _channels(32, width)
    x = relu6(b.batch_norm(b.conv("data", 3, cin, 3, stride=2), cin))
    for expand, channels, count, first_stride in settings:
        cout = _channels(channels, width)
        for index in range(count):
            stride = first_stride if index == 0 else 1
            hidden = cin * expand
            y = x
            if expand != 1:
                y = relu6(b.batch_norm(b.conv(y, cin, hidden, 1), hidden))
            y = relu6(b.batch_norm(b.conv(y, hidden, hidden, 3, stride, groups=hidden), hidden))
            y = b.batch_norm(b.conv(y, hidden, cout, 1), cout)
            x = b.node("Add", [x, y]) if stride == 1 and cin == cout else y
            cin = cout
    last = _channels(1280, max(width, 1.0))
    x = relu6(b.batch_norm(b.conv(x, cin, last, 1), last))
    x = b.node("Flatten", [b.node("GlobalAveragePool", [x])], axis=1)
    out = b.dense(x, last, num_classes)
    return b.model("mobilenet_v2", [("data", [batch, 3, image_size, image_size])], out, [batch, num_classes])


def transformer_encoder(batch: int = 1, seq: int = 16, hidden: int = 64, heads: int = 4, ffn: int = 256,
                        seed: int = 0, dynamic_batch: bool = False) -> onnx.ModelProto:
    """One post-norm BERT encoder block as exported by PyTorch: QKV projections, heads split with Reshape whose
    target shape is computed from ``Shape`` in the graph, scaled dot-product attention with Softmax, output
    projection, residual + LayerNormalization, a GELU (Erf) feed-forward network, residual + LayerNormalization."""
    b = ModelBuilder(seed)
    head = hidden // heads

    def linear(x: str, cin: int, cout: int) -> str:
        w = (b.rng.standard_normal((cin, cout)) / math.sqrt(cin)).astype(np.float32)
        bias = (b.rng.standard_normal(cout) * 0.1).astype(np.float32)
        return b.node("Add", [b.node("MatMul", [x, b.const(w, "lin_w")]), b.const(bias, "lin_b")])

    def layer_norm(x: str) -> str:
        gamma = b.rng.uniform(0.5, 1.5, hidden).astype(np.float32)
        beta = (b.rng.standard_normal(hidden) * 0.1).astype(np.float32)
        return b.node("LayerNormalization", [x, b.const(gamma, "ln_g"), b.const(beta, "ln_b")], axis=-1,
                      epsilon=1e-5)

    def int64(values: list[int]) -> str:
        return b.const(np.array(values, dtype=np.int64), "i64")

    shape = b.node("Shape", ["x"])
    batch_dim = b.node("Gather", [shape, int64([0])], axis=0)
    seq_dim = b.node("Gather", [shape, int64([1])], axis=0)
    split_shape = b.node("Concat", [batch_dim, seq_dim, int64([heads, head])], axis=0)
    merge_shape = b.node("Concat", [batch_dim, seq_dim, int64([hidden])], axis=0)

    def split_heads(x: str, perm: list[int]) -> str:
        return b.node("Transpose", [b.node("Reshape", [x, split_shape])], perm=perm)

    q = split_heads(linear("x", hidden, hidden), [0, 2, 1, 3])
    k = split_heads(linear("x", hidden, hidden), [0, 2, 3, 1])
    v = split_heads(linear("x", hidden, hidden), [0, 2, 1, 3])
    scores = b.node("Div", [b.node("MatMul", [q, k]), b.const(np.array(math.sqrt(head), np.float32), "scale")])
    probs = b.node("Softmax", [scores], axis=-1)
    context = b.node("Transpose", [b.node("MatMul", [probs, v])], perm=[0, 2, 1, 3])
    context = b.node("Reshape", [context, merge_shape])
    x1 = layer_norm(b.node("Add", ["x", linear(context, hidden, hidden)]))
    h = linear(x1, hidden, ffn)
    gelu = b.node("Mul", [b.node("Mul", [h, b.node("Add", [b.node("Erf", [b.node(
        "Div", [h, b.const(np.array(math.sqrt(2.0), np.float32), "sqrt2")])]), b.const(np.array(1.0, np.float32),
                                                                                        "one")])]),
                          b.const(np.array(0.5, np.float32), "half")])
    out = layer_norm(b.node("Add", [x1, linear(gelu, ffn, hidden)]))
    batch_value: int | str = "batch" if dynamic_batch else batch
    return b.model("transformer_encoder", [("x", [batch_value, seq, hidden])], out, [batch_value, seq, hidden],
                   opset=17)


def _encoder_layer(b: ModelBuilder, x: str, seq: int, hidden: int, heads: int, ffn: int, mask: str | None,
                   pre_norm: bool) -> str:
    """One encoder layer on ``x`` ``[1, seq, hidden]`` as the dynamo exporter writes Hugging Face's eager attention:
    projections as MatMul + Add, heads split by Reshape + Transpose (keys to ``[1, heads, head, seq]``), scores
    scaled by a Mul, plus ``mask`` (``[1, 1, 1, seq]``) if given, Softmax, the product with V, heads merged by
    Transpose + Reshape; exact Gelu in the feed-forward network; LayerNormalization before (``pre_norm``, ViT) or
    after (BERT) each residual."""
    head = hidden // heads

    def linear(v: str, cin: int, cout: int) -> str:
        w = (b.rng.standard_normal((cin, cout)) / math.sqrt(cin)).astype(np.float32)
        bias = (b.rng.standard_normal(cout) * 0.1).astype(np.float32)
        return b.node("Add", [b.node("MatMul", [v, b.const(w, "lin_w")]), b.const(bias, "lin_b")])

    def split(v: str, perm: list[int]) -> str:
        shape = b.const(np.array([1, seq, heads, head], np.int64), "split_shape")
        return b.node("Transpose", [b.node("Reshape", [v, shape])], perm=perm)

    attention_in = _layer_norm(b, x, hidden) if pre_norm else x
    q = split(linear(attention_in, hidden, hidden), [0, 2, 1, 3])
    k = split(linear(attention_in, hidden, hidden), [0, 2, 3, 1])
    v = split(linear(attention_in, hidden, hidden), [0, 2, 1, 3])
    scores = b.node("Mul", [b.node("MatMul", [q, k]), b.const(np.array(1 / math.sqrt(head), np.float32), "scale")])
    if mask is not None:
        scores = b.node("Add", [scores, mask])
    context = b.node("Transpose", [b.node("MatMul", [b.node("Softmax", [scores], axis=-1), v])], perm=[0, 2, 1, 3])
    merged = b.node("Reshape", [context, b.const(np.array([1, seq, hidden], np.int64), "merge_shape")])
    x = b.node("Add", [linear(merged, hidden, hidden), x])
    if not pre_norm:
        x = _layer_norm(b, x, hidden)
    ffn_in = _layer_norm(b, x, hidden) if pre_norm else x
    out = b.node("Add", [linear(b.node("Gelu", [linear(ffn_in, hidden, ffn)]), ffn, hidden), x])
    return out if pre_norm else _layer_norm(b, out, hidden)


def _layer_norm(b: ModelBuilder, x: str, hidden: int) -> str:
    gamma = b.rng.uniform(0.5, 1.5, hidden).astype(np.float32)
    beta = (b.rng.standard_normal(hidden) * 0.1).astype(np.float32)
    return b.node("LayerNormalization", [x, b.const(gamma, "ln_g"), b.const(beta, "ln_b")], axis=-1, epsilon=1e-12)


def _opset20_model(b: ModelBuilder, name: str, inputs: list[onnx.ValueInfoProto], output: str,
                   out_shape: list[int]) -> onnx.ModelProto:
    graph = helper.make_graph(b.nodes, name, inputs,
                              [helper.make_tensor_value_info(output, TensorProto.FLOAT, out_shape)], b.initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)], producer_name="tcomp.graph.testing")
    model.ir_version = 9
    return model


def bert(layers: int = 12, hidden: int = 768, heads: int = 12, ffn: int = 3072, seq: int = 128, vocab: int = 30522,
         seed: int = 0) -> onnx.ModelProto:
    """A BERT encoder (``BertModel`` without pooler; BERT-base by default) at batch 1: inputs ``input_ids`` and
    ``attention_mask`` (int64 ``[1, seq]``, 1 keeps a token), output the last hidden state ``[1, seq, hidden]``.
    Embeddings are word + token type 0 + position, then LayerNormalization; the mask becomes 0 or the float32
    minimum added to every layer's scores, as the export computes it."""
    b = ModelBuilder(seed)
    word = (b.rng.standard_normal((vocab, hidden)) * 0.02).astype(np.float32)
    position = (b.rng.standard_normal((seq, hidden)) * 0.02).astype(np.float32)
    token_type = (b.rng.standard_normal((1, seq, hidden)) * 0.02).astype(np.float32)
    x = b.node("Add", [b.node("Gather", [b.const(word, "word_embeddings"), "input_ids"], axis=0),
                       b.const(token_type, "token_type_embedding")])
    x = _layer_norm(b, b.node("Add", [x, b.const(position, "position_embeddings")]), hidden)
    keep = b.node("Cast", [b.node("Reshape", ["attention_mask", b.const(np.array([1, 1, 1, seq], np.int64),
                                                                           "mask_shape")])], to=TensorProto.BOOL)
    mask = b.node("Where", [keep, b.const(np.array(0.0, np.float32), "zero"),
                            b.const(np.array(np.finfo(np.float32).min, np.float32), "minimum")])
    for _ in range(layers):
        x = _encoder_layer(b, x, seq, hidden, heads, ffn, mask, pre_norm=False)
    inputs = [helper.make_tensor_value_info(n, TensorProto.INT64, [1, seq]) for n in ("input_ids", "attention_mask")]
    return _opset20_model(b, "bert", inputs, x, [1, seq, hidden])


def vit(layers: int = 12, hidden: int = 768, heads: int = 12, ffn: int = 3072, image_size: int = 224,
        patch: int = 16, seed: int = 0) -> onnx.ModelProto:
    """A ViT encoder (``ViTModel`` without pooler; ViT-B/16 at 224 by default) at batch 1: input ``pixel_values``
    ``[1, 3, image_size, image_size]``, output the last hidden state after the final LayerNormalization
    ``[1, patches + 1, hidden]``. Patches are embedded by a convolution with stride ``patch``, flattened, a class
    token is concatenated in front and position embeddings added."""
    b = ModelBuilder(seed)
    patches = (image_size // patch) ** 2
    seq = patches + 1
    w = (b.rng.standard_normal((hidden, 3, patch, patch)) / math.sqrt(3 * patch * patch)).astype(np.float32)
    bias = (b.rng.standard_normal(hidden) * 0.1).astype(np.float32)
    embedded = b.node("Conv", ["pixel_values", b.const(w, "patch_w"), b.const(bias, "patch_b")],
                      kernel_shape=[patch, patch], strides=[patch, patch])
    flat = b.node("Reshape", [embedded, b.const(np.array([1, hidden, patches], np.int64), "flat_shape")])
    tokens = b.node("Transpose", [flat], perm=[0, 2, 1])
    cls = (b.rng.standard_normal((1, 1, hidden)) * 0.02).astype(np.float32)
    x = b.node("Concat", [b.const(cls, "cls_token"), tokens], axis=1)
    x = b.node("Add", [x, b.const((b.rng.standard_normal((1, seq, hidden)) * 0.02).astype(np.float32), "position")])
    for _ in range(layers):
        x = _encoder_layer(b, x, seq, hidden, heads, ffn, None, pre_norm=True)
    x = _layer_norm(b, x, hidden)
    inputs = [helper.make_tensor_value_info("pixel_values", TensorProto.FLOAT, [1, 3, image_size, image_size])]
    return _opset20_model(b, "vit", inputs, x, [1, seq, hidden])


def random_weights(model: onnx.ModelProto, seed: int = 0) -> onnx.ModelProto:
    """``model`` with random values for the weights it builds with ``ConstantOfShape`` from an initializer shape.

    The onnx package's light models (``onnx/backend/test/data/light/``) keep only their weights' shapes: every weight
    is a ``ConstantOfShape`` of 0.02, so every channel computes the same and every input gives the same output (0.001
    per class after the softmax), and a comparison of outputs checks little. Here each such weight becomes an
    initializer scaled for the input it feeds, as the builders above scale theirs: convolution and ``Gemm``/``MatMul``
    weights He-scaled by their fan-in, biases, batch-norm shifts and means ``N(0, 0.1)``, batch-norm scales and
    variances (and any other use) uniform in [0.5, 1.5]. Constants of other types than float32 (shapes, indices)
    stay, and so does the rest of the model."""
    rng = np.random.default_rng(seed)
    graph = model.graph
    shape_inputs = {n.input[0] for n in graph.node if n.op_type == "ConstantOfShape" and n.input}
    shapes = {t.name: numpy_helper.to_array(t) for t in graph.initializer if t.name in shape_inputs}
    consumers: dict[str, tuple[onnx.NodeProto, int]] = {}
    for node in graph.node:
        for slot, name in enumerate(node.input):
            consumers.setdefault(name, (node, slot))
    made: dict[str, np.ndarray] = {}
    kept = []
    for node in graph.node:
        shape = shapes.get(node.input[0]) if node.op_type == "ConstantOfShape" and node.input else None
        fills = [a.t.data_type for a in node.attribute if a.name == "value"]
        if shape is None or node.output[0] not in consumers or fills not in ([], [TensorProto.FLOAT]):
            kept.append(node)
            continue
        dims = tuple(int(d) for d in shape.reshape(-1))
        user, slot = consumers[node.output[0]]
        if (user.op_type, slot) == ("Conv", 1) or (user.op_type in ("Gemm", "MatMul") and slot == 1):
            transposed = user.op_type == "Gemm" and any(a.name == "transB" and a.i for a in user.attribute)
            fan_in = int(np.prod(dims[1:])) if user.op_type == "Conv" or transposed else dims[0]
            value = rng.standard_normal(dims) * math.sqrt((2.0 if user.op_type == "Conv" else 1.0) / max(fan_in, 1))
        elif (user.op_type, slot) in (("Conv", 2), ("Gemm", 2), ("BatchNormalization", 2),
                                      ("BatchNormalization", 3)):
            value = rng.standard_normal(dims) * 0.1
        else:
            value = rng.uniform(0.5, 1.5, dims)
        made[node.output[0]] = value.astype(np.float32)
    read = {name for node in kept for name in node.input} | {o.name for o in graph.output}
    unused = {name for name in shapes if name not in read}  # the shapes of the weights drawn here, read no more
    result = onnx.ModelProto()
    result.CopyFrom(model)
    del result.graph.node[:], result.graph.initializer[:], result.graph.input[:]
    result.graph.node.extend(kept)
    result.graph.initializer.extend([t for t in graph.initializer if t.name not in unused] +
                                    [numpy_helper.from_array(v, name) for name, v in made.items()])
    result.graph.input.extend(i for i in graph.input if i.name not in unused)
    if model.ir_version < 4:  # initializers are graph inputs there
        result.graph.input.extend(helper.make_tensor_value_info(name, TensorProto.FLOAT, list(v.shape))
                                  for name, v in made.items())
    return result


def expose_logits(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` with one more output per ``Softmax`` that writes an output: the softmax's input (the logits). With
    random weights a deep network's logits are often large and its softmax one-hot, which a comparison of outputs
    barely checks; the logits show every difference."""
    outputs = {o.name for o in model.graph.output}
    logits = [n.input[0] for n in model.graph.node if n.op_type == "Softmax" and n.output[0] in outputs]
    result = onnx.ModelProto()
    result.CopyFrom(model)
    result.graph.output.extend(helper.make_tensor_value_info(name, TensorProto.FLOAT, None) for name in logits
                               if name not in outputs)
    return result


def interface(model: onnx.ModelProto) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """A model's input names (initializers excluded) and output names, as a compiled model must keep them."""
    initializers = {t.name for t in model.graph.initializer}
    inputs = tuple(i.name for i in model.graph.input if i.name not in initializers)
    return inputs, tuple(o.name for o in model.graph.output)


def forwarding_classifier() -> onnx.ModelProto:
    """A classifier ending as the ONNX model zoo's ResNet-50 does (an opset-11 Softmax over a flattened Gemm, output
    ``gpu_0/softmax_1``), plus outputs that are forwarded values: an input, a parameter, another output, a value
    other nodes also read, and a reshape to the same shape."""
    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array(rng.standard_normal((10, 48)).astype(np.float32), "gpu_0/pred_w_0")
    bias = numpy_helper.from_array(rng.standard_normal(10).astype(np.float32), "gpu_0/pred_b_0")
    same = numpy_helper.from_array(np.array([1, 10], np.int64), "gpu_0/same_shape")
    nodes = [
        helper.make_node("Conv", ["gpu_0/data_0", "gpu_0/conv_w"], ["gpu_0/conv1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["gpu_0/conv1"], ["gpu_0/res_conv1_bn_2"]),
        helper.make_node("Flatten", ["gpu_0/res_conv1_bn_2"], ["gpu_0/flat"]),
        helper.make_node("Gemm", ["gpu_0/flat", "gpu_0/pred_w_0", "gpu_0/pred_b_0"], ["gpu_0/pred_1"], transB=1),
        helper.make_node("Softmax", ["gpu_0/pred_1"], ["gpu_0/softmax_1"], axis=1),
        helper.make_node("Identity", ["gpu_0/softmax_1"], ["gpu_0/softmax_copy"]),
        helper.make_node("Reshape", ["gpu_0/pred_1", "gpu_0/same_shape"], ["gpu_0/logits"]),
        helper.make_node("Identity", ["gpu_0/data_0"], ["gpu_0/data_echo"]),
        helper.make_node("Identity", ["gpu_0/pred_b_0"], ["gpu_0/bias_echo"]),
    ]
    conv_w = numpy_helper.from_array(rng.standard_normal((3, 3, 3, 3)).astype(np.float32), "gpu_0/conv_w")
    value = helper.make_tensor_value_info
    outputs = [value(n, TensorProto.FLOAT, None) for n in
               ("gpu_0/softmax_1", "gpu_0/softmax_copy", "gpu_0/logits", "gpu_0/res_conv1_bn_2", "gpu_0/data_echo",
                "gpu_0/bias_echo")]
    graph = helper.make_graph(nodes, "zoo_like", [value("gpu_0/data_0", TensorProto.FLOAT, [1, 3, 4, 4])], outputs,
                              initializer=[weight, bias, same, conv_w])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)])

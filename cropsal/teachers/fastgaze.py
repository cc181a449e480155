"""Twitter's 2018 production saliency network, read from its ``.vxm`` file.

The file (``../shared/teachers/twitter-fastgaze/fastgaze.vxm``, never shipped with cropsal) is a
flat list of key/value entries: ``{i}Type`` per layer (0 convolution, 2 max pooling, 3 Gaussian
blur), weights ``{i}w`` ``[out, in, k, k]`` and biases ``{i}b`` as float32, activations ``{i}Act``
(1 ReLU, 4 leaky ReLU with slope ``{i}alpha``). :func:`to_onnx` rebuilds it as an ONNX graph
so that it runs under ONNX Runtime like cropsal's own model.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cropsal.errors import ModelError

MAGIC = b"\x01\x74\x50\x4d"
DEFAULT_PATH = Path("../shared/teachers/twitter-fastgaze/fastgaze.vxm")
MEAN_BGR = (103.94, 116.78, 123.68)
LONG_SIDE = 512  # input long side that scored best on held-out fixations (see its README)
STRIDE = 16


@dataclass
class Layer:
    kind: str  # "conv", "pool" or "blur"
    weight: np.ndarray | None = None  # [out, in, k, k] float32
    bias: np.ndarray | None = None  # [out] float32
    activation: str | None = None  # "relu", "leaky_relu" or None
    alpha: float = 0.0
    size: int = 0  # pooling size, or blur kernel taps
    sigma: float = 0.0  # blur standard deviation in output pixels


def read_entries(path: Path) -> dict[str, bytes]:
    """The raw ``key → value bytes`` entries of a ``.vxm`` file."""
    data = path.read_bytes()
    if data[:4] != MAGIC:
        raise ModelError(f"{path}: not a .vxm file (magic {data[:4].hex()})")
    (count,), offset, entries = struct.unpack_from("<I", data, 4), 8, {}
    for _ in range(count):
        (klen,) = struct.unpack_from("<I", data, offset)
        key = data[offset + 4 : offset + 4 + klen].rstrip(b"\0").decode()
        offset += 4 + klen
        (vlen,) = struct.unpack_from("<I", data, offset)
        entries[key] = data[offset + 4 : offset + 4 + vlen]
        offset += 4 + vlen
    return entries


def read_layers(path: str | Path = DEFAULT_PATH) -> list[Layer]:
    """Layers of the network in order; raises :class:`ModelError` for unknown layer kinds."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: Twitter's fastgaze network not found")
    e = read_entries(path)

    def i32(key: str) -> int:
        return struct.unpack("<i", e[key])[0]

    def tensor(key: str) -> np.ndarray:
        shape = (
            [i32(f"{key}.shape[{j}]") for j in range(i32(f"{key}.ndims"))]
            if i32(f"{key}.ndims") > 1
            else [i32(f"{key}.shape")]
        )
        return np.frombuffer(e[key], "<f4").reshape(shape).copy()

    layers = []
    for i in range(i32("layerCount")):
        kind = i32(f"{i}Type")
        if kind == 0:
            act = {1: "relu", 4: "leaky_relu"}.get(i32(f"{i}Act")) if f"{i}Act" in e else None
            alpha = struct.unpack("<f", e[f"{i}alpha"])[0] if f"{i}alpha" in e else 0.0
            layers.append(Layer("conv", tensor(f"{i}w"), tensor(f"{i}b"), act, alpha))
        elif kind == 2:
            layers.append(Layer("pool", size=i32(f"{i}Pool")))
        elif kind == 3:
            layers.append(Layer("blur", size=i32(f"{i}KernelSize"), sigma=float(i32(f"{i}Std"))))
        else:
            raise ModelError(f"{path}: layer {i} has unknown type {kind}")
    return layers


def to_onnx(layers: list[Layer]):
    """An ONNX ``ModelProto``: ``[B, 3, H, W]`` float32 BGR 0–255 → ``[B, 1, H/16, W/16]``
    unnormalised log-saliency (needs the ``onnx`` package)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes, inits, x = [], [], "image"
    inits.append(
        numpy_helper.from_array(np.array(MEAN_BGR, np.float32).reshape(1, 3, 1, 1), "mean")
    )
    nodes.append(helper.make_node("Sub", [x, "mean"], ["centred"]))
    x = "centred"
    for i, layer in enumerate(layers):
        out = f"l{i}"
        if layer.kind == "conv":
            k = layer.weight.shape[-1]
            inits += [
                numpy_helper.from_array(layer.weight, f"w{i}"),
                numpy_helper.from_array(layer.bias, f"b{i}"),
            ]
            nodes.append(
                helper.make_node("Conv", [x, f"w{i}", f"b{i}"], [out + "c"], pads=[k // 2] * 4)
            )
            if layer.activation == "relu":
                nodes.append(helper.make_node("Relu", [out + "c"], [out]))
            elif layer.activation == "leaky_relu":
                nodes.append(helper.make_node("LeakyRelu", [out + "c"], [out], alpha=layer.alpha))
            else:
                out = out + "c"
        elif layer.kind == "pool":
            nodes.append(
                helper.make_node(
                    "MaxPool", [x], [out], kernel_shape=[layer.size] * 2, strides=[layer.size] * 2
                )
            )
        else:  # separable Gaussian blur, edges replicated
            r = layer.size // 2
            taps = np.exp(-0.5 * (np.arange(-r, r + 1) / layer.sigma) ** 2)
            taps = (taps / taps.sum()).astype(np.float32)
            inits += [
                numpy_helper.from_array(taps.reshape(1, 1, 1, -1), f"gx{i}"),
                numpy_helper.from_array(taps.reshape(1, 1, -1, 1), f"gy{i}"),
                numpy_helper.from_array(np.array([0, 0, r, r, 0, 0, r, r], np.int64), f"p{i}"),
            ]
            nodes += [
                helper.make_node("Pad", [x, f"p{i}"], [out + "p"], mode="edge"),
                helper.make_node("Conv", [out + "p", f"gx{i}"], [out + "x"]),
                helper.make_node("Conv", [out + "x", f"gy{i}"], [out]),
            ]
        x = out
    nodes.append(helper.make_node("Identity", [x], ["log_saliency"]))
    graph = helper.make_graph(
        nodes,
        "fastgaze",
        [
            helper.make_tensor_value_info(
                "image", TensorProto.FLOAT, ["batch", 3, "height", "width"]
            )
        ],
        [
            helper.make_tensor_value_info(
                "log_saliency", TensorProto.FLOAT, ["batch", 1, "map_height", "map_width"]
            )
        ],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def input_size(width: int, height: int) -> tuple[int, int]:
    """``(w, h)``: long side 512, both sides multiples of 16."""
    scale = LONG_SIDE / max(width, height)
    return (
        max(STRIDE, round(width * scale / STRIDE) * STRIDE),
        max(STRIDE, round(height * scale / STRIDE) * STRIDE),
    )


class FastGaze:
    """Twitter's network under ONNX Runtime: ``HxWx3 uint8 BGR`` → ``[h, w]`` log-saliency
    (unnormalised, no centre bias) at 1/16 of a 512-px input."""

    def __init__(self, path: str | Path = DEFAULT_PATH, threads: int | None = None) -> None:
        import onnxruntime as ort

        from cropsal.preprocess import resize_for_network

        self._resize = resize_for_network
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        proto = to_onnx(read_layers(path))
        self.session = ort.InferenceSession(
            proto.SerializeToString(), options, providers=["CPUExecutionProvider"]
        )

    def prepare(self, bgr: np.ndarray) -> np.ndarray:
        x = self._resize(bgr, input_size(bgr.shape[1], bgr.shape[0]))
        return x.transpose(2, 0, 1).astype(np.float32)

    def log_saliency(self, bgr: np.ndarray) -> np.ndarray:
        return self.session.run(None, {"image": self.prepare(bgr)[None]})[0][0, 0]

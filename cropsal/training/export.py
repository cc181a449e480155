"""Stage ``export``: a trained checkpoint → ONNX with dynamic batch, height and width.

The graph takes ``[B, 3, H, W]`` float32 BGR 0–255 and returns ``[B, 1, h, w]`` log-densities;
the pre-processing the runtime must apply is written into the model's metadata. The export is
checked with ``onnx.checker`` and ONNX Runtime's output is compared with PyTorch's.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import numpy as np
import torch

from cropsal.preprocess import RESIZE_DESCRIPTION
from cropsal.training.cost import conv_macs
from cropsal.training.nets import NetConfig, SaliencyNet

log = logging.getLogger(__name__)

OPSET = 17
# max |ONNX Runtime − PyTorch| on log-density values (weights are stored as float16)
TOLERANCE = 2e-2
FP16_MIN_ELEMENTS = 1024  # smaller initialisers stay float32
CHANNEL_MULTIPLE = 8  # hidden widths are padded to this for ONNX Runtime's blocked kernels


def load_checkpoint(path: Path) -> tuple[SaliencyNet, dict]:
    """Rebuild the network stored in a stage's checkpoint; returns ``(model in eval mode, config)``."""
    state = torch.load(path, map_location="cpu", weights_only=False)
    config = state["config"]
    model = SaliencyNet(NetConfig(**config["net"]), imagenet=False)
    model.load_state_dict(state["model"])
    return model.eval(), config


def preprocessing_metadata(long_side: int, name: str) -> dict[str, str]:
    """What the runtime needs to feed the network, stored as ONNX metadata (all strings)."""
    return {
        "cropsal.name": name,
        "cropsal.input": "float32 NCHW, BGR channel order, values 0-255, no mean or scale",
        "cropsal.output": "log-density, logsumexp 0 over each [h, w] map",
        "cropsal.long_side": str(long_side),
        "cropsal.multiple": "16",
        "cropsal.min_short": "32",
        "cropsal.max_long": "1024",
        "cropsal.stride": str(SaliencyNet.stride),
        "cropsal.resize": RESIZE_DESCRIPTION,
    }


def store_weights_fp16(proto) -> int:
    """Store large float32 initialisers as float16, each followed by a Cast back to float32, to
    halve the file; ONNX Runtime folds the casts when the session loads, so inference still runs
    in float32. Returns the number of initialisers converted."""
    from onnx import TensorProto, helper, numpy_helper

    graph, converted, casts = proto.graph, 0, []
    for init in list(graph.initializer):
        if init.data_type != TensorProto.FLOAT or int(np.prod(init.dims)) < FP16_MIN_ELEMENTS:
            continue
        half = numpy_helper.from_array(
            numpy_helper.to_array(init).astype(np.float16), init.name + "_fp16"
        )
        graph.initializer.remove(init)
        graph.initializer.append(half)
        casts.append(helper.make_node("Cast", [half.name], [init.name], to=TensorProto.FLOAT))
        converted += 1
    for node in reversed(casts):
        graph.node.insert(0, node)
    return converted


def export_model(model: SaliencyNet, out: Path, long_side: int, name: str) -> float:
    """Write ``model`` to ``out`` as ONNX; returns the max abs difference ORT vs PyTorch."""
    import onnx
    import onnxruntime as ort

    out.parent.mkdir(parents=True, exist_ok=True)
    example = torch.rand(1, 3, 192, 256) * 255
    tmp = out.with_suffix(".tmp.onnx")
    torch.onnx.export(
        model,
        (example,),
        str(tmp),
        dynamo=False,
        opset_version=OPSET,
        input_names=["image"],
        output_names=["log_density"],
        dynamic_axes={
            "image": {0: "batch", 2: "height", 3: "width"},
            "log_density": {0: "batch", 2: "map_height", 3: "map_width"},
        },
    )
    proto = onnx.load(str(tmp))
    store_weights_fp16(proto)
    for key, value in preprocessing_metadata(long_side, name).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(proto, full_check=True)
    onnx.save(proto, str(tmp))

    # ONNX Runtime against PyTorch on several shapes, batch 2
    session = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
    worst = 0.0
    for h, w in [(192, 256), (256, 144), (96, 320)]:
        x = torch.rand(2, 3, h, w) * 255
        with torch.no_grad():
            expected = model(x).numpy()
        got = session.run(None, {"image": x.numpy()})[0]
        worst = max(worst, float(np.abs(got - expected).max()))
    if worst > TOLERANCE:
        raise RuntimeError(f"{out}: ONNX Runtime differs from PyTorch by {worst:.2e} > {TOLERANCE}")
    tmp.replace(out)
    log.info("wrote %s (max |ORT - torch| = %.2e)", out, worst)
    return worst


def pad_hidden(model: SaliencyNet, multiple: int = CHANNEL_MULTIPLE) -> SaliencyNet:
    """The same network with each block's hidden width rounded up to ``multiple`` by inert
    maps (zero filters, batch norms that output 0, zero projection columns): identical outputs.

    ONNX Runtime runs depthwise convolutions in blocked layouts of 8 channels (AVX2; 16 with
    AVX-512); a pruned width such as 75 falls back to a generic grouped convolution that is
    many times slower than the MACs it saves."""
    widths = []
    for b in model.features[1:]:
        widths.append(-(-b.hidden // multiple) * multiple)
    config = dataclasses.replace(model.config, hidden=widths)
    padded = SaliencyNet(config, imagenet=False)
    own = padded.state_dict()
    for key, value in model.state_dict().items():
        target = own[key]
        if target.shape == value.shape:
            target.copy_(value)
            continue
        # a block's hidden dimension grew: copy into the leading part, the rest stays inert
        target.zero_()
        if key.endswith("running_var"):
            target.fill_(1.0)
        target[tuple(slice(0, n) for n in value.shape)] = value
    padded.load_state_dict(own)
    return padded.eval()


def export_checkpoint(checkpoint: Path, out: Path, name: str) -> None:
    """Export a stage's checkpoint; the check's result goes to ``export.json`` beside it."""
    model, config = load_checkpoint(checkpoint)
    macs = conv_macs(model)
    model = pad_hidden(model)
    if conv_macs(model) != macs:
        log.info(
            "hidden widths padded to multiples of %d: %.1f → %.1f MMAC at 256x192",
            CHANNEL_MULTIPLE,
            macs / 1e6,
            conv_macs(model) / 1e6,
        )
    diff = export_model(model, out, config["long_side"], name)
    record = {"onnx": str(out), "max_abs_diff": diff, "tolerance": TOLERANCE, "opset": OPSET}
    (checkpoint.parent / "export.json").write_text(json.dumps(record, indent=2) + "\n")

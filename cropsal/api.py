"""The Python API: ``Cropper`` turns images into saliency maps and crop boxes.

from cropsal import Cropper
cropper = Cropper()                       # the shipped model, CUDA when available
result = cropper.crop(cv2.imread("cat.jpg"), aspects=["16:9", "1:1"])
result.crops[0].x, result.crops[0].width  # pixels of the image as given
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cropsal.errors import CropsalError
from cropsal.geometry import DEFAULT_ASPECTS, Target, parse_aspect
from cropsal.model import SaliencyModel
from cropsal.policy import (
    DEFAULT_POLICY,
    PolicyConfig,
    cell_density,
    mirror_asymmetry,
    place_window,
    salient_point,
)
from cropsal.preprocess import map_size_for, resize_log_density


@dataclass(frozen=True)
class Point:
    x: int
    y: int


@dataclass(frozen=True)
class Crop:
    """One chosen window: ``aspect`` is the target as asked (``"16:9"`` or ``"600x600"``)."""

    aspect: str
    x: int
    y: int
    width: int
    height: int
    rule: str
    confidence: float  # saliency mass inside the window, 0–1


@dataclass(frozen=True)
class CropResult:
    """Crops of one ``width × height`` image and the saliency they were chosen from."""

    width: int
    height: int
    salient_point: Point
    crops: list[Crop]
    log_density: np.ndarray = field(repr=False)  # [h, w] float32, the image's aspect ratio


def as_target(aspect: str | Target) -> Target:
    return aspect if isinstance(aspect, Target) else parse_aspect(aspect)


def check_image(image: np.ndarray) -> None:
    if (
        not isinstance(image, np.ndarray)
        or image.dtype != np.uint8
        or image.ndim != 3
        or image.shape[2] != 3
        or min(image.shape[:2]) < 1
    ):
        shape = getattr(image, "shape", None)
        dtype = getattr(image, "dtype", type(image).__name__)
        raise CropsalError(f"expected an HxWx3 uint8 BGR array, got shape {shape} of {dtype}")


def choose_crops(
    log_density: np.ndarray,
    width: int,
    height: int,
    targets: Sequence[Target],
    policy: PolicyConfig = DEFAULT_POLICY,
    asymmetry: float | None = None,
) -> tuple[Point, list[Crop]]:
    """Crops of a ``width × height`` image for ``targets``, from an ``[h, w]`` log-density that
    covers the whole image; ``asymmetry`` is the image's :func:`mirror_asymmetry`, if known."""
    density = cell_density(log_density, policy.temperature)
    crops = []
    for t in targets:
        p = place_window(density, width, height, t.ratio, policy, asymmetry)
        box = p.box
        crops.append(
            Crop(t.label, box.x, box.y, box.width, box.height, p.rule, round(p.confidence, 4))
        )
    return Point(*salient_point(density, width, height)), crops


class Cropper:
    """Saliency crops with an ONNX model (``model=None``: the shipped one).

    ``device`` is ``"auto"`` (CUDA when onnxruntime-gpu and a GPU are present), ``"cpu"`` or
    ``"cuda"``; ``threads`` caps ONNX Runtime's intra-op threads; ``policy`` holds the crop
    policy's thresholds (``PolicyConfig(zoom=0.6)`` lets windows shrink to 60 %);
    ``spin=False`` keeps ONNX Runtime's idle threads from busy-waiting (for pipelines that
    keep other threads busy); ``background=True`` loads the ONNX Runtime session in a thread
    while the caller goes on (see :class:`cropsal.model.SaliencyModel`).
    """

    def __init__(
        self,
        model: str | Path | None = None,
        device: str = "auto",
        threads: int | None = None,
        policy: PolicyConfig | None = None,
        spin: bool = True,
        background: bool = False,
    ) -> None:
        self.model = SaliencyModel(model, device, threads, spin, background)
        self.policy = policy or PolicyConfig()

    @property
    def provider(self) -> str:
        return self.model.provider

    def saliency(self, image: np.ndarray, size: tuple[int, int] | None = None) -> np.ndarray:
        """Saliency of an ``HxWx3 uint8 BGR`` image as a float32 log-density (logsumexp 0).

        The map has the image's aspect ratio: ``size = (w, h)`` if given, else as many cells
        along the long side as the network produces (32 for the shipped model).
        """
        check_image(image)
        return self.fit_map(self.model.predict([image])[0], image.shape[1], image.shape[0], size)

    def fit_map(
        self, net_map: np.ndarray, width: int, height: int, size: tuple[int, int] | None = None
    ) -> np.ndarray:
        """Resample a network output ``[h, w]`` to the image's aspect (or to ``size``)."""
        if size is None:
            size = map_size_for(width, height, max(net_map.shape))
        return resize_log_density(net_map, size[0], size[1])

    def crop(
        self, image: np.ndarray, aspects: Sequence[str | Target] = DEFAULT_ASPECTS
    ) -> CropResult:
        """Choose one window per aspect for an ``HxWx3 uint8 BGR`` image."""
        check_image(image)
        small = self.model.resize(image)
        net_map = self.model.run([self.model.to_input(small)])[0]
        height, width = image.shape[:2]
        log_density = self.fit_map(net_map, width, height)
        return self.crop_from_saliency(log_density, width, height, aspects, mirror_asymmetry(small))

    def crop_from_saliency(
        self,
        log_density: np.ndarray,
        width: int,
        height: int,
        aspects: Sequence[str | Target] = DEFAULT_ASPECTS,
        asymmetry: float | None = None,
    ) -> CropResult:
        """Like :meth:`crop`, from a log-density already computed for a ``width × height`` image
        (and optionally its :func:`cropsal.policy.mirror_asymmetry`)."""
        targets = [as_target(a) for a in aspects]
        point, crops = choose_crops(log_density, width, height, targets, self.policy, asymmetry)
        return CropResult(width, height, point, crops, log_density)

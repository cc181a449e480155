"""The saliency network at run time: an ONNX Runtime session and the pre-processing its
metadata prescribes. Images in, small log-density maps out, in batches of equal input shape."""

from __future__ import annotations

import dataclasses
import logging
import os
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from cropsal.errors import CropsalError, ModelError
from cropsal.onnx_metadata import read_metadata
from cropsal.preprocess import network_input_size, resize_for_network

log = logging.getLogger(__name__)

DEFAULT_MODEL = "cropsal-v3.onnx"
DEVICES = ("auto", "cpu", "cuda")


def default_model_path() -> Path:
    """The ONNX model shipped inside the package."""
    return Path(str(resources.files("cropsal.models").joinpath(DEFAULT_MODEL)))


def resolve_model(model: str | Path | None) -> Path:
    """A model file: ``None`` is the default one, a bare name (``cropsal-v1``) one shipped in
    the package, anything else a path."""
    if model is None:
        return default_model_path()
    path = Path(model)
    if not path.exists() and path.suffix == "" and path.parent == Path("."):
        shipped = default_model_path().with_name(f"{path.name}.onnx")
        if shipped.is_file():
            return shipped
    return path


@dataclass(frozen=True)
class Preprocessing:
    """How images become network input, read from the model's ``cropsal.*`` metadata."""

    long_side: int = 256
    multiple: int = 16
    min_short: int = 32
    max_long: int = 1024
    stride: int = 8

    @classmethod
    def from_metadata(cls, meta: dict[str, str], path: Path) -> Preprocessing:
        """The ``cropsal.*`` entries of a model's metadata; :class:`ModelError` naming ``path``
        when one is missing, not an integer, or not a usable size (all positive, the long side
        within ``max_long``)."""
        try:
            found = cls(**{f: int(meta[f"cropsal.{f}"]) for f in cls.__dataclass_fields__})
        except (KeyError, ValueError) as e:
            raise ModelError(f"{path}: not a cropsal model (metadata {e} missing or invalid)")
        bad = [f"{f}={v}" for f, v in dataclasses.asdict(found).items() if v <= 0]
        if found.long_side > found.max_long:
            bad.append(f"long_side={found.long_side} > max_long={found.max_long}")
        if bad:
            raise ModelError(f"{path}: unusable pre-processing metadata ({', '.join(bad)})")
        return found

    def input_size(self, width: int, height: int) -> tuple[int, int]:
        """``(w, h)`` of the network input for a ``width × height`` image."""
        return network_input_size(
            width, height, self.long_side, self.multiple, self.min_short, self.max_long
        )


def select_providers(device: str) -> list[str]:
    """ONNX Runtime providers for ``device``: ``auto`` takes CUDA when it is available."""
    import onnxruntime as ort

    if device not in DEVICES:
        raise CropsalError(f"invalid device {device!r}; expected one of {', '.join(DEVICES)}")
    available = ort.get_available_providers()
    if device == "cuda":
        if "CUDAExecutionProvider" not in available:
            raise ModelError(
                "device 'cuda' asked for, but this onnxruntime has no CUDA provider "
                "(install onnxruntime-gpu on a machine with an NVIDIA GPU)"
            )
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    if device == "auto" and "CUDAExecutionProvider" in available:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


class SaliencyModel:
    """An ONNX saliency network: ``HxWx3 uint8 BGR`` images → ``[h, w]`` float32 log-densities."""

    def __init__(
        self,
        path: str | Path | None = None,
        device: str = "auto",
        threads: int | None = None,
        spin: bool = True,
        background: bool = False,
    ) -> None:
        """``spin=False`` stops ONNX Runtime's idle threads from busy-waiting for the next run,
        which leaves the cores to decoding and encoding threads in a pipeline.

        The name and pre-processing come from the file's metadata at once. ``background=True``
        loads the ONNX Runtime session (importing ONNX Runtime, optimising the graph: about a
        tenth of a second) in a thread, so that decoding can start meanwhile; the first use of
        :attr:`session` waits for it and raises its error, if loading failed."""
        if device not in DEVICES:
            raise CropsalError(f"invalid device {device!r}; expected one of {', '.join(DEVICES)}")
        self.path = resolve_model(path)
        if not self.path.is_file():
            raise ModelError(f"{self.path}: model file not found")
        try:
            meta = read_metadata(self.path)
        except (OSError, ValueError) as e:
            raise ModelError(f"{self.path}: cannot load ONNX model ({e})") from e
        self.name = meta.get("cropsal.name", self.path.stem)
        self.preprocessing = Preprocessing.from_metadata(meta, self.path)
        self.threads = threads or os.cpu_count() or 1

        self._session = None
        self._loading: Future | None = None
        if background:
            loader = ThreadPoolExecutor(1, thread_name_prefix="cropsal-model")
            self._loading = loader.submit(self._load, device, spin)
            loader.shutdown(wait=False)  # the thread ends once the session is made
        else:
            self._session = self._load(device, spin)

    def _load(self, device: str, spin: bool):
        """The ONNX Runtime session for ``device``; :class:`ModelError` when it cannot be made."""
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.log_severity_level = 3
        if not spin:
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        providers = select_providers(device)
        try:
            session = ort.InferenceSession(str(self.path), options, providers=providers)
        except Exception as e:  # noqa: BLE001 (onnxruntime raises untyped errors for bad files)
            raise ModelError(f"{self.path}: cannot load ONNX model ({str(e).splitlines()[0]})")
        log.info(
            "model %s on %s (%d ONNX Runtime thread%s)",
            self.name,
            session.get_providers()[0],
            self.threads,
            "" if self.threads == 1 else "s",
        )
        return session

    def ready(self) -> None:
        """Wait until the session is loaded; raises :class:`ModelError` if loading failed."""
        if self._session is None and self._loading is not None:
            self._session = self._loading.result()

    @property
    def session(self):
        """The ONNX Runtime ``InferenceSession`` (waits for a background load to finish)."""
        self.ready()
        return self._session

    @property
    def provider(self) -> str:
        """The execution provider that runs the network (``CPUExecutionProvider`` …)."""
        return self.session.get_providers()[0]

    @property
    def input_name(self) -> str:
        return self.session.get_inputs()[0].name

    def resize(self, bgr: np.ndarray) -> np.ndarray:
        """``HxWx3 uint8 BGR`` → ``h×w×3 uint8 BGR`` at the network's input size."""
        return resize_for_network(bgr, self.preprocessing.input_size(bgr.shape[1], bgr.shape[0]))

    @staticmethod
    def to_input(small: np.ndarray) -> np.ndarray:
        """``h×w×3 uint8 BGR`` (from :meth:`resize`) → ``[3, h, w]`` float32 network input."""
        return small.transpose(2, 0, 1).astype(np.float32)

    def prepare(self, bgr: np.ndarray) -> np.ndarray:
        """``HxWx3 uint8 BGR`` → ``[3, h, w]`` float32 network input."""
        return self.to_input(self.resize(bgr))

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        """Network inputs from :meth:`prepare` → ``[h, w]`` log-densities, in the same order;
        inputs of equal shape run as one batch."""
        out: list[np.ndarray | None] = [None] * len(inputs)
        by_shape: dict[tuple, list[int]] = {}
        for i, x in enumerate(inputs):
            by_shape.setdefault(x.shape, []).append(i)
        for idx in by_shape.values():
            batch = np.stack([inputs[i] for i in idx])
            maps = self.session.run(None, {self.input_name: batch})[0]
            for i, m in zip(idx, maps):
                out[i] = m[0]
        return out  # type: ignore[return-value]

    def predict(self, images: list[np.ndarray]) -> list[np.ndarray]:
        """``HxWx3 uint8 BGR`` images → their ``[h, w]`` float32 log-densities."""
        return self.run([self.prepare(im) for im in images])

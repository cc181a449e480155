"""cropsal: crop images around what people look at."""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["Cropper", "__version__"]


def __getattr__(name: str):
    # Imported lazily so that ``cropsal --version`` never loads ONNX Runtime or OpenCV.
    if name == "Cropper":
        from cropsal.api import Cropper

        return Cropper
    raise AttributeError(f"module 'cropsal' has no attribute {name!r}")

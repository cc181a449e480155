"""The per-image result record: one JSON line per input image."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field


@dataclass
class CropRecord:
    aspect: str  # the target as asked: "16:9" or "600x600"
    x: int
    y: int
    width: int
    height: int
    output: str | None  # file written, None when only the JSON was asked for
    rule: str  # which rule of the crop policy chose the window
    confidence: float  # saliency mass inside the window, 0–1


@dataclass
class ImageRecord:
    """What happened to one input; ``error`` is a one-line reason when it failed."""

    input: str
    width: int | None = None  # displayed size (after EXIF orientation)
    height: int | None = None
    salient_point: dict | None = None  # {"x": int, "y": int}
    crops: list[CropRecord] = field(default_factory=list)
    error: str | None = None
    skipped: bool = False  # --skip-existing found every output already there
    format: str | None = None
    notes: list[str] = field(default_factory=list)  # e.g. "animated GIF: first of 3 frames"
    heatmap: str | None = None
    saliency_map: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @classmethod
    def from_json(cls, line: str) -> ImageRecord:
        """The record a :meth:`to_json` line describes."""
        data = json.loads(line)
        data["crops"] = [CropRecord(**c) for c in data.get("crops", [])]
        return cls(**data)

    def to_json(self) -> str:
        """One line of JSON; a path that is not valid Unicode (a file name in another encoding)
        is written with ``\\udcXX`` escapes, so the line stays valid UTF-8."""
        text = json.dumps(asdict(self), ensure_ascii=False)
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            text = json.dumps(asdict(self), ensure_ascii=True)
        return text

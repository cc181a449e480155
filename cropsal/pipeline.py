"""The batch pipeline: discover → decode → infer → crop → write, one record per image.

Decoding and writing run on a thread pool (OpenCV and file I/O release the GIL) while the
network runs batches in the calling thread; one batch is decoded ahead, so reading, inference
and writing overlap while memory stays bounded by a few batches.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from cropsal.api import Cropper, choose_crops
from cropsal.decode import DEFAULT_MAX_PIXELS, DecodedImage, composite, decode_bytes, read_input
from cropsal.discover import InputItem
from cropsal.errors import CropsalError, OutputError
from cropsal.geometry import Box, Target, largest_window
from cropsal.heatmap import OVERLAY_LONG_SIDE, heatmap_paths, write_heatmaps
from cropsal.policy import mirror_asymmetry
from cropsal.records import CropRecord, ImageRecord
from cropsal.write import (
    OutputSpec,
    atomic_write,
    check_folder,
    crop_path,
    cut,
    encode,
    output_stems,
)

log = logging.getLogger(__name__)

# The network's pixels are decoded with at least this many times its input size per side, so
# that a photo cropped to thumbnails (--size 600x600 of a 12-megapixel JPEG) needs one decode,
# shared by the crops and the network.
NETWORK_OVERSAMPLE = 2.0


@dataclass(frozen=True)
class JobOptions:
    targets: tuple[Target, ...]
    output: OutputSpec | None  # None: JSON only, no image files
    heatmaps: OutputSpec | None = None  # overlays (always JPEG) and raw maps; None: none
    max_pixels: int = DEFAULT_MAX_PIXELS
    batch_size: int = 8  # images per network batch: 8 keeps CPU memory low, GPUs want more
    jobs: int = 2


@dataclass
class Work:
    """One image moving through the pipeline."""

    item: InputItem
    stem: PurePosixPath
    record: ImageRecord
    image: DecodedImage | None = None
    net_input: np.ndarray | None = None
    net_map: np.ndarray | None = None
    asymmetry: float | None = None
    existing: frozenset[Path] = frozenset()  # outputs already there, kept (--skip-existing)


def planned_outputs(options: JobOptions, stem: PurePosixPath) -> list[tuple[Path, OutputSpec]]:
    """The files an image with output stem ``stem`` is written to, each with the spec that says
    what to do when it exists already: one crop per target, then the overlay and the raw map."""
    planned = []
    if options.output:
        planned += [(crop_path(options.output, stem, t), options.output) for t in options.targets]
    if options.heatmaps:
        planned += [(p, options.heatmaps) for p in heatmap_paths(options.heatmaps.root / stem)]
    return planned


def carried_over(
    record: ImageRecord,
    stem: PurePosixPath,
    options: JobOptions,
    previous: Mapping[str, Sequence[ImageRecord]],
) -> ImageRecord:
    """For an image skipped because its outputs exist: the record an earlier run wrote for the
    same input (``previous``, by ``input``) when it lists exactly the crops and heatmaps this run
    would write, marked ``skipped``; else ``record``."""
    spec = options.output
    crops = [(t.label, str(crop_path(spec, stem, t)) if spec else None) for t in options.targets]
    maps = (None, None)
    if options.heatmaps:
        maps = tuple(str(p) for p in heatmap_paths(options.heatmaps.root / stem))
    for old in previous.get(record.input, ()):
        listed = [(c.aspect, c.output) for c in old.crops]
        same_maps = not options.heatmaps or (old.heatmap, old.saliency_map) == maps
        if old.error is None and listed == crops and same_maps:
            return dataclasses.replace(old, skipped=True, heatmap=maps[0], saliency_map=maps[1])
    return record


class CropJob:
    """Runs the pipeline over a list of inputs with one :class:`Cropper`."""

    def __init__(
        self,
        cropper: Cropper,
        options: JobOptions,
        previous: Mapping[str, Sequence[ImageRecord]] | None = None,
    ) -> None:
        """``previous``: the records of an earlier run by input, for :func:`carried_over`."""
        self.cropper = cropper
        self.options = options
        self.previous = previous or {}
        self.finishing: deque[Future] = deque()  # crops being written, in input order

    def run(
        self, items: list[InputItem], stems: list[PurePosixPath] | None = None
    ) -> Iterator[ImageRecord]:
        """Yield one record per item, in input order. ``stems`` are the items' output stems,
        made unique over the whole run (:func:`output_stems`); a distributed run computes them
        once for all its items and hands each worker its share."""
        stems = stems if stems is not None else output_stems([i.rel for i in items])
        size = max(1, self.options.batch_size)
        count = -(-len(items) // size)

        def batch(k: int) -> list[Work]:
            # made when needed and dropped once handed back: memory does not grow with the run
            part = range(k * size, min(len(items), (k + 1) * size))
            return [
                Work(
                    items[i], stems[i], ImageRecord(input=str(items[i].path), error=items[i].error)
                )
                for i in part
            ]

        pool = ThreadPoolExecutor(max(1, self.options.jobs), thread_name_prefix="cropsal")
        self.finishing = deque()
        try:
            current = batch(0) if count else []
            decoding = [pool.submit(self.decode, w) for w in current]  # reads, writes nothing
            # the model (perhaps loading in the background) and the output folders must be
            # usable before anything is written
            self.cropper.model.ready()
            if any(i.error is None for i in items):
                self.check_locations()
            for k in range(count):
                for f in decoding:
                    f.result()
                upcoming = batch(k + 1) if k + 1 < count else []
                decoding = [pool.submit(self.decode, w) for w in upcoming]
                self.infer(current)
                self.finishing.extend(pool.submit(self.finish, w) for w in current)
                current = upcoming
                # hand back what is done, in order, keeping at most two batches in flight
                while self.finishing and (
                    self.finishing[0].done() or len(self.finishing) > 2 * size
                ):
                    yield self.finishing.popleft().result()
            while self.finishing:
                yield self.finishing.popleft().result()
        except BaseException:
            # stop cleanly: queued work is cancelled, images being written are completed
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown(wait=True)

    def drain(self) -> Iterator[ImageRecord]:
        """After an interrupt: the records of images that were completed but not yet handed
        back, in order (call once :meth:`run` has raised)."""
        for future in self.finishing:
            if future.done() and not future.cancelled() and future.exception() is None:
                yield future.result()
        self.finishing = deque()

    # --- stages -------------------------------------------------------------------------

    def check_locations(self) -> None:
        """:class:`OutputError` unless the output and heatmap folders can be written."""
        for spec in (self.options.output, self.options.heatmaps):
            if spec is not None:
                check_folder(spec.root)

    def check_existing(self, w: Work) -> None:
        """Files already there: an error unless ``overwrite`` or ``skip_existing``; with
        ``skip_existing`` they are kept, and an image whose files are all there is skipped."""
        planned = planned_outputs(self.options, w.stem)
        present = [(path, spec) for path, spec in planned if path.is_file()]
        clash = [path for path, spec in present if not (spec.overwrite or spec.skip_existing)]
        if clash:
            w.record.error = f"output exists: {clash[0]} (use --overwrite or --skip-existing)"
            return
        w.existing = frozenset(path for path, spec in present if spec.skip_existing)
        w.record.skipped = bool(planned) and len(w.existing) == len(planned)

    def decode(self, w: Work) -> None:
        """Check the outputs, decode, and prepare the network input (in a worker thread)."""
        if w.record.error:
            return
        self.check_existing(w)
        if w.record.skipped:
            w.record = carried_over(w.record, w.stem, self.options, self.previous)
        if w.record.error or w.record.skipped:
            return
        try:
            data = read_input(w.item.path)
            w.image = decode_bytes(
                data, self.options.max_pixels, self.allowed_shrink, self.network_shrink
            )
            small = self.cropper.model.resize(w.image.network)
            w.asymmetry = mirror_asymmetry(small)
            w.net_input = self.cropper.model.to_input(small)
        except CropsalError as e:
            w.record.error = str(e)
        except Exception as e:  # an image that breaks a library must not stop the batch
            log.debug("decoding %s failed", w.item.path, exc_info=True)
            w.record.error = (
                f"cannot decode: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
            )

    def network_shrink(self, width: int, height: int) -> float:
        """How many times fewer pixels per side than ``width × height`` the network's pixels
        may have: its input size times :data:`NETWORK_OVERSAMPLE` (the input's shape follows the
        image's, so EXIF turning changes nothing). It depends on the image alone, never on the outputs asked for, so
        a JPEG gives the same saliency map and the same boxes whether its crops need full
        resolution, a reduced decode or none at all."""
        input_w, input_h = self.cropper.model.preprocessing.input_size(width, height)
        return max(1.0, min(width / input_w, height / input_h) / NETWORK_OVERSAMPLE)

    def allowed_shrink(self, width: int, height: int) -> float:
        """How many times fewer pixels per side a ``width × height`` image may be decoded with
        for its outputs (either orientation, as EXIF may turn it): every crop still gets at
        least its own pixels and an overlay its long side; crops without an exact ``--size``
        keep full resolution. Without outputs, the network's own scale."""
        needs = []
        if self.options.heatmaps:
            needs.append(max(width, height) / OVERLAY_LONG_SIDE)
        if self.options.output:
            for t in self.options.targets:
                if t.size is None:
                    return 1.0
                for w, h in ((width, height), (height, width)):
                    cw, ch = largest_window(w, h, t.ratio)
                    needs.append(min(cw / t.size[0], ch / t.size[1]))
        if not needs:
            return self.network_shrink(width, height)
        return max(1.0, min(needs))

    def infer(self, batch: list[Work]) -> None:
        """Run the network on every decoded image of a batch (in the calling thread)."""
        ready = [w for w in batch if w.net_input is not None]
        if ready:
            for w, m in zip(ready, self.cropper.model.run([w.net_input for w in ready])):
                w.net_map, w.net_input = m, None

    def output_pixels(self, image: DecodedImage) -> np.ndarray:
        """What crops are cut from: BGRA when the image has transparency and the output format
        keeps it (PNG, WebP), else BGR (transparency composited on white for JPEG)."""
        if image.alpha is None:
            return image.bgr
        if self.options.output and self.options.output.format in ("png", "webp"):
            return np.dstack([image.colour, image.alpha])
        return composite(image.colour, image.alpha, 255)

    def finish(self, w: Work) -> ImageRecord:
        """Choose the crops, then cut, encode and write them (in a worker thread)."""
        if w.record.error or w.record.skipped or w.net_map is None:
            return w.record
        bgr = w.image.bgr
        width, height = w.image.width, w.image.height  # full-resolution, displayed
        rec = w.record
        rec.width, rec.height, rec.format = width, height, w.image.format
        rec.notes = list(w.image.notes)
        try:
            log_density = self.cropper.fit_map(w.net_map, width, height)
            point, crops = choose_crops(
                log_density, width, height, self.options.targets, self.cropper.policy, w.asymmetry
            )
            rec.salient_point = {"x": point.x, "y": point.y}
            spec = self.options.output
            source = self.output_pixels(w.image) if spec else None
            for target, c in zip(self.options.targets, crops):
                out = None
                if spec:
                    path = crop_path(spec, w.stem, target)
                    box = to_pixels(Box(c.x, c.y, c.width, c.height), width, height, source)
                    if path not in w.existing:
                        data = encode(cut(source, box, target.size), spec.format, spec.quality)
                        atomic_write(path, data)
                    out = str(path)
                rec.crops.append(
                    CropRecord(c.aspect, c.x, c.y, c.width, c.height, out, c.rule, c.confidence)
                )
            log.debug(
                "%s: %dx%d decoded at %dx%d, crops %s",
                w.item.path,
                width,
                height,
                bgr.shape[1],
                bgr.shape[0],
                ", ".join(f"{c.aspect} {c.rule} {c.confidence:.2f}" for c in rec.crops),
            )
            if self.options.heatmaps:
                boxes = []
                for c in rec.crops:
                    b = to_pixels(Box(c.x, c.y, c.width, c.height), width, height, bgr)
                    boxes.append((c.aspect, (b.x, b.y, b.width, b.height)))
                stem_path = self.options.heatmaps.root / w.stem
                over, raw = write_heatmaps(stem_path, bgr, log_density, boxes, w.existing)
                rec.heatmap, rec.saliency_map = str(over), str(raw)
        except OutputError:
            raise
        except CropsalError as e:
            rec.error, rec.crops = str(e), []
        except Exception as e:
            log.debug("cropping %s failed", w.item.path, exc_info=True)
            rec.error, rec.crops = f"internal error: {type(e).__name__}: {e}", []
        w.image = None  # free the pixels as soon as the record is complete
        return rec


def to_pixels(box: Box, width: int, height: int, pixels: np.ndarray) -> Box:
    """A box in full-resolution coordinates of a ``width × height`` image, in the pixels of
    ``pixels`` (the same image, possibly decoded at a reduced scale)."""
    sx, sy = pixels.shape[1] / width, pixels.shape[0] / height
    if sx == 1.0 and sy == 1.0:
        return box
    x0, x1 = round(box.x * sx), round((box.x + box.width) * sx)
    y0, y1 = round(box.y * sy), round((box.y + box.height) * sy)
    x1, y1 = min(max(x1, x0 + 1), pixels.shape[1]), min(max(y1, y0 + 1), pixels.shape[0])
    return Box(x0, y0, x1 - x0, y1 - y0)

"""Engine *ray*: the same per-image pipeline on Ray Data, for collections beyond one machine.

The driver lists the inputs (local or NFS paths and object-store URIs, with
:func:`~cropsal.discover.discover`) and fixes every image's output stem
once, as the local engine does, so output names come out the same. Each Ray actor holds one
:class:`~cropsal.api.Cropper` (one ONNX Runtime session, CUDA when the actor has a GPU) and runs
:class:`~cropsal.pipeline.CropJob` on the batches it is handed; decoding, the network and writing
therefore behave exactly as in a local run. The result is a Dataset with one row per input:

``index`` (int, position in the input listing), ``input`` (str), ``error`` (str, ``""`` when the
image was cropped) and ``record`` (str, the JSON line ``cropsal crop --json`` writes).

A failing image gives an error record, never a failed job; an output location that cannot be
written stops the job, as it stops a local run. Ray Data is lazy: crops are written while the
returned Dataset is consumed (``iter_rows()``, ``materialize()``, ``write_json()`` …).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

import numpy as np

from cropsal.discover import InputItem, discover, is_uri
from cropsal.pipeline import JobOptions
from cropsal.records import ImageRecord
from cropsal.write import output_stems

if TYPE_CHECKING:
    import ray.data

log = logging.getLogger(__name__)

RECORD_COLUMNS = ("index", "input", "error", "record")


@dataclass(frozen=True)
class WorkerSettings:
    """What every actor needs to build its :class:`~cropsal.pipeline.CropJob`."""

    options: JobOptions
    model: str | None = None  # a shipped model name or a path every worker can read
    device: str = "auto"  # "auto", "cpu" or "cuda", as for the local engine
    zoom: float = 1.0
    threads: int = 1  # decode/write threads and ONNX Runtime threads per actor


class CropWorker:
    """A stateful Ray Data callable: one ONNX session per actor, reused for every batch."""

    def __init__(self, settings: WorkerSettings) -> None:
        from cropsal.api import Cropper
        from cropsal.pipeline import CropJob
        from cropsal.policy import PolicyConfig

        cropper = Cropper(
            settings.model,
            device=settings.device,
            threads=settings.threads,
            policy=PolicyConfig(zoom=settings.zoom),
            spin=False,
        )
        self.job = CropJob(cropper, settings.options)
        log.info("ray worker ready: %s on %s", cropper.model.name, cropper.provider)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Crop one batch of path rows; returns the record columns (see the module docstring)."""
        items = [
            InputItem(p if is_uri(p) else Path(p), PurePosixPath(r), e or None)
            for p, r, e in zip(batch["path"], batch["rel"], batch["error"])
        ]
        stems = [PurePosixPath(s) for s in batch["stem"]]
        records = list(self.job.run(items, stems))
        return {
            "index": np.asarray(batch["index"], np.int64),
            "input": np.array([r.input for r in records], dtype=object),
            "error": np.array([r.error or "" for r in records], dtype=object),
            "record": np.array([r.to_json() for r in records], dtype=object),
        }


def path_rows(items: list[InputItem]) -> list[dict]:
    """One row per item with its globally unique output stem (as the local engine names it)."""
    stems = output_stems([i.rel for i in items])
    return [
        {
            "index": k,
            "path": str(i.path),
            "rel": i.rel.as_posix(),
            "stem": s.as_posix(),
            "error": i.error or "",
        }
        for k, (i, s) in enumerate(zip(items, stems))
    ]


def paths_dataset(
    inputs: Sequence[str], include: tuple[str, ...] = (), exclude: tuple[str, ...] = ()
) -> ray.data.Dataset:
    """A Dataset of path rows (``index``, ``path``, ``rel``, ``stem``, ``error``) for local,
    NFS or object-store inputs, listed on the driver."""
    import ray.data

    return ray.data.from_items(path_rows(discover(inputs, include, exclude)))


def _name_rows(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Fill ``rel``/``stem``/``error``/``index`` for a Dataset that has only ``path``: outputs
    are named after the file (``rel`` = its name), which is unique only if the names are."""
    paths = [str(p) for p in batch["path"]]
    rels = [PurePosixPath(p.rsplit("/", 1)[-1]) for p in paths]
    out = dict(batch)
    out.setdefault("rel", np.array([r.as_posix() for r in rels], dtype=object))
    out.setdefault("stem", np.array([(r.parent / r.stem).as_posix() for r in rels], dtype=object))
    out.setdefault("error", np.array([""] * len(paths), dtype=object))
    out.setdefault("index", np.full(len(paths), -1, np.int64))
    return out


def crop_dataset(
    paths: ray.data.Dataset,
    settings: WorkerSettings,
    *,
    workers: int | None = None,
    cpus_per_worker: float | None = None,
    gpus_per_worker: float | None = None,
) -> ray.data.Dataset:
    """Crop every row of ``paths`` (at least a ``path`` column; rows from
    :func:`paths_dataset` also carry the run-wide output names) on an actor pool.

    ``workers`` defaults to as many actors as the cluster has CPUs (or GPUs, when CUDA is
    used) for them; each actor asks for ``cpus_per_worker`` CPUs (default
    ``settings.threads``) and, with CUDA, ``gpus_per_worker`` GPUs (default 1). Batches hold
    ``settings.options.batch_size`` images. Returns the record Dataset (module docstring)."""
    import ray
    import ray.data

    cuda = settings.device == "cuda" or (
        settings.device == "auto" and ray.cluster_resources().get("GPU", 0) > 0
    )
    cpus = float(cpus_per_worker if cpus_per_worker is not None else settings.threads)
    gpus = float(gpus_per_worker if gpus_per_worker is not None else 1.0) if cuda else 0.0
    if workers is None:
        resources = ray.cluster_resources()
        per = resources.get("GPU", 0) / gpus if gpus else resources.get("CPU", 1) / max(cpus, 1e-9)
        workers = max(1, int(per))
    if "stem" not in paths.schema().names:
        paths = paths.map_batches(_name_rows, batch_format="numpy")
    log.info("ray: %d workers × %.3g CPU, %.3g GPU", workers, cpus, gpus)
    return paths.map_batches(
        CropWorker,
        fn_constructor_kwargs={"settings": settings},
        batch_size=max(1, settings.options.batch_size),
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=workers),
        num_cpus=cpus,
        num_gpus=gpus,
        udf_modifying_row_count=False,
    )


def connect(address: str | None, quiet: bool = True) -> None:
    """Join the Ray cluster at ``address`` (``None``: ``RAY_ADDRESS`` if set, else a local
    instance on this machine's cores); a session already started in this process is kept."""
    import ray
    import ray.data

    if not ray.is_initialized():
        local = address is None and not os.environ.get("RAY_ADDRESS")
        ray.init(
            address=address,
            include_dashboard=False,
            log_to_driver=not quiet,
            logging_level=logging.WARNING,
            # a private instance for this run listens on the loopback interface only
            **({"_node_ip_address": "127.0.0.1"} if local else {}),
        )
    if quiet:
        logging.getLogger("ray.data").setLevel(logging.WARNING)
    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True  # records come back in input order
    context.enable_progress_bars = False  # cropsal shows its own


def run_records(
    items: list[InputItem],
    settings: WorkerSettings,
    address: str | None = None,
    workers: int | None = None,
) -> Iterator[ImageRecord]:
    """The records of a ``cropsal crop --engine ray`` run over ``items``, in input order."""
    import ray.data

    connect(address)
    rows = path_rows(items)
    if not rows:
        return
    records = crop_dataset(ray.data.from_items(rows), settings, workers=workers)
    for row in records.iter_rows():
        yield ImageRecord.from_json(row["record"])

"""Engine *ray*: the same per-image pipeline on Ray Data, for collections beyond one machine.

The driver lists the inputs (local or NFS paths and object-store URIs, with
:func:`~cropsal.discover.discover`) and fixes every image's output stem
once, as the local engine does, so output names come out the same. Each Ray actor holds one
:class:`~cropsal.api.Cropper` (one ONNX Runtime session, CUDA when the actor has a GPU) and runs
:class:`~cropsal.pipeline.CropJob` on the batches it is handed; decoding, the network and writing
therefore behave exactly as in a local run. The result is a Dataset with one row per input:

``index`` (int, position in the input listing), ``input`` (str), ``error`` (str, ``""`` when the
image was cropped), ``record`` (str, the JSON line ``cropsal crop --json`` writes) and
``fatal`` (str, ``""`` unless the output location could not be written).

A failing image (one whose output file is blocked included) gives an error record, never a failed
job. An output location that cannot be written at all stops a local run; here the batch's rows carry
the reason in ``fatal`` (Ray would otherwise replace the error with its own), and ``cropsal crop
--engine ray`` stops on it. Ray Data is lazy: crops are written while the returned Dataset is
consumed (``iter_rows()``, ``materialize()``, ``write_json()`` …).
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

import numpy as np

from cropsal.discover import InputItem, discover, is_uri
from cropsal.errors import CropsalError, OutputError, SetupError
from cropsal.pipeline import JobOptions, carried_over
from cropsal.records import ImageRecord
from cropsal.write import output_stems

if TYPE_CHECKING:
    import ray.data

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerSettings:
    """What every actor needs to build its :class:`~cropsal.pipeline.CropJob`."""

    options: JobOptions
    model: str | None = None  # a shipped model name or a path every worker can read
    device: str = "auto"  # "auto", "cpu" or "cuda", as for the local engine
    zoom: float = 1.0
    threads: int = 1  # decode/write threads and ONNX Runtime threads per actor
    # the driver's working folder: relative inputs and outputs resolve there on every worker
    # (a file system all nodes share, mounted at the same path)
    cwd: str | None = None


class CropWorker:
    """A stateful Ray Data callable: one ONNX session per actor, reused for every batch."""

    def __init__(self, settings: WorkerSettings) -> None:
        from cropsal.api import Cropper
        from cropsal.pipeline import CropJob
        from cropsal.policy import PolicyConfig

        if settings.cwd:
            try:
                os.chdir(settings.cwd)
            except OSError as e:
                log.warning("ray worker: cannot enter the driver's folder %s: %s", settings.cwd, e)
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
        fatal = ""
        try:
            records = list(self.job.run(items, stems))
        except OutputError as e:  # the location, not an image: handed back, the driver stops
            fatal = str(e)
            records = [ImageRecord(input=str(i.path), error=fatal) for i in items]
        return {
            "index": np.asarray(batch["index"], np.int64),
            "input": np.array([r.input for r in records], dtype=object),
            "error": np.array([r.error or "" for r in records], dtype=object),
            "record": np.array([r.to_json() for r in records], dtype=object),
            "fatal": np.array([fatal] * len(records), dtype=object),
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
    """Fill what a Dataset of bare paths lacks. ``rel`` (where outputs go under the output
    folder) defaults to the whole path, scheme and leading slashes dropped, so that names
    cannot collide (``/data/x/a.jpg`` → ``OUTDIR/data/x/a_1x1.jpg``); ``stem`` follows ``rel``;
    ``index`` is −1 (the rows have no run-wide listing)."""
    paths = [str(p) for p in batch["path"]]
    if "rel" in batch:
        rels = [PurePosixPath(str(r)) for r in batch["rel"]]
    else:
        rels = [PurePosixPath(p.split("://", 1)[-1].lstrip("/")) for p in paths]
    out = dict(batch)
    out["rel"] = np.array([r.as_posix() for r in rels], dtype=object)
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

    resources = ray.cluster_resources()
    cuda = settings.device == "cuda" or (settings.device == "auto" and resources.get("GPU", 0) > 0)
    cpus = float(cpus_per_worker if cpus_per_worker is not None else settings.threads)
    gpus = float(gpus_per_worker if gpus_per_worker is not None else 1.0) if cuda else 0.0
    check_resources(cpus, gpus)
    if workers is None:
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


def check_resources(cpus: float, gpus: float) -> None:
    """:class:`CropsalError` unless some node of the cluster can hold one actor of ``cpus``
    CPUs and ``gpus`` GPUs (Ray would otherwise wait for one for ever)."""
    import ray

    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    if any(n.get("CPU", 0) >= cpus and n.get("GPU", 0) >= gpus for n in nodes):
        return
    most_cpu = max((n.get("CPU", 0) for n in nodes), default=0)
    most_gpu = max((n.get("GPU", 0) for n in nodes), default=0)
    if gpus and most_gpu < gpus:
        raise CropsalError(
            f"--device cuda: no node of the Ray cluster has {gpus:g} GPU(s) (most: {most_gpu:g})"
        )
    raise CropsalError(
        f"--jobs {cpus:g}: each Ray worker would need {cpus:g} CPUs, but no node of the "
        f"cluster has more than {most_cpu:g}"
    )


def require_ray() -> None:
    """:class:`SetupError`, saying how to install it, unless Ray Data can be imported."""
    try:
        import ray.data  # noqa: F401
    except ImportError as e:
        raise SetupError(f"--engine ray needs Ray Data ({e}): pip install 'cropsal[ray]'") from e


def connect(address: str | None, quiet: bool = True) -> None:
    """Join the Ray cluster at ``address`` (``None``: ``RAY_ADDRESS`` if set, else a local
    instance on this machine's cores); a session already started in this process is kept."""
    import ray
    import ray.data

    if not ray.is_initialized():
        # a run of cropsal reports nothing about itself to anyone (Ray's usage statistics)
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        if quiet:  # Ray's start-up notices and deprecation warnings
            warnings.filterwarnings("ignore", module=r"ray(\.|$)")
        ray.init(
            address=address,
            include_dashboard=False,
            log_to_driver=not quiet,
            logging_level=logging.ERROR if quiet else logging.INFO,
        )
    if quiet:
        for name in ("ray", "ray.data"):
            logging.getLogger(name).setLevel(logging.ERROR)
    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True  # records come back in input order
    context.enable_progress_bars = False  # cropsal shows its own


def run_records(
    items: list[InputItem],
    settings: WorkerSettings,
    address: str | None = None,
    workers: int | None = None,
    quiet: bool = True,
    previous: Mapping[str, Sequence[ImageRecord]] | None = None,
) -> Iterator[ImageRecord]:
    """The records of a ``cropsal crop --engine ray`` run over ``items``, in input order;
    :class:`OutputError` when a worker could not write to the output location. A skipped
    image gets its record from ``previous`` (an earlier run's, by input) when one fits
    (:func:`~cropsal.pipeline.carried_over`)."""
    import ray.data

    rows = path_rows(items)
    if not rows:
        return
    connect(address, quiet)
    records = crop_dataset(ray.data.from_items(rows), settings, workers=workers)
    for row in records.iter_rows():
        if row["fatal"]:
            raise OutputError(row["fatal"])
        record = ImageRecord.from_json(row["record"])
        if record.skipped and previous:
            stem = PurePosixPath(rows[row["index"]]["stem"])
            record = carried_over(record, stem, settings.options, previous)
        yield record

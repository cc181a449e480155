"""The body of ``cropsal crop``: wires discovery, the pipeline, progress and the JSON stream."""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import click

from cropsal.cli.main import printable
from cropsal.errors import ExitCode, ModelError, OutputError
from cropsal.geometry import Target
from cropsal.records import ImageRecord
from cropsal.write import FILE_MODE, write_reason

log = logging.getLogger("cropsal")


def stdin_paths(nul: bool) -> list[str]:
    """Paths listed on stdin (bytes decoded as the file system does, so odd names survive)."""
    data = sys.stdin.buffer.read()
    parts = data.split(b"\0") if nul else data.splitlines()
    return [os.fsdecode(p) for p in parts if p.strip()]


def read_records(path: str | None) -> dict[str, list[ImageRecord]]:
    """The records in an earlier run's JSON Lines file, by input; nothing when ``path`` is not
    a regular file (``-``, missing, a device). Lines that are not records are passed over."""
    if path in (None, "-") or not Path(path).is_file():
        return {}
    records: dict[str, list[ImageRecord]] = {}
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            for line in f:
                record = _parse(line)
                if record is not None:
                    records.setdefault(record.input, []).append(record)
    except OSError as e:
        log.warning("%s: cannot read the earlier records: %s", path, e.strerror or e)
    return records


def _parse(line: str) -> ImageRecord | None:
    try:
        return ImageRecord.from_json(line)
    except (ValueError, TypeError, KeyError, AttributeError):
        return None


def _input_of(line: str) -> str | None:
    try:
        return json.loads(line).get("input")
    except (ValueError, AttributeError):
        return None


def keep_unreached(tmp: Path, target: Path) -> None:
    """Append to the JSON Lines in ``tmp`` (a run that stopped early) the lines of ``target``
    (the earlier run's file) for inputs the run did not reach, so no record is lost."""
    if not target.is_file():
        return
    with open(tmp, encoding="utf-8", errors="surrogateescape") as f:
        reached = {_input_of(line) for line in f}
    with (
        open(target, encoding="utf-8", errors="surrogateescape") as old,
        open(tmp, "a", encoding="utf-8", errors="surrogateescape") as new,
    ):
        for line in old:
            name = _input_of(line)
            if name is not None and name not in reached:
                new.write(line if line.endswith("\n") else line + "\n")


@contextmanager
def json_sink(path: str | None) -> Iterator[IO[str] | None]:
    """A text stream for JSON Lines: stdout for ``-``; for a regular file (new or existing,
    symlinks followed), a temporary file beside it, renamed into place when the run ends, so no
    line is cut short. A run that stops early (interrupted, or its output location unusable)
    still renames its lines into place, followed by the earlier file's lines for the inputs it
    did not reach. Anything else (a device, a named pipe) is opened and written directly."""
    if path is None:
        yield None
        return
    if path == "-":
        yield sys.stdout
        sys.stdout.flush()
        return
    target = Path(path).resolve()
    if target.exists() and not target.is_file():
        try:
            with open(target, "w", encoding="utf-8") as stream:
                yield stream
        except OSError as e:
            raise OutputError(f"{path}: cannot write JSON: {write_reason(e)}") from e
        return
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    except OSError as e:
        raise OutputError(f"{path}: cannot write JSON: {write_reason(e)}") from e
    os.fchmod(fd, FILE_MODE)
    stream = os.fdopen(fd, "w", encoding="utf-8")
    finished, existed = False, target.exists()
    try:
        yield stream
        finished = True
    finally:
        written = stream.tell() > 0
        stream.close()
        try:
            if not finished and not written and not existed:  # stopped before any record
                os.unlink(tmp)
            else:
                if not finished:
                    keep_unreached(Path(tmp), target)
                os.replace(tmp, target)
        except OSError as e:
            os.unlink(tmp)
            raise OutputError(f"{path}: cannot write JSON: {write_reason(e)}") from e


@contextmanager
def progress_bar(total: int, enabled: bool):
    """A rich progress bar on stderr; ``advance()`` is a no-op when disabled."""
    if not enabled:
        yield lambda: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    console = Console(stderr=True)
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task("cropping", total=total)
        yield lambda: progress.advance(task)


def run_crop(
    *,
    inputs: tuple[str, ...],
    outdir: Path | None,
    targets: tuple[Target, ...],
    zoom: float,
    fmt: str,
    quality: int,
    json_path: str | None,
    heatmaps: Path | None,
    include: tuple[str, ...],
    exclude: tuple[str, ...],
    nul: bool,
    overwrite: bool,
    skip_existing: bool,
    max_pixels: int,
    model_path: Path | None,
    device: str,
    batch_size: int,
    jobs: int,
    quiet: bool,
    engine: str = "local",
    address: str | None = None,
    workers: int | None = None,
) -> int:
    from cropsal.api import Cropper
    from cropsal.discover import discover
    from cropsal.pipeline import CropJob, JobOptions
    from cropsal.policy import PolicyConfig
    from cropsal.write import OutputSpec

    started = time.monotonic()
    if engine == "ray":
        from cropsal.ray_engine import require_ray

        require_ray()
    else:  # loads in the background while the inputs are listed and the first images decode
        cropper = Cropper(
            model_path,
            device=device,
            threads=jobs,
            policy=PolicyConfig(zoom=zoom),
            spin=False,
            background=True,
        )
    expanded: list[str] = []
    for raw in inputs:
        expanded.extend(stdin_paths(nul) if raw == "-" else [raw])
    # our own outputs are never inputs (an output folder inside an input folder)
    own = [p for p in (outdir, heatmaps) if p is not None]
    if json_path not in (None, "-"):
        own.append(Path(json_path))
    items = discover(expanded, include, exclude, skip=own)
    if not items:
        filters = " (with --include/--exclude filters)" if include or exclude else ""
        log.warning("no images found in %s%s", ", ".join(inputs), filters)

    spec = OutputSpec(outdir, fmt, quality, overwrite, skip_existing) if outdir else None
    maps = OutputSpec(heatmaps, "jpg", 90, overwrite, skip_existing) if heatmaps else None
    options = JobOptions(targets, spec, maps, max_pixels, batch_size, jobs)
    # --skip-existing: a skipped image keeps the record the JSON file holds from an earlier run
    previous = read_records(json_path) if skip_existing else {}
    if engine == "ray":
        from cropsal.model import resolve_model
        from cropsal.ray_engine import WorkerSettings, run_records

        # the workers open the model by absolute path (a shared file system) or shipped name
        model = None if model_path is None else str(resolve_model(model_path).resolve())
        if model is not None and not Path(model).is_file():
            raise ModelError(f"{model}: model file not found")
        settings = WorkerSettings(options, model, device, zoom, jobs, cwd=os.getcwd())
        job = None
        ray_quiet = not log.isEnabledFor(logging.INFO)  # Ray's own messages only with -v
        records = run_records(items, settings, address, workers, ray_quiet, previous)
    else:
        log.info("batch size %d, %d worker threads", batch_size, jobs)
        job = CropJob(cropper, options, previous)
        records = job.run(items)

    counts = {"cropped": 0, "failed": 0, "skipped": 0}
    show_progress = not quiet and sys.stderr.isatty()
    with json_sink(json_path) as sink, progress_bar(len(items), show_progress) as advance:

        def emit(record: ImageRecord) -> None:
            report(record, counts)
            if sink is not None:
                sink.write(record.to_json() + "\n")
                sink.flush()
            advance()

        try:
            for record in records:
                emit(record)
        except KeyboardInterrupt:
            # images whose crops were written before the interrupt still get their record
            for record in job.drain() if job else ():
                emit(record)
            raise

    if not quiet:
        seconds = time.monotonic() - started
        click.echo(
            f"cropsal: {counts['cropped']} cropped, {counts['failed']} failed, "
            f"{counts['skipped']} skipped in {seconds:.1f} s",
            err=True,
        )
    return ExitCode.INPUTS_FAILED if counts["failed"] else ExitCode.OK


def report(record: ImageRecord, counts: dict[str, int]) -> None:
    if record.error:
        counts["failed"] += 1
        # one line per failure, shown as named, whatever control characters the name holds
        click.echo(f"cropsal: error: {printable(f'{record.input}: {record.error}')}", err=True)
    elif record.skipped:
        counts["skipped"] += 1
    else:
        counts["cropped"] += 1

"""The body of ``cropsal crop``: wires discovery, the pipeline, progress and the JSON stream."""

from __future__ import annotations

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

from cropsal.errors import ExitCode, ModelError, OutputError
from cropsal.geometry import Target
from cropsal.records import ImageRecord
from cropsal.write import FILE_MODE

log = logging.getLogger("cropsal")


def stdin_paths(nul: bool) -> list[str]:
    """Paths listed on stdin (bytes decoded as the file system does, so odd names survive)."""
    data = sys.stdin.buffer.read()
    parts = data.split(b"\0") if nul else data.splitlines()
    return [os.fsdecode(p) for p in parts if p.strip()]


@contextmanager
def json_sink(path: str | None) -> Iterator[IO[str] | None]:
    """A text stream for JSON Lines: stdout for ``-``; for a regular file (new or existing,
    symlinks followed), a temporary file beside it, renamed into place when the run ends (even an
    interrupted one), so no line is cut short; anything else (a device, a named pipe) is opened
    and written directly."""
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
            raise OutputError(f"{path}: cannot write JSON: {e.strerror or e}") from e
        return
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    except OSError as e:
        raise OutputError(f"{path}: cannot write JSON: {e.strerror or e}") from e
    os.fchmod(fd, FILE_MODE)
    stream = os.fdopen(fd, "w", encoding="utf-8")
    try:
        yield stream
    finally:
        stream.close()
        try:
            os.replace(tmp, target)
        except OSError as e:
            os.unlink(tmp)
            raise OutputError(f"{path}: cannot write JSON: {e.strerror or e}") from e


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
    options = JobOptions(targets, spec, heatmaps, max_pixels, batch_size, jobs)
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
        records = run_records(items, settings, address, workers, quiet=ray_quiet)
    else:
        cropper = Cropper(
            model_path, device=device, threads=jobs, policy=PolicyConfig(zoom=zoom), spin=False
        )
        log.info("batch size %d, %d worker threads", batch_size, jobs)
        job = CropJob(cropper, options)
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
        # one line per failure, even for a file name with a line break in it
        name = record.input.replace("\n", "\\n").replace("\r", "\\r")
        click.echo(f"cropsal: error: {name}: {record.error}", err=True)
    elif record.skipped:
        counts["skipped"] += 1
    else:
        counts["cropped"] += 1

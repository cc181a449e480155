"""``cropsal crop``: crop images and folders of images around their most looked-at region."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import click

from cropsal.cli.main import configure_logging, printable
from cropsal.decode import DEFAULT_MAX_PIXELS
from cropsal.errors import CropsalError, ExitCode, SetupError
from cropsal.geometry import DEFAULT_ASPECTS, parse_aspect, parse_size

log = logging.getLogger("cropsal")


def _targets(aspects: tuple[str, ...], sizes: tuple[str, ...]):
    """The crop targets asked for, duplicates dropped; two that would write the same file name
    (``--aspect 1920:1080 --size 1920x1080``) are a usage error."""
    try:
        targets = [parse_aspect(a) for a in aspects] + [parse_size(s) for s in sizes]
    except CropsalError as e:
        raise click.BadParameter(str(e)) from e
    if not targets:
        targets = [parse_aspect(a) for a in DEFAULT_ASPECTS]
    unique = list(dict.fromkeys(targets))
    by_suffix: dict[str, str] = {}
    for t in unique:
        if t.suffix in by_suffix:
            raise click.UsageError(
                f"targets {by_suffix[t.suffix]!r} and {t.label!r} would both write "
                f"*_{t.suffix}.* files; give only one of them"
            )
        by_suffix[t.suffix] = t.label
    return tuple(unique)


@click.command("crop", context_settings={"show_default": True})
@click.argument("inputs", nargs=-1, required=True, metavar="INPUT...")
@click.option(
    "-o",
    "--output",
    "outdir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for the crops (mirrors the input folders). Without it, only --json "
    "and --heatmaps are written.",
)
@click.option(
    "--aspect",
    "aspects",
    multiple=True,
    metavar="W:H",
    help="Crop the largest window of this shape (repeatable). Default: 1:1, 16:9 and "
    "9:16 when neither --aspect nor --size is given.",
)
@click.option(
    "--size",
    "sizes",
    multiple=True,
    metavar="WxH",
    help="Crop the largest window of this shape and resize it to exactly W×H pixels (repeatable).",
)
@click.option(
    "--zoom",
    type=click.FloatRange(0.1, 1.0),
    default=1.0,
    help="Let a window shrink down to this fraction of the largest (e.g. 0.6) when a smaller "
    "one keeps nearly all the saliency; 1 never zooms.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["jpg", "jpeg", "png", "webp"], case_sensitive=False),
    default="jpg",
    help="Format of the crops (jpeg is jpg).",
)
@click.option("--quality", type=click.IntRange(1, 100), default=90, help="JPEG/WebP quality.")
@click.option(
    "--json",
    "json_path",
    metavar="PATH",
    help="Write one JSON record per input image (JSON Lines); '-' for stdout.",
)
@click.option(
    "--heatmaps",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for saliency overlays (<stem>_saliency.jpg) and raw maps (.npy).",
)
@click.option(
    "--include",
    multiple=True,
    metavar="GLOB",
    help="Only files whose name or relative path matches (repeatable).",
)
@click.option(
    "--exclude",
    multiple=True,
    metavar="GLOB",
    help="Skip files whose name or relative path matches (repeatable).",
)
@click.option(
    "-0",
    "--null",
    "nul",
    is_flag=True,
    help="With '-', paths on stdin are NUL-separated (as from find -print0).",
)
@click.option("--overwrite", is_flag=True, help="Replace crops and heatmaps that already exist.")
@click.option(
    "--skip-existing",
    is_flag=True,
    help="Skip inputs whose crops and heatmaps all exist already, write only the missing "
    "files of the others (resume a run).",
)
@click.option(
    "--max-pixels",
    type=click.IntRange(1),
    default=DEFAULT_MAX_PIXELS,
    help="Refuse images with more pixels than this.",
)
@click.option(
    "--model",
    "model_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Saliency model: an ONNX file, or the name of a shipped one (cropsal-v3, the default: "
    "distilled and pruned; cropsal-v1: a little better, twice the network time).",
)
@click.option(
    "--device",
    type=click.Choice(["auto", "cpu", "cuda"]),
    default="auto",
    help="auto uses CUDA when onnxruntime-gpu and a GPU are present.",
)
@click.option(
    "--batch-size",
    type=click.IntRange(1, 1024),
    default=8,
    help="Images per network batch (more for GPUs).",
)
@click.option(
    "--jobs",
    type=click.IntRange(1, 256),
    default=None,
    help="Worker threads for decoding and writing [default: CPU count; with --engine ray, "
    "1 per actor].",
)
@click.option(
    "--engine",
    type=click.Choice(["local", "ray"]),
    default="local",
    help="local: threads in this process; ray: Ray Data actors (needs: pip install "
    "'cropsal[ray]'), on this machine or the cluster given by --address.",
)
@click.option(
    "--address",
    metavar="ADDR",
    help="With --engine ray: the cluster to join (e.g. ray://head:10001 or auto) "
    "[default: $RAY_ADDRESS, else a local Ray instance].",
)
@click.option(
    "--workers",
    type=click.IntRange(1),
    default=None,
    help="With --engine ray: number of actors, each with --jobs CPUs (or a GPU with CUDA) "
    "[default: as many as the cluster holds].",
)
@click.option("-q", "--quiet", is_flag=True, help="Print nothing but errors.")
@click.option("-v", "--verbose", count=True, show_default=False, help="Log more (-vv: debug).")
@click.option("--traceback", "show_traceback", is_flag=True, help="Show tracebacks of errors.")
def crop(
    inputs,
    outdir,
    aspects,
    sizes,
    zoom,
    fmt,
    quality,
    json_path,
    heatmaps,
    include,
    exclude,
    nul,
    overwrite,
    skip_existing,
    max_pixels,
    model_path,
    device,
    batch_size,
    jobs,
    engine,
    address,
    workers,
    quiet,
    verbose,
    show_traceback,
) -> int:
    """Crop each INPUT (image files, folders walked recursively, or '-' to read paths from
    stdin) around its most looked-at region. Crops are written as
    OUTDIR/<relative folder>/<stem>_<W>x<H>.<format>.

    Exit status: 0 all images cropped, 1 some inputs failed, 2 usage error, 130 interrupted.
    """
    configure_logging(-1 if quiet else verbose)
    fmt = "jpg" if fmt.lower() == "jpeg" else fmt.lower()
    targets = _targets(aspects, sizes)
    if outdir is None and json_path is None and heatmaps is None:
        raise click.UsageError("nothing to write: give -o OUTDIR, --json PATH or --heatmaps DIR")
    if overwrite and skip_existing:
        raise click.UsageError("--overwrite and --skip-existing exclude each other")
    if json_path not in (None, "-") and Path(json_path).is_dir():
        raise click.UsageError(f"--json {json_path}: is a folder; give a file name")
    if inputs.count("-") > 1:
        raise click.UsageError("'-' (read paths from stdin) may be given once")
    for name, folder in (("--output", outdir), ("--heatmaps", heatmaps)):
        if folder is not None and re.match(r"^[A-Za-z][A-Za-z0-9+.-]+:/", str(folder)):
            raise click.UsageError(
                f"{name} {folder}: writing to an object store is not supported; give a folder "
                "(on a file system every worker shares, with --engine ray)"
            )
    if json_path and re.match(r"^[A-Za-z][A-Za-z0-9+.-]+://", json_path):
        raise click.UsageError(
            f"--json {json_path}: writing to an object store is not supported; give a file "
            "name or '-' (and copy the file there)"
        )
    if engine != "ray" and (address or workers):
        raise click.UsageError("--address and --workers need --engine ray")
    if engine == "ray" and jobs is None:
        jobs = 1  # one CPU per actor unless asked otherwise

    try:
        from cropsal.cli.run import run_crop

        return run_crop(
            inputs=inputs,
            outdir=outdir,
            targets=targets,
            zoom=zoom,
            fmt=fmt,
            quality=quality,
            json_path=json_path,
            heatmaps=heatmaps,
            include=include,
            exclude=exclude,
            nul=nul,
            overwrite=overwrite,
            skip_existing=skip_existing,
            max_pixels=max_pixels,
            model_path=model_path,
            device=device,
            batch_size=batch_size,
            jobs=jobs or os.cpu_count() or 1,
            engine=engine,
            address=address,
            workers=workers,
            quiet=quiet,
        )
    except (KeyboardInterrupt, BrokenPipeError):  # the entry point stops quietly for these
        raise
    except Exception as e:
        if show_traceback:
            raise
        return report_error(e)


def report_error(e: Exception) -> ExitCode:
    """One line on stderr for an error that stopped the run, and the exit status: 2 when the
    run could not start as asked (model, optional dependency), else 1."""
    if isinstance(e, CropsalError):
        message = str(e)
    else:
        message = f"{type(e).__name__}: {e} (--traceback shows where)"
    click.echo(f"cropsal: error: {printable(message)}", err=True)
    return ExitCode.USAGE if isinstance(e, SetupError) else ExitCode.INPUTS_FAILED

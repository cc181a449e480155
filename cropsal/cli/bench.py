"""``cropsal bench``: throughput, per-stage times and memory, optionally next to the peers."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict
from pathlib import Path

import click

from cropsal.cli.main import configure_logging
from cropsal.errors import ExitCode

log = logging.getLogger("cropsal")


@click.command("bench", context_settings={"show_default": True})
@click.argument("inputs", nargs=-1, required=True, metavar="INPUT...")
@click.option(
    "--size",
    "sizes",
    multiple=True,
    metavar="WxH",
    help="Crop sizes per image (repeatable). Default: 600x600.",
)
@click.option("--aspect", "aspects", multiple=True, metavar="W:H", help="Aspects (repeatable).")
@click.option("--rounds", type=click.IntRange(1), default=3, help="Passes over the inputs.")
@click.option("--jobs", type=click.IntRange(1), default=None, help="Worker threads [CPU count].")
@click.option("--batch-size", type=click.IntRange(1), default=8, help="Images per batch.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto")
@click.option(
    "--compare",
    is_flag=True,
    help="Also run vipsthumbnail, smartcrop.py and Twitter's network where installed.",
)
@click.option(
    "--model",
    "model_path",
    help="Saliency model: an ONNX file or a shipped name [default: the shipped default].",
)
@click.option("--json", "json_path", metavar="PATH", help="Write the result as JSON ('-': stdout).")
@click.option("-q", "--quiet", is_flag=True, help="No table.")
@click.option("-v", "--verbose", count=True, show_default=False, help="Log more.")
def bench(
    inputs,
    sizes,
    aspects,
    rounds,
    jobs,
    batch_size,
    device,
    compare,
    model_path,
    json_path,
    quiet,
    verbose,
) -> int:
    """Time the real pipeline over INPUT images (files or folders)."""
    configure_logging(-1 if quiet else verbose)
    from cropsal.bench import run_bench
    from cropsal.cli.crop import _targets
    from cropsal.discover import discover

    targets = _targets(aspects, sizes or (() if aspects else ("600x600",)))
    items = [i for i in discover(inputs) if not i.error]
    if not items:
        raise click.UsageError("no images found in the inputs")
    result = run_bench(
        [i.path for i in items],
        targets,
        rounds,
        jobs or os.cpu_count() or 1,
        batch_size,
        device,
        compare,
        model_path,
    )
    data = asdict(result)
    if json_path == "-":
        click.echo(json.dumps(data, indent=2))
    elif json_path:
        Path(json_path).write_text(json.dumps(data, indent=2) + "\n")
    if not quiet:
        print_result(data)
    return ExitCode.OK


def print_result(data: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(stderr=True, width=max(100, Console(stderr=True).width))
    m = data["machine"]
    console.print(
        f"{data['images']} images × {data['rounds']} rounds on {m['cpu']} "
        f"({m['cores']} cores), {m['provider']}, ORT threads {m['ort_threads']}, "
        f"jobs {m['jobs']}, model {m['model']}"
    )
    console.print(
        f"cropsal pipeline: [bold]{data['images_per_s']:.1f} images/s[/bold], "
        f"peak RSS {data['peak_rss_mb']:.0f} MiB"
    )
    floor = data["decode_floor_per_s"]
    if floor:
        scales = ", ".join(f"{n} at {k}" for k, n in sorted(data["decode_scales"].items()))
        process = data["peers"].get("cropsal crop (process)", {}).get("images_per_s")
        share = f"; the cropsal process {100 * process / floor:.0f} %" if process else ""
        console.print(
            f"decode floor (decoding alone, {scales}): {floor:.1f} images/s; "
            f"the pipeline reaches {100 * data['images_per_s'] / floor:.0f} %{share}"
        )
        vips = data["peers"].get("vipsthumbnail --smartcrop attention", {}).get("images_per_s")
        if vips:
            console.print(
                f"4× vipsthumbnail would be {4 * vips:.1f} images/s, "
                f"{100 * 4 * vips / floor:.0f} % of the decode floor"
            )
    stages = Table(title="ms per image, each stage alone (median)")
    for s in data["stage_ms"]:
        stages.add_column(s, justify="right")
    stages.add_row(*[f"{v:.2f}" for v in data["stage_ms"].values()])
    console.print(stages)
    if data["peers"]:
        peers = Table(title="same images, same run")
        for col in ("peer", "figure", "cropsal is faster by"):
            peers.add_column(col, justify="right" if col != "peer" else "left")
        for name, p in data["peers"].items():
            if "images_per_s" in p:
                figure = f"{p['images_per_s']:.1f} images/s, {p['peak_rss_mb']:.0f} MiB"
                ratio = p.get("cropsal_speedup", 1.0)
            elif "fastgaze_ms" in p:
                figure = f"{p['fastgaze_ms']:.1f} ms vs cropsal's {p['cropsal_ms']:.1f} ms"
                ratio = p["ratio_to_cropsal"]
            else:
                figure = f"{p['ms_per_image']:.1f} ms/image"
                ratio = p["ratio_to_cropsal"]
            peers.add_row(name, figure, f"{ratio:.2f}×")
        console.print(peers)

"""``cropsal eval``: saliency and crop metrics of models side by side on fixation data."""

from __future__ import annotations

import json
import logging
import math
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import click

from cropsal.cli.main import configure_logging
from cropsal.errors import CropsalError, ExitCode

if TYPE_CHECKING:  # imported when a command runs, so that 'cropsal --help' stays fast
    from cropsal.datasets import CentreBiasBaseline, FixationSet
    from cropsal.evaluate import Predictor

log = logging.getLogger("cropsal")

FASTGAZE = Path("../shared/teachers/twitter-fastgaze/fastgaze.vxm")
COLUMNS = [
    ("nss", "NSS", "{:.3f}"),
    ("auc_judd", "AUC-J", "{:.3f}"),
    ("auc_shuffled", "sAUC", "{:.3f}"),
    ("cc", "CC", "{:.3f}"),
    ("kl", "KL", "{:.3f}"),
    ("information_gain", "IG bits", "{:+.3f}"),
]


@click.command("eval", context_settings={"show_default": True})
@click.argument("datasets", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option(
    "--model",
    "models",
    multiple=True,
    help="ONNX file or shipped model name to score (repeatable). Default: the shipped model.",
)
@click.option(
    "--split",
    type=click.Choice(["val", "train", "all"]),
    default="val",
    help="Images scored: 'val' is every tenth image, never trained on.",
)
@click.option(
    "--aspect",
    "aspects",
    multiple=True,
    default=("1:1", "16:9", "9:16"),
    help="Aspects of the crop metrics (repeatable).",
)
@click.option(
    "--fastgaze",
    "fastgaze_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=FASTGAZE,
    help="Twitter's network, scored too when the file exists.",
)
@click.option(
    "--zoom",
    type=click.FloatRange(0.1, 1.0),
    default=1.0,
    help="Crop policy: smallest window scale (1: no zoom), as in 'cropsal crop'.",
)
@click.option(
    "--limit",
    type=click.IntRange(0),
    default=0,
    help="Score at most this many images per data set (0: all).",
)
@click.option(
    "--json", "json_path", metavar="PATH", help="Write the results as JSON ('-': stdout)."
)
@click.option("--threads", type=click.IntRange(1), default=None, help="ONNX Runtime threads.")
@click.option("-q", "--quiet", is_flag=True, help="No table, no progress.")
@click.option("-v", "--verbose", count=True, show_default=False, help="Log more.")
def eval_command(
    datasets, models, split, aspects, fastgaze_path, zoom, limit, json_path, threads, quiet, verbose
) -> int:
    """Score saliency models and the crop policy on eye-tracking DATASETs, next to a
    centre-bias baseline and Twitter's network.

    \b
    A DATASET folder holds:
      images/<name>.jpg  the photos
      fixations.npz      arrays image, width, height (one entry per image: its file
                         name under images/ and its size in pixels); x, y and optional
                         subject (one entry per fixation: pixels from 0, and the observer
                         number the human-consistency row needs); offsets (images + 1
                         entries, from 0): image i's fixations are offsets[i]:offsets[i+1]
    """
    configure_logging(-1 if quiet else verbose)
    from cropsal.write import atomic_write, check_folder

    try:  # a data set, model or image that cannot be used stops the run: partial scores mislead
        if json_path not in (None, "-"):  # found unwritable now, not after the whole run
            check_folder(Path(json_path).parent)
        sets, baseline, predictors = load_inputs(datasets, models, fastgaze_path, threads)
        show_progress = not quiet and sys.stderr.isatty()
        results = score(predictors, sets, baseline, split, aspects, limit, zoom, show_progress)
    except (CropsalError, OSError, ValueError) as e:
        click.echo(f"cropsal: error: {e}", err=True)
        return ExitCode.USAGE
    results = {"split": split, "aspects": list(aspects), "results": results}

    status = ExitCode.OK
    if json_path == "-":
        click.echo(json_text(results))
    elif json_path:
        try:
            atomic_write(Path(json_path), (json_text(results) + "\n").encode())
        except CropsalError as e:  # the tables below still show the results
            click.echo(f"cropsal: error: {e}", err=True)
            status = ExitCode.INPUTS_FAILED
    if not quiet:
        print_tables(results, list(aspects))
    return status


def load_inputs(
    datasets: tuple[str, ...], models: tuple[str, ...], fastgaze_path: Path, threads: int | None
) -> tuple[list[FixationSet], CentreBiasBaseline, dict[str, Predictor]]:
    """The data sets, the centre-bias baseline fitted on their training splits, and the
    predictors by name (the baseline, each model, Twitter's network when its file exists)."""
    from cropsal.datasets import CentreBiasBaseline, load_fixation_set
    from cropsal.evaluate import centre_bias_predictor, fastgaze_predictor, model_predictor
    from cropsal.model import SaliencyModel, default_model_path

    sets = [load_fixation_set(d) for d in datasets]
    baseline = CentreBiasBaseline.fit(sets, "train")
    predictors = {"centre-bias": centre_bias_predictor(baseline)}
    for path in models or [default_model_path()]:
        model = SaliencyModel(path, device="cpu", threads=threads)
        name = model.name if model.name not in predictors else str(path)
        predictors[name] = model_predictor(model)
    if fastgaze_path.is_file():
        from cropsal.teachers.fastgaze import FastGaze

        predictors["twitter-fastgaze"] = fastgaze_predictor(
            FastGaze(fastgaze_path, threads), baseline
        )
    else:
        log.warning("%s not found: Twitter's network is left out", fastgaze_path)
    return sets, baseline, predictors


def score(
    predictors: dict[str, Predictor],
    sets: list[FixationSet],
    baseline: CentreBiasBaseline,
    split: str,
    aspects: tuple[str, ...],
    limit: int,
    zoom: float,
    show_progress: bool,
) -> dict:
    """:func:`cropsal.evaluate.evaluate` behind a progress bar on stderr."""
    from cropsal.cli.run import progress_bar
    from cropsal.evaluate import evaluate
    from cropsal.policy import PolicyConfig

    total = sum(len(fs.indices(split)[: limit or None]) for fs in sets)
    with progress_bar(total, show_progress) as advance, warnings.catch_warnings():
        # an undefined metric is NaN in the results ('n/a' in the tables); numpy's warnings
        # about it would only repeat that, without saying which metric
        warnings.simplefilter("ignore", RuntimeWarning)
        policy = PolicyConfig(zoom=zoom)
        return evaluate(predictors, sets, split, baseline, tuple(aspects), limit, advance, policy)


def json_text(results: dict) -> str:
    """``results`` as indented JSON; NaN and infinities (undefined metrics) become null, as JSON
    has no token for them."""
    return json.dumps(finite_or_none(results), indent=2, allow_nan=False)


def finite_or_none(value: object) -> object:
    """``value`` with every non-finite float inside dicts and lists replaced by None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite_or_none(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite_or_none(v) for v in value]
    return value


def number_cell(value: float | None, fmt: str = "{:.3f}") -> str:
    """``value`` formatted by ``fmt``, or ``n/a`` when it is missing or NaN."""
    return "n/a" if value is None or math.isnan(value) else fmt.format(value)


def window_rows(name: str) -> list[tuple[str, str]]:
    """``(key suffix, label)`` of the crop rows a results entry gives."""
    if name in ("centre-crop", "oracle"):
        return [("", name)]
    if name == "observers":
        return [("", "other half of the observers")]
    return [(" peak", f"{name}, peak-centred"), ("", f"{name}, cropsal policy")]


def print_tables(results: dict, aspects: list[str]) -> None:
    """Three rich tables on stderr: saliency metrics, the share of fixations kept by crops, and
    the share of the centre-to-best gap each window closes (with its bootstrap interval)."""
    from rich.console import Console
    from rich.table import Table

    from cropsal.evaluate import GAP_INTERVAL

    console = Console(stderr=True, width=max(132, Console(stderr=True).width))
    sal = Table(title=f"saliency ({results['split']} split)")
    sal.add_column("data set")
    sal.add_column("model", no_wrap=True)
    for _, title, _ in COLUMNS:
        sal.add_column(title, justify="right")
    crops = Table(title="share of fixations inside the crop")
    gaps = Table(
        title=f"share of the centre-to-best gap closed ({GAP_INTERVAL:.0%} interval over images)"
    )
    for table in (crops, gaps):
        table.add_column("data set", no_wrap=True)
        table.add_column("window", no_wrap=True)
        for a in aspects:
            table.add_column(a, justify="right", no_wrap=True)

    for set_name, by_model in results["results"].items():
        for name, row in by_model.items():
            if "nss" in row:
                sal.add_row(
                    set_name,
                    name,
                    *[number_cell(row[k], fmt) if k in row else "" for k, _, fmt in COLUMNS],
                )
        for name, row in by_model.items():
            if name == "centre-bias":
                continue
            for suffix, label in window_rows(name):
                crops.add_row(
                    set_name,
                    label,
                    *[number_cell(row.get(f"crop_{a}{suffix}")) for a in aspects],
                )
                if f"gap_{aspects[0]}{suffix}" in row:
                    gaps.add_row(set_name, label, *[gap_cell(row, a + suffix) for a in aspects])
        for table in (sal, crops, gaps):
            table.add_section()
    console.print(sal)
    console.print(crops)
    console.print(gaps)


def gap_cell(row: dict, key: str) -> str:
    """``0.44 [0.30, 0.58]``: the gap closed and its interval; ``n/a`` where it is undefined
    (the best window keeps no more fixations than the centre crop)."""
    value = row.get(f"gap_{key}", math.nan)
    low, high = row.get(f"gap_{key}_interval", (math.nan, math.nan))
    if math.isnan(value):
        return "n/a"
    return f"{value:.2f} [{low:.2f}, {high:.2f}]"

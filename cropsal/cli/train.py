"""``cropsal train STAGE``: the training pipeline's stages (needs the ``train`` extra)."""

from __future__ import annotations

from pathlib import Path

import click


@click.group("train")
def train() -> None:
    """Train saliency networks on eye-tracking data (needs: pip install 'cropsal[train]')."""
    from cropsal.cli.main import configure_logging

    configure_logging(1)


def stage_options(outputs: str, steps: bool = True):
    """The options every training stage takes: --config, --out (whose files ``outputs``
    names), --steps (for the stages that take steps and resume from their checkpoint), --smoke."""

    def decorate(command):
        command = click.option(
            "--smoke", is_flag=True, help="Tiny run on a few images, for tests."
        )(command)
        if steps:
            command = click.option(
                "--steps", type=int, help="Override the number of optimisation steps."
            )(command)
        command = click.option(
            "--out",
            type=click.Path(file_okay=False, path_type=Path),
            required=True,
            help=f"Run folder: {outputs}" + (" (a stopped run resumes from it)." if steps else "."),
        )(command)
        return click.option(
            "--config",
            "config_path",
            type=click.Path(exists=True, dir_okay=False),
            help="TOML file of settings (see cropsal/training/configs).",
        )(command)

    return decorate


@train.command("teacher")
@stage_options("config.json, metrics.csv, checkpoint.pt")
def teacher(config_path: str | None, out: Path, steps: int | None, smoke: bool) -> None:
    """Fit a saliency network to fixations by their log-likelihood."""
    from cropsal.training.teacher import TeacherConfig, train_teacher

    cfg = TeacherConfig.load(config_path, {"steps": steps} if steps else {})
    train_teacher(cfg, out, smoke=smoke)


@train.command("distil")
@stage_options("teacher_maps.npz, ensemble.json, metrics.csv, checkpoint.pt")
def distil(config_path: str | None, out: Path, steps: int | None, smoke: bool) -> None:
    """Train a small student on the teacher ensemble's density and the fixations."""
    from cropsal.training.student import StudentConfig, train_student

    cfg = StudentConfig.load(config_path, {"steps": steps} if steps else {})
    train_student(cfg, out, smoke=smoke)


@train.command("prune")
@stage_options("curve.csv, curve.png, chosen.json, checkpoint.pt", steps=False)
def prune(config_path: str | None, out: Path, smoke: bool) -> None:
    """Fisher-prune a student's feature maps; record information gain against MACs."""
    from cropsal.training.prune import PruneConfig, prune_student

    prune_student(PruneConfig.load(config_path), out, smoke=smoke)


@train.command("export")
@click.option(
    "--checkpoint",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="checkpoint.pt written by a training stage.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="ONNX file to write.",
)
@click.option("--name", required=True, help="Model name in metadata (e.g. cropsal-v3).")
def export(checkpoint: Path, out: Path, name: str) -> None:
    """Export a checkpoint to ONNX, check it, and compare ONNX Runtime with PyTorch."""
    from cropsal.training.export import export_checkpoint

    export_checkpoint(checkpoint, out, name)

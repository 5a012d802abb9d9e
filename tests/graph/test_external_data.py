"""External tensor data is read only from inside the model's folder: one test per escape pattern."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import tcomp.graph as tg

WEIGHT = np.arange(12, dtype=np.float32).reshape(3, 4)


def model_with_external(location: str, offset: int | str | None = None, length: int | str | None = None,
                        ) -> onnx.ModelProto:
    tensor = numpy_helper.from_array(WEIGHT, "w")
    tensor.ClearField("raw_data")
    tensor.data_location = TensorProto.EXTERNAL
    entries = {"location": location}
    if offset is not None:
        entries["offset"] = str(offset)
    if length is not None:
        entries["length"] = str(length)
    for key, value in entries.items():
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    graph = helper.make_graph([helper.make_node("Add", ["x", "w"], ["y"])], "ext",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 4])], [tensor])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def save(folder: Path, model: onnx.ModelProto) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "model.onnx"
    path.write_bytes(model.SerializeToString())
    return path


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "weights.bin").write_bytes(b"\0" * 16 + WEIGHT.tobytes())
    (tmp_path / "secret.bin").write_bytes(WEIGHT.tobytes() * 2)
    return model_dir


def test_external_data_inside_the_folder(folder: Path) -> None:
    path = save(folder, model_with_external("weights.bin", offset=16, length=48))
    executor = tg.compile(path)
    [y] = executor.run([np.ones((3, 4), np.float32)])
    np.testing.assert_array_equal(y, WEIGHT + 1)


def test_external_data_in_a_subfolder(folder: Path) -> None:
    (folder / "data").mkdir()
    (folder / "data" / "w.bin").write_bytes(WEIGHT.tobytes())
    graph = tg.from_onnx(save(folder, model_with_external("data/w.bin")))
    np.testing.assert_array_equal(graph.params["w"], WEIGHT)


def expect_refused(folder: Path, model: onnx.ModelProto, message: str) -> None:
    with pytest.raises(tg.GraphError, match=message):
        tg.from_onnx(save(folder, model))


def test_absolute_path(folder: Path, tmp_path: Path) -> None:
    expect_refused(folder, model_with_external(str(tmp_path / "secret.bin")), "absolute path")


def test_windows_absolute_path(folder: Path) -> None:
    expect_refused(folder, model_with_external("C:\\secret.bin"), "absolute path")


def test_dotdot_escape(folder: Path) -> None:
    expect_refused(folder, model_with_external("../secret.bin"), r"leaves the model's folder \('..'\)")


def test_dotdot_inside_a_path(folder: Path) -> None:
    (folder / "data").mkdir()
    expect_refused(folder, model_with_external("data/../../secret.bin"), "leaves the model's folder")


def test_symlinked_file(folder: Path, tmp_path: Path) -> None:
    os.symlink(tmp_path / "secret.bin", folder / "link.bin")
    expect_refused(folder, model_with_external("link.bin"), "symbolic link")


def test_hard_link_to_a_file_outside(folder: Path, tmp_path: Path) -> None:
    """A hard link passed every path check: it is a regular file inside the folder."""
    os.link(tmp_path / "secret.bin", folder / "hard.bin")
    expect_refused(folder, model_with_external("hard.bin"), r"'hard.bin' is a hard link \(2 names\)")


def test_symlinked_directory(folder: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "w.bin").write_bytes(WEIGHT.tobytes())
    os.symlink(outside, folder / "linked")
    expect_refused(folder, model_with_external("linked/w.bin"), "symbolic link")


def test_negative_offset(folder: Path) -> None:
    expect_refused(folder, model_with_external("weights.bin", offset=-16), "offset -16 is negative")


def test_negative_length(folder: Path) -> None:
    expect_refused(folder, model_with_external("weights.bin", offset=16, length=-48), "length -48 is negative")


def test_offset_beyond_the_file(folder: Path) -> None:
    expect_refused(folder, model_with_external("weights.bin", offset=1 << 40), "beyond the end")


def test_range_beyond_the_file(folder: Path) -> None:
    expect_refused(folder, model_with_external("weights.bin", offset=32, length=48), "beyond the end")


def test_too_few_bytes_without_length(folder: Path) -> None:
    expect_refused(folder, model_with_external("weights.bin", offset=40), "needs 48 bytes")


def test_length_differs_from_the_shape(folder: Path) -> None:
    expect_refused(folder, model_with_external("weights.bin", offset=0, length=32), "needs 48 bytes")


def test_non_numeric_offset(folder: Path) -> None:
    expect_refused(folder, model_with_external("weights.bin", offset="0x10"), "not an integer")


def test_missing_file(folder: Path) -> None:
    expect_refused(folder, model_with_external("absent.bin"), "does not exist")


def test_directory_as_location(folder: Path) -> None:
    (folder / "data").mkdir()
    expect_refused(folder, model_with_external("data"), "not a regular file")


def test_empty_location(folder: Path) -> None:
    expect_refused(folder, model_with_external(""), "without a location")


def test_model_loaded_without_a_folder() -> None:
    with pytest.raises(tg.GraphError, match="not loaded from a path"):
        tg.from_onnx(model_with_external("weights.bin").SerializeToString())

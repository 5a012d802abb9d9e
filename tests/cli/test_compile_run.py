"""``tcomp compile`` and ``tcomp run``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from tcomp.cli import main
from tcomp.cli.arguments import parse_input_shapes
from tcomp.graph import testing
from tests.cli.interrupt import interrupt_when


def test_parse_input_shapes() -> None:
    assert parse_input_shapes(["data:[1,3,224,224] mask:[1, 128]", "x:[]"]) == {
        "data": [1, 3, 224, 224], "mask": [1, 128], "x": []}
    for bad in ("data[1,2]", "data:[1,a]", "data:1,2"):
        with pytest.raises(ValueError, match="--input-shapes"):
            parse_input_shapes([bad])


def test_compile_and_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = testing.transformer_encoder(batch=1, seq=8, hidden=32, heads=2, ffn=64, dynamic_batch=True)
    path = tmp_path / "encoder.onnx"
    onnx.save(model, path)
    out = tmp_path / "out"
    assert main(["compile", str(path), "-o", str(out)]) == 1
    assert "--input-shapes x:" in capsys.readouterr().err
    assert main(["compile", str(path), "--target", "llvm", "--input-shapes", "x:[3,8,32]", "-o", str(out),
                 "--disable-pass", "alter_layout"]) == 0
    printed = capsys.readouterr().out
    assert "kernels" in printed and "activation memory" in printed
    x = np.random.default_rng(0).standard_normal((3, 8, 32)).astype(np.float32)
    np.savez(tmp_path / "in.npz", x=x)
    code = main(["run", str(out), "--inputs", str(tmp_path / "in.npz"), "--repeat", "3", "--print-time", "--profile",
                 "-o", str(tmp_path / "y.npz")])
    assert code == 0
    printed = capsys.readouterr().out
    assert "mean (ms)" in printed and "median (ms)" in printed and "std (ms)" in printed
    assert "kernel" in printed and "total" in printed
    [want] = ort.InferenceSession(model.SerializeToString()).run(None, {"x": x})
    with np.load(tmp_path / "y.npz") as outputs:
        (got,) = outputs.values()
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-4)


def test_run_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", str(tmp_path / "missing")]) == 1
    assert "missing does not exist: give a folder written by tcomp compile (holding graph.json) or an .onnx model" \
        in capsys.readouterr().err
    (tmp_path / "notes.txt").write_text("not a model")
    assert main(["run", str(tmp_path / "notes.txt")]) == 1
    assert "is neither a folder written by tcomp compile nor an ONNX model" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["run", str(tmp_path / "empty")]) == 1
    assert "graph.json is missing" in capsys.readouterr().err
    assert main(["run", str(tmp_path / "empty"), "--repeat", "0"]) == 1
    assert "--repeat must be at least 1, got 0" in capsys.readouterr().err
    model = testing.resnet(18, image_size=32, width=0.25, num_classes=10)
    onnx.save(model, tmp_path / "r.onnx")
    assert main(["compile", str(tmp_path / "r.onnx"), "-o", str(tmp_path / "r")]) == 0
    np.savez(tmp_path / "wrong.npz", image=np.zeros((1, 3, 32, 32), np.float32))
    assert main(["run", str(tmp_path / "r"), "--inputs", str(tmp_path / "wrong.npz")]) == 1
    assert "not inputs of the model" in capsys.readouterr().err
    assert main(["run", str(tmp_path / "r"), "--fill-mode", "ones", "--print-top", "3"]) == 0
    assert "top 3 indices" in capsys.readouterr().out


def test_run_compiles_an_onnx_model_and_writes_outputs_by_their_names(tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    model = testing.forwarding_classifier()
    onnx.save(model, tmp_path / "zoo.onnx")
    x = np.random.default_rng(0).standard_normal((1, 3, 4, 4)).astype(np.float32)
    np.savez(tmp_path / "x.npz", **{"gpu_0/data_0": x})
    assert main(["run", str(tmp_path / "zoo.onnx"), "--inputs", str(tmp_path / "x.npz"), "-o",
                 str(tmp_path / "y.npz")]) == 0
    expected = ort.InferenceSession(model.SerializeToString()).run(None, {"gpu_0/data_0": x})
    names = [o.name for o in model.graph.output]
    with np.load(tmp_path / "y.npz") as outputs:
        assert sorted(outputs.files) == sorted(names)
        for name, want in zip(names, expected):
            np.testing.assert_allclose(outputs[name], want, rtol=1e-4, atol=1e-5)
    assert main(["run", str(tmp_path / "zoo.onnx"), "--print-top", "2", "--target", "llvm -mcpu=foo"]) == 1
    assert "LLVM knows no CPU 'foo'" in capsys.readouterr().err
    assert main(["run", str(tmp_path / "zoo.onnx"), "--print-top", "2"]) == 0
    assert "output gpu_0/softmax_1: top 2 indices" in capsys.readouterr().out


def test_ctrl_c_ends_run_cleanly(tmp_path: Path) -> None:
    onnx.save(testing.forwarding_classifier(), tmp_path / "r.onnx")
    argv = ["run", str(tmp_path / "r.onnx"), "--repeat", "1000000000", "-o", str(tmp_path / "y.npz")]
    # the progress bar's last line: compiled, now running
    status, _, err = interrupt_when(argv, "stderr", "compiling", settle=0.5)
    assert status == 130, err[-3000:]
    assert "interrupted" in err and "y.npz was not written" in err and "Traceback" not in err
    assert not (tmp_path / "y.npz").exists()

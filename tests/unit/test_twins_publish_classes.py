"""``doa model publish --classes`` loads the ONNX file once: the check of the class count
reads the model's own classes off the session already loaded with the given ones."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from doa.cli.model import publish
from doa.model.compat import CLASSES_KEY
from doa.model.formats import ModelLoadError

pytest.importorskip("skl2onnx")


@pytest.fixture
def sessions(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """The bytes of every ONNX session made (one per load of an ONNX file)."""
    import onnxruntime

    made: list[bytes] = []
    real = onnxruntime.InferenceSession

    def counted(data: bytes, *args: Any, **kwargs: Any) -> Any:
        made.append(data)
        return real(data, *args, **kwargs)

    monkeypatch.setattr(onnxruntime, "InferenceSession", counted)
    return made


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """What publish_version sends; no broker (no version published yet)."""
    out: list[Any] = []
    monkeypatch.setattr(publish, "read_all", lambda broker, t, stream: [])
    monkeypatch.setattr(publish, "send_all", lambda *args: out.append(args))
    monkeypatch.setattr(publish, "at_the_end", lambda *args: {})
    return out


def _onnx(tmp_path: Path) -> Path:
    from tests.test_model_types import onnx_bytes

    path = tmp_path / "phish.onnx"
    path.write_bytes(onnx_bytes(zipmap=True))
    return path


def test_publish_with_classes_loads_the_file_once(tmp_path: Path, sessions: list[bytes],
                                                   sent: list[Any]) -> None:
    from tests.test_model_node import scoring
    from tests.test_model_types import BOOLS

    path = _onnx(tmp_path)
    version, replaced = publish.publish_version(scoring(BOOLS), "phish", path,
                                                broker="unused:9092", classes=[False, True])
    assert (version, replaced) == (2, [])
    assert len(sessions) == 1
    [(_, _, stream, chunks, _)] = sent
    assert stream == "phish.versions"
    assert json.loads(chunks[0]["metadata"][CLASSES_KEY]) == [False, True]


def test_another_number_of_classes_is_refused_after_one_load(
        tmp_path: Path, sessions: list[bytes], sent: list[Any]) -> None:
    from tests.test_model_node import scoring
    from tests.test_model_types import BOOLS

    path = _onnx(tmp_path)
    with pytest.raises(ModelLoadError) as raised:
        publish.publish_version(scoring(BOOLS), "phish", path, broker="unused:9092",
                                classes=["a", "b", "c"])
    assert str(raised.value) == (f"model node 'phish': --classes a,b,c: version 2 ({path}) "
                                 "has 2 classes (0, 1); nothing sent")
    assert len(sessions) == 1
    assert sent == []

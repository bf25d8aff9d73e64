"""Library errors become one message and one exit code in one place (``smartnet.guards``), never elsewhere."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

import smartnet
from smartnet import errors, guards
from smartnet.errors import DatasetProblems, OutputWriteError, SettingsError, SmartNetError

PACKAGE = Path(smartnet.__file__).parent


def test_a_library_error_prints_its_heading_and_exits_with_its_code(capsys):
    with pytest.raises(SystemExit) as stop:
        with guards.exits_on_error():
            raise SettingsError("image_size 100 is not a multiple of 32")
    assert stop.value.code == 2
    assert capsys.readouterr().err.strip() == "Settings that cannot work: image_size 100 is not a multiple of 32"


def test_work_that_failed_exits_1_even_when_monai_wrapped_it(capsys):
    with pytest.raises(SystemExit) as stop:
        with guards.exits_on_error():
            try:
                raise OutputWriteError("cannot write /out/case_seg.nii.gz: no space left on the device")
            except OutputWriteError as err:  # what monai.transforms.apply_transform does with a failure
                raise RuntimeError("applying transform <SaveImaged>") from err
    assert stop.value.code == 1
    assert "Write failed: cannot write /out/case_seg.nii.gz" in capsys.readouterr().err


def test_a_bug_keeps_its_traceback():
    with pytest.raises(ZeroDivisionError):
        with guards.exits_on_error():
            1 / 0


def test_heading_and_code_can_be_set_by_the_caller(capsys):
    with pytest.raises(SystemExit) as stop:
        with guards.exits_on_error(heading="Cannot use the checkpoint folder", code=1):
            raise errors.OutputError("/full: only 3 MB free")
    assert stop.value.code == 1
    assert capsys.readouterr().err.strip() == "Cannot use the checkpoint folder: /full: only 3 MB free"


def test_dataset_problems_are_listed_one_a_line(capsys, tmp_path):
    with pytest.raises(SystemExit) as stop:
        guards.check_entries({"training": [{"image": str(tmp_path / "gone.nii.gz"), "label": "x"}],
                              "validation": []}, source="the test lists")
    assert stop.value.code == 2
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("Dataset check failed: ") and "in the test lists" in lines[0]
    assert any("'validation' list is empty" in line for line in lines[1:])
    assert any("gone.nii.gz" in line for line in lines[1:])
    assert isinstance(DatasetProblems(["a"], "s"), SmartNetError)


def test_every_library_error_has_a_heading_and_a_status():
    classes = [c for _, c in inspect.getmembers(errors, inspect.isclass) if issubclass(c, SmartNetError)]
    assert len(classes) >= 10
    for cls in classes:
        assert cls.heading and cls.exit_code in (1, 2), cls


def _exits(path: Path) -> list[str]:
    """``raise SystemExit``, ``sys.exit`` / ``os._exit`` / ``exit()`` calls in one module."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Raise) and node.exc is not None:
            target = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            if isinstance(target, ast.Name) and target.id == "SystemExit":
                found.append(f"{path.name}:{node.lineno}")
        if isinstance(node, ast.Call):
            name = ast.unparse(node.func)
            if name in ("sys.exit", "os._exit", "exit", "quit"):
                found.append(f"{path.name}:{node.lineno}")
    return found


def test_only_the_guards_module_exits_the_process():
    offenders = {str(p.relative_to(PACKAGE)): _exits(p) for p in PACKAGE.rglob("*.py")}
    offenders = {name: where for name, where in offenders.items() if where and name != "guards.py"}
    assert offenders == {}
    assert _exits(PACKAGE / "guards.py")  # the scan finds the one exit it should

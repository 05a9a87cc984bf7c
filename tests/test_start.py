"""Start-up: the command line answers `--help` without loading the library's heavy stack, model kinds load by name
when first looked up, and the library's one child-server helper starts, waits for and stops a real server.
(The times themselves are measured in benchmarks/cli_start.py.)"""
import subprocess
import sys

import httpx
import pytest

from workbench.child import ChildServer, Service, alive, free_port
from workbench.errors import WorkbenchError

HEAVY = ("numpy", "pandas", "sklearn", "lightgbm", "mlflow", "fastapi", "pydantic", "httpx", "dask")


def _fresh(code: str) -> str:
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    return p.stdout.strip()


@pytest.mark.parametrize("command", [[], ["train"], ["serve"], ["models", "promote"], ["monitor", "status"], ["run"]])
def test_help_loads_none_of_the_heavy_libraries(command):
    out = _fresh("import contextlib, io, sys\nfrom workbench.cli import main\n"
                 f"with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
                 f"    main({command + ['--help']!r})\n"
                 f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))")
    assert out == "", f"`workbench {' '.join(command)} --help` loaded {out}"


def test_a_kind_loads_its_own_module_when_looked_up_by_name_and_no_other():
    out = _fresh("import sys\nfrom workbench import kinds\n"
                 "before = 'workbench.ensemble.estimators' in sys.modules\n"
                 "kind = kinds.KINDS.get('ensemble')\n"
                 "print(before, kind.name, 'workbench.ensemble.estimators' in sys.modules, "
                 "'workbench.compress.estimators' in sys.modules)")
    assert out == "False ensemble True False"


def test_every_kind_that_registers_is_declared_by_name():
    """A kind that registers but is not declared would be unknown to a service that has not loaded its module."""
    declared = _fresh("from workbench import kinds\nprint(','.join(sorted(kinds.KINDS)))").split(",")
    registered = _fresh("import importlib, pkgutil, workbench\nfrom workbench import kinds\n"
                        "for m in pkgutil.walk_packages(workbench.__path__, 'workbench.'):\n"
                        "    if '.notebooks' not in m.name:\n"
                        "        try:\n            importlib.import_module(m.name)\n"
                        "        except ImportError:\n            pass\n"
                        "print(','.join(sorted(kinds.KINDS)))").split(",")
    assert declared == registered


def test_a_model_whose_kind_is_not_loaded_yet_is_still_written_by_its_kind(tmp_path):
    out = _fresh("import lightgbm, numpy as np, sys\nfrom workbench import kinds\n"
                 "model = lightgbm.LGBMClassifier(n_estimators=2, verbose=-1).fit(np.arange(40.).reshape(20, 2), [0, 1] * 10)\n"
                 "print('workbench.models.kinds' in sys.modules, kinds.kind_of(model).name)")
    assert out == "False lightgbm"


def test_a_child_server_starts_answers_and_stops_leaving_nothing_running():
    port = free_port()
    server = ChildServer([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
                         f"http://127.0.0.1:{port}", ready="/")
    with server:
        assert httpx.get(server.url).status_code == 200
        pid = server.pid
        assert alive(pid)
    assert not alive(pid)
    assert not server.log.exists(), "its temporary log is removed with it"


def test_a_service_that_exits_before_it_is_ready_is_a_clear_error_naming_its_output(tmp_path):
    service = Service("--package", tmp_path / "missing", log=tmp_path / "service.log")
    with pytest.raises(WorkbenchError, match="exited before it became ready.*service.log"):
        with service:
            pass
    assert "error: " in service.output()

"""The serving runtime: a virtual environment of its own that holds the core of aims-workbench — data, models,
packages, the service — plus the extras the package's model kinds need and the package's pinned versions, installed
by pip from the package index. No MLflow, Dask, Jupyter or compilers unless a kind needs them.

Built once per what it installs (the workbench's source or version, the extras, the pins, the Python) under
``<home>/runtimes/<hash>`` — beside, then renamed into place — so repeated releases reuse it.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from importlib.metadata import PackageNotFoundError, requires, version
from pathlib import Path

from workbench import kinds
from workbench.errors import WorkbenchError
from workbench.settings import Settings, get_settings

DIST = "aims-workbench"
SOURCE = Path(__file__).resolve().parents[2]  # the checkout, when the workbench runs from one (an editable install)
WARM_UP = ("import sys, workbench.cli, workbench.serve.app\nfrom workbench.registry.package import load_package\n"
           "load_package(sys.argv[1])")


def runtime(package: str | Path, requirements: list[str] | tuple = (), settings: Settings | None = None) -> dict:
    """The runtime that serves ``package`` (a folder): ``{"python", "venv", "extras", "pins", "built"}``.

    ``requirements``: pins beyond the package's own (``name==version``). Pins of libraries the runtime does not
    install (the package's manifest lists the whole workbench's) are left out.
    """
    s = settings or get_settings()
    folder = Path(package)
    manifest = json.loads((folder / "manifest.json").read_text())
    extras = sorted(extras_needed(folder))
    wanted = installed_by(extras)
    pins = sorted(f"{k}=={v}" for k, v in manifest.get("requirements", {}).items() if _key(k) in wanted)
    pins += [p for p in requirements if p not in pins]
    source, digest = _workbench(s)
    key = hashlib.sha256(json.dumps([sys.version_info[:2], digest, extras, pins]).encode()).hexdigest()[:16]
    venv = s.home.resolve() / "runtimes" / key
    python = venv / "bin" / "python"
    built = False
    if not (venv / ".complete").exists():
        _build(venv, f"{source}[{','.join(extras)}]" if extras else source, pins, folder, s)
        built = True
    return {"python": str(python), "venv": str(venv), "extras": extras, "pins": pins, "built": built}


def extras_needed(folder: Path) -> set[str]:
    """The extras that reading and scoring this package's models need: their kinds' (every ``format`` in its
    model and part files, members and parts included)."""
    formats: set[str] = set()

    def walk(node) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("format"), str):
                formats.add(node["format"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    for path in [*folder.rglob("model.json"), *folder.rglob("part.json")]:
        walk(json.loads(path.read_text()))
    return {kinds.KINDS.get(f).extra for f in formats if f in kinds.KINDS and kinds.KINDS.get(f).extra}


def installed_by(extras: list[str]) -> set[str]:
    """The distributions (normalized names) that the workbench's core and these extras require, from its metadata."""
    out = set()
    for req in requires(DIST) or []:
        name, _, marker = req.partition(";")
        wanted = re.search(r'extra\s*==\s*"([^"]+)"', marker)
        if wanted is None or wanted.group(1) in extras:
            base = re.match(r"[A-Za-z0-9_.-]+", name.strip()).group(0)
            if _key(base) == _key(DIST):  # an extra made of other extras (all = [...]): theirs count
                inner = re.search(r"\[(.*)\]", name)
                out |= installed_by([e.strip() for e in inner.group(1).split(",")]) if inner else set()
            else:
                out.add(_key(base))
    return out


def _build(venv: Path, workbench: str, pins: list[str], package: Path, s: Settings) -> None:
    """A venv without pip (the workbench's pip installs into it), filled beside and renamed into place. Byte code is
    compiled for what serving ``package`` imports only (all of it would be a third of the runtime's size)."""
    venv.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=venv.parent, prefix=f".{venv.name}-"))
    try:
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp)], check=True, capture_output=True)
        p = subprocess.run([sys.executable, "-m", "pip", "--python", str(tmp / "bin" / "python"), "install", "-q",
                            "--no-compile", "--disable-pip-version-check", workbench, *pins],
                           capture_output=True, text=True)
        if p.returncode != 0:
            raise WorkbenchError(f"could not install {workbench} {' '.join(pins)} into a serving runtime: "
                                 f"{p.stderr.strip()[-500:]}")
        # the service's modules and the package's kinds, loaded and checked once: their byte code is written now
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPATH")}
        p = subprocess.run([str(tmp / "bin" / "python"), "-c", WARM_UP, str(package)], cwd=tmp, capture_output=True,
                           text=True, env=env | {"WORKBENCH_HOME": str(s.home.resolve())})
        if p.returncode != 0:
            raise WorkbenchError(f"the serving runtime cannot load {package}: {p.stderr.strip()[-500:]}")
        (tmp / ".complete").write_text(json.dumps({"workbench": workbench, "pins": pins}))
        try:
            os.replace(tmp, venv)
        except OSError:  # another release built the same runtime first: theirs serves
            if not (venv / ".complete").exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _workbench(s: Settings) -> tuple[str, str]:
    """What pip installs as the workbench, and its digest: a wheel built from the checkout this workbench runs from
    (once per content of its source), else this version of aims-workbench from the package index."""
    if not (SOURCE / "pyproject.toml").is_file() or f'name = "{DIST}"' not in (SOURCE / "pyproject.toml").read_text():
        try:
            return f"{DIST}=={version(DIST)}", version(DIST)
        except PackageNotFoundError:
            raise WorkbenchError(f"{DIST} is neither installed nor run from its source: install it to deploy") from None
    h = hashlib.sha256()
    for f in _sources():
        h.update(f.relative_to(SOURCE).as_posix().encode() + b"\0" + f.read_bytes() + b"\0")
    digest = h.hexdigest()[:16]
    folder = s.home.resolve() / "runtimes" / "wheels" / digest
    wheels = list(folder.glob("*.whl"))
    if not wheels:
        tmp = Path(tempfile.mkdtemp(dir=_mkdir(folder.parent), prefix=f".{digest}-"))
        try:
            build_wheel(tmp)
            try:
                os.replace(tmp, folder)
            except OSError:  # built at the same time by another release
                pass
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        wheels = list(folder.glob("*.whl"))
    return str(wheels[0]), digest


def build_wheel(out: Path) -> Path:
    """The workbench's wheel built from its checkout into ``out``: from a copy of the sources, so no ``build/`` left
    in the checkout (nor an old one's stale modules taken into the wheel)."""
    with tempfile.TemporaryDirectory(prefix="workbench-src-") as src:
        for f in _sources():
            (Path(src) / f.relative_to(SOURCE)).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(f, Path(src) / f.relative_to(SOURCE))
        p = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--disable-pip-version-check",
                            "-w", str(out), src], capture_output=True, text=True)
    if p.returncode != 0:
        raise WorkbenchError(f"could not build the workbench's wheel from {SOURCE}: {p.stderr.strip()[-500:]}")
    return next(Path(out).glob("*.whl"))


def _sources() -> list[Path]:
    """The checkout's files that make the wheel: the project's metadata, the packages' modules and notebooks."""
    files = [SOURCE / "pyproject.toml", SOURCE / "README.md"]
    return files + sorted(p for d in ("workbench", "widgets") for p in (SOURCE / d).rglob("*")
                          if p.suffix in (".py", ".ipynb") and p.is_file() and "__pycache__" not in p.parts)


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _key(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()

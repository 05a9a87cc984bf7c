"""The model repository: MLflow's model registry, holding packages as versions with tags, descriptions and aliases.

Every version is a verified package (checksums and reference predictions checked before it is registered),
logged as an MLflow pyfunc model defined by code, so ``mlflow.pyfunc.load_model("models:/NAME@champion")``
works too. A reference is ``NAME`` (newest version that is not archived), ``NAME@alias`` or ``NAME/version``.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from pathlib import Path

import pandas as pd

from workbench.errors import UnknownNameError, WorkbenchError
from workbench.extras import extra
from workbench.registry.package import Package, PackageError, load_package, make_archive
from workbench.registry.tracking import log_model, mlflow_client
from workbench.settings import Settings, get_settings

ALIASES = ("staging", "champion")  # the usual ones; any name made of letters, digits, - and _ works
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


def register(package: str | Path | Package, name: str | None = None, *, description: str = "", alias: str | None = None,
             settings: Settings | None = None):
    """Verify a package and register it as the next version of ``name`` (default: the package's name).

    Returns the MLflow ``ModelVersion``. Tags: who, data fingerprint, validation status, package version and size.
    """
    if isinstance(package, Package):
        pkg = package
        pkg.check_reference()
    else:
        pkg = load_package(package)  # checks the reference predictions too
    import getpass  # start-up cost: it loads termios (4 ms), and only registering needs it

    name = check_name(name or pkg.name)
    mlflow, client = _client(settings)
    m = pkg.manifest
    with mlflow.start_run(run_name=f"package {name}") as run:
        mlflow.set_tags({"workbench.kind": "package", "workbench.package": name})
        mlflow.log_metrics({k: float(v) for k, v in m["metrics"].items() if isinstance(v, (int, float)) and v == v})
        info = log_model(mlflow, pkg.path)
    tags = {"who": getpass.getuser(), "data_fingerprint": m["data_fingerprint"].get("sha256", ""),
            "validation": "passed", "package_version": m["version"], "model": m["model"], "task": m["task"],
            "size_bytes": str(sum(f["bytes"] for f in m["files"].values()))}
    _ensure_model(client, name)
    mv = client.create_model_version(name, info.model_uri, run_id=run.info.run_id, tags=tags,
                                     description=description or f"{m['model']} for {m['target']} ({m['task']})")
    if alias:
        promote(name, mv.version, alias, settings=settings)
    return mv


def resolve(ref: str, settings: Settings | None = None):
    """The ``ModelVersion`` that ``ref`` names; a clear error naming what exists when it names nothing."""
    _, client = _client(settings)
    from mlflow.exceptions import MlflowException

    name, sep, rest = _split_ref(ref)
    _registered(client, name)
    try:
        if sep == "@":
            return client.get_model_version_by_alias(name, rest)
        if sep == "/":
            return client.get_model_version(name, rest)
    except MlflowException:
        aliases = client.get_registered_model(name).aliases
        known = ", ".join(f"@{a}" for a in aliases) or "none"
        raise UnknownNameError(f"model '{name}' has no {'alias' if sep == '@' else 'version'} '{rest}' "
                               f"(aliases: {known}; versions: {', '.join(_version_numbers(client, name))})") from None
    live = [v for v in _versions(client, name) if v.tags.get("archived") != "true"]
    if not live:
        raise WorkbenchError(f"model '{name}' has no version that is not archived; name one with {name}/VERSION")
    return max(live, key=lambda v: int(v.version))


def fetch(ref: str, settings: Settings | None = None, *, dest: str | Path | None = None) -> Package:
    """Download a registered version's package (into ``dest``, default the home's cache of versions) and load it,
    checksums and reference predictions checked."""
    return load_package(download(ref, settings, dest=dest)[1])


def download(ref: str, settings: Settings | None = None, *, dest: str | Path | None = None):
    """A registered version's package folder, downloaded but not loaded: (model version, folder). Without ``dest`` it
    lands in ``<home>/cache/versions`` under the version's name, number and source — a registered version never
    changes, so a second fetch reuses it (a temporary folder per fetch filled /tmp: one per service reload)."""
    s = settings or get_settings()
    mv = resolve(ref, s)
    if dest is None:
        key = hashlib.sha256(f"{s.tracking_uri}|{mv.name}|{mv.version}|{mv.source}".encode()).hexdigest()[:16]
        final = Path(s.home).resolve() / "cache" / "versions" / f"{re.sub(r'[^0-9A-Za-z_.-]', '_', mv.name)}-{mv.version}-{key}"
        if not list(final.rglob("manifest.json")):
            final.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=".download-"))
            try:
                _download(mv, tmp)
                if final.exists() and not list(final.rglob("manifest.json")):  # an incomplete copy left behind
                    shutil.rmtree(final, ignore_errors=True)
                os.replace(tmp, final)  # whole or not at all; a process that got there first wins
            except OSError:
                if not list(final.rglob("manifest.json")):
                    raise
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        dest = final
    else:
        _download(mv, Path(dest))
    manifests = list(Path(dest).rglob("manifest.json"))
    if len(manifests) != 1:
        raise PackageError(f"{mv.name}/{mv.version} holds no workbench package")
    return mv, manifests[0].parent


def pinned(ref: str, settings: Settings | None = None) -> str:
    """``NAME/VERSION=FOLDER``: the version ``ref`` names, its package downloaded to FOLDER — a source that a service
    without MLflow loads under the version's registered name and number (a release's serving runtime)."""
    mv, folder = download(ref, settings)
    return f"{mv.name}/{mv.version}={folder}"


def unpin(source: str) -> tuple[str, str, Path] | None:
    """``(name, version, folder)`` of a ``pinned`` source; None for any other source."""
    ref, sep, folder = source.partition("=")
    name, slash, number = ref.partition("/")
    if sep and slash and number.isdigit() and Path(folder).is_dir():
        return name, number, Path(folder)
    return None


def _download(mv, dest: Path) -> None:
    with extra("tracking"):
        import mlflow  # start-up cost: ~3 s, only for a download

    try:
        mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{mv.name}/{mv.version}", dst_path=str(dest))
    except Exception as exc:  # noqa: BLE001 - MLflow raises many kinds for a missing artifact
        raise WorkbenchError(f"{mv.name}/{mv.version}: its files cannot be read from the store ({exc}); "
                             "restore the store from a backup (workbench restore)") from None


def list_models(settings: Settings | None = None) -> pd.DataFrame:
    """One row per registered model: versions, the newest, aliases and description."""
    _, client = _client(settings)
    rows = []
    for rm in client.search_registered_models(max_results=1000):
        numbers = _version_numbers(client, rm.name)
        rows.append({"name": rm.name, "versions": len(numbers), "latest": numbers[-1] if numbers else None,
                     "aliases": ", ".join(f"{a}→{v}" for a, v in sorted(rm.aliases.items())),
                     "description": rm.description or ""})
    return pd.DataFrame(rows, columns=["name", "versions", "latest", "aliases", "description"])


def versions(name: str, settings: Settings | None = None) -> pd.DataFrame:
    """One row per version of ``name``: aliases, status, model, main metrics, size, who and when."""
    _, client = _client(settings)
    _registered(client, name)
    by_version = {}
    for a, v in client.get_registered_model(name).aliases.items():
        by_version.setdefault(str(v), []).append(a)
    rows = []
    for v in sorted(_versions(client, name), key=lambda v: int(v.version)):
        rows.append({"version": int(v.version), "aliases": ", ".join(sorted(by_version.get(str(v.version), []))),
                     "archived": v.tags.get("archived") == "true", "validation": v.tags.get("validation", ""),
                     "model": v.tags.get("model", ""), "task": v.tags.get("task", ""),
                     "size_bytes": int(v.tags.get("size_bytes", 0) or 0), "who": v.tags.get("who", ""),
                     "created": pd.Timestamp(v.creation_timestamp, unit="ms"), "description": v.description or ""}
                    | _metrics(client, v))
    return pd.DataFrame(rows)


def compare(name: str, first: str | int, second: str | int, settings: Settings | None = None) -> pd.DataFrame:
    """Two versions side by side: metrics, parameters, size, model and data; a column marks what differs."""
    cols = {}
    for v in (first, second):
        pkg = fetch(f"{name}/{v}", settings)
        m = pkg.manifest
        row = {"model": m["model"], "task": m["task"], "package_version": m["version"], "created": m["created"],
               "size_bytes": sum(f["bytes"] for f in m["files"].values()),
               "data_fingerprint": m["data_fingerprint"].get("sha256", "")[:12]}
        row |= {f"metric.{k}": v for k, v in sorted(m["metrics"].items())}
        row |= {f"param.{k}": str(v) for k, v in sorted(m["params"].items())}
        cols[f"v{v}"] = row
    frame = pd.DataFrame(cols)
    a, b = frame.columns
    frame["differs"] = [str(x) != str(y) for x, y in zip(frame[a], frame[b])]
    return frame


def promote(name: str, version: str | int, alias: str, settings: Settings | None = None):
    """Point ``alias`` (``staging``, ``champion``, ...) at a version that passed validation and is not archived."""
    _, client = _client(settings)
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]{0,63}", alias):
        raise WorkbenchError(f"alias '{alias}' is not valid: use letters, digits, - and _ (e.g. {', '.join(ALIASES)})")
    mv = resolve(f"{name}/{version}", settings)
    if mv.tags.get("archived") == "true":
        raise WorkbenchError(f"{name}/{version} is archived; register it again or promote another version")
    if mv.tags.get("validation") != "passed":
        raise WorkbenchError(f"{name}/{version} has not passed validation ({mv.tags.get('validation', 'unknown')})")
    client.set_registered_model_alias(name, alias, str(mv.version))
    return mv


def archive(name: str, version: str | int, settings: Settings | None = None):
    """Mark a version archived and take its aliases away (its files stay: it can still be exported)."""
    _, client = _client(settings)
    mv = resolve(f"{name}/{version}", settings)
    for a, v in client.get_registered_model(name).aliases.items():
        if str(v) == str(mv.version):
            client.delete_registered_model_alias(name, a)
    client.set_model_version_tag(name, str(mv.version), "archived", "true")
    return mv


def export(ref: str, out: str | Path, settings: Settings | None = None) -> Path:
    """A registered version as a package archive (``.tar.gz``), checked before it is written."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="workbench-export-") as tmp:
        return make_archive(fetch(ref, settings, dest=tmp).path, out)


def import_package(path: str | Path, name: str | None = None, *, description: str = "",
                   settings: Settings | None = None):
    """Register a package archive or folder made elsewhere (``export`` on another machine)."""
    return register(path, name, description=description or f"imported from {Path(path).name}", settings=settings)


def _client(settings: Settings | None):
    mlflow = mlflow_client(settings or get_settings())
    from mlflow import MlflowClient

    return mlflow, MlflowClient()


def _split_ref(ref: str) -> tuple[str, str, str]:
    for sep in ("@", "/"):
        if sep in ref:
            name, rest = ref.split(sep, 1)
            if not rest:
                raise WorkbenchError(f"'{ref}': give an alias after @ or a version number after /")
            return name, sep, rest
    return ref, "", ""


def check_name(name: str) -> str:
    """``name`` when the repository takes it as a model name; WorkbenchError saying the rule when not."""
    if not _NAME.match(name):
        raise WorkbenchError(f"model name '{name}' is not valid: start with a letter or digit, then letters, "
                             "digits, '.', '-' or '_' (at most 100)")
    return name


def _registered(client, name: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(name)
    except MlflowException:
        known = [m.name for m in client.search_registered_models(max_results=1000)]
        import difflib

        close = difflib.get_close_matches(name, known, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise UnknownNameError(f"no registered model '{name}'.{hint} Registered: {', '.join(known) or 'none'} "
                               "(workbench models list)") from None


def _ensure_model(client, name: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        client.create_registered_model(name)
    except MlflowException as exc:
        if "RESOURCE_ALREADY_EXISTS" not in str(exc.error_code):
            raise


def _versions(client, name: str) -> list:
    return list(client.search_model_versions(f"name = '{name}'", max_results=10000))


def _version_numbers(client, name: str) -> list[str]:
    return [str(n) for n in sorted(int(v.version) for v in _versions(client, name))]


def _metrics(client, mv) -> dict:
    if not mv.run_id:
        return {}
    run = client.get_run(mv.run_id)
    return {k: v for k, v in sorted(run.data.metrics.items()) if k.startswith("test_") or k.startswith("cv_")}

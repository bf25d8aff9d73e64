"""Release archives of the bundles: ``<name>_v<version>.zip`` as ``python -m monai.bundle download`` expects.

Each archive holds the top folder ``<name>/`` with the bundle's ``LICENSE``, ``configs/`` and ``docs/`` unchanged,
plus a copy of this package as ``<name>/smartnet/``: the configs' ``smartnet`` item puts the bundle folder first on
``sys.path``, so a downloaded bundle runs where MONAI and its dependencies are installed but this project is not.

Weights (``models/model.pt``) are either packed into the archive, or, with ``weights_url``, written beside it as
``<name>_v<version>_model.pt`` for upload and named with their SHA-256 in the archive's ``large_files.yml``
(fetched by ``python -m monai.bundle download_large_files``). Before packing, the weights are loaded strictly into
the inference ``network_def``, under the default configs or a profile in ``configs/`` (such as ``demo.json``), so an
archive never ships weights that its configs cannot load.

``eval_metrics`` in the archive's ``metadata.json`` are those of the weights it ships: the numeric metrics of the
bundle's own test evaluation (``eval/evaluation/metrics.json``, written by ``evaluate.json``) when it is newer than
``models/model.pt``; an archive without weights, or with weights evaluated before their last training, has none.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from monai.bundle import ConfigParser

from .bundle_run import BUNDLE_NAMES
from .checkpoints import load_checkpoint
from .errors import SmartNetError, TransferError
from .networks.state_dict import read_state_dict
from .weight_record import settings_mismatches

__all__ = [
    "BUNDLE_NAMES",
    "ReleaseError",
    "ReleaseArtifact",
    "build_release",
    "build_archive",
    "eval_metrics_of",
    "package_files",
    "weights_profile",
    "RECORDED_SWITCHES",
    "recorded_switches",
]

WORKFLOW_CONFIGS = {"metadata", "train", "evaluate", "inference", "multi_gpu_train", "multi_gpu_evaluate"}
PACKAGE_DIR = Path(__file__).resolve().parent
VENDORED_NAME = "smartnet"
_FIXED_TIME = (2020, 1, 1, 0, 0, 0)  # zip entries get one timestamp, so the same inputs give the same archive bytes


class ReleaseError(SmartNetError, RuntimeError):
    """A bundle cannot be released as asked (missing files, weights that its configs cannot load)."""


@dataclass
class ReleaseArtifact:
    """What was built for one bundle."""

    name: str
    version: str
    archive: Path
    sha1: str
    weights: str  # "packed", "large_files" or "none"
    profile: str | None = None  # config (in configs/) the weights need on top of the defaults, None for the defaults
    extra_files: list[Path] = field(default_factory=list)

    def summary(self) -> str:
        profile = "" if self.profile is None else f", weights need configs/{self.profile}.json"
        return f"{self.archive.name}: weights {self.weights}{profile} (sha1 {self.sha1[:12]})"


def package_files(package_dir: Path = PACKAGE_DIR) -> dict[str, Path]:
    """The package's source files that a release carries, by path relative to the package folder."""
    return {
        p.relative_to(package_dir).as_posix(): p
        for p in sorted(package_dir.rglob("*.py"))
        if "__pycache__" not in p.parts
    }


def _bundle_files(bundle_dir: Path) -> dict[str, Path]:
    """LICENSE, configs/ and docs/ of a bundle folder (outputs such as models/, eval/ and runs/ are left out)."""
    files = {"LICENSE": bundle_dir / "LICENSE"}
    for folder in ("configs", "docs"):
        for p in sorted((bundle_dir / folder).rglob("*")):
            if p.is_file() and "__pycache__" not in p.parts:
                files[p.relative_to(bundle_dir).as_posix()] = p
    missing = [f for f in ("LICENSE", "configs/metadata.json", "configs/inference.json", "docs/README.md")
               if f not in files or not files[f].is_file()]
    if missing:
        raise ReleaseError(f"{bundle_dir} is not a complete bundle: missing {', '.join(missing)}")
    return files


def _profiles(bundle_dir: Path) -> list[str]:
    """Config overrides in configs/ that are not workflow configs (e.g. ``demo``), alphabetically."""
    return sorted(p.stem for p in (bundle_dir / "configs").glob("*.json") if p.stem not in WORKFLOW_CONFIGS)


# settings a model is trained with on top of any profile (the classifier's subtype head): taken from the weights'
# settings record when the weights are served, whatever the profile
RECORDED_SWITCHES = ("subtypes",)


def recorded_switches(weights: Path) -> dict:
    """``{name: value}`` of the ``RECORDED_SWITCHES`` in the settings record of ``weights`` (e.g. ``{"subtypes":
    True}``); the serving configuration sets them over its profile."""
    checkpoint = load_checkpoint(weights)
    recorded = checkpoint.get("settings") if isinstance(checkpoint, dict) else None
    if not isinstance(recorded, dict):
        return {}
    return {name: recorded[name] for name in RECORDED_SWITCHES if name in recorded}


def weights_profile(bundle_dir: Path, weights: Path) -> str | None:
    """The profile under which ``weights`` load strictly into the inference ``network_def`` and whose settings equal
    the settings record of the checkpoint (image size, HU windows ...: what changes the weights' meaning but no
    tensor shape): ``None`` for the default configs, else the name of a ``configs/<profile>.json`` override. The
    ``recorded_switches`` of the weights are set over every profile. Raises ReleaseError when none fits."""
    try:
        state = read_state_dict(weights)
    except TransferError as error:
        raise ReleaseError(str(error)) from error
    checkpoint = load_checkpoint(weights)
    recorded = checkpoint.get("settings") if isinstance(checkpoint, dict) else None
    problems = []
    for profile in [None, *_profiles(bundle_dir)]:
        files = [bundle_dir / "configs" / "inference.json"]
        if profile is not None:
            files.append(bundle_dir / "configs" / f"{profile}.json")
        parser = ConfigParser()
        parser.read_config([str(f) for f in files])
        parser["bundle_root"] = str(bundle_dir)
        for switch, value in recorded_switches(weights).items():
            if switch in parser:
                parser[switch] = value
        network = parser.get_parsed_content("network_def")
        name = "defaults" if profile is None else profile + ".json"
        try:
            network.load_state_dict(state, strict=True)
        except RuntimeError as error:
            detail = " ".join(line.strip() for line in str(error).splitlines()[1:2])  # the keys that differ
            problems.append(f"{name}: the network does not fit the weights ({detail[:200]})")
            continue
        differ = settings_mismatches(recorded, parser.get_parsed_content("settings_record").state_dict()) \
            if isinstance(recorded, dict) and "settings_record" in parser else []
        if not differ:
            return profile
        problems.append(f"{name}: the network fits, but the weights were trained with other settings: "
                        + "; ".join(differ))
    raise ReleaseError(
        f"{weights} does not load into the inference network of {bundle_dir.name} under any profile:\n  "
        + "\n  ".join(problems)
    )


def _sha(path: Path, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_zip(archive: Path, members: dict[str, Path | bytes]) -> None:
    """Write ``members`` (archive path -> file or bytes) with fixed timestamps, via a temporary name."""
    partial = archive.with_name(archive.name + ".partial")
    with zipfile.ZipFile(partial, "w") as zf:
        for name in sorted(members):
            source = members[name]
            data = source if isinstance(source, bytes) else source.read_bytes()
            info = zipfile.ZipInfo(name, date_time=_FIXED_TIME)
            info.external_attr = 0o644 << 16
            # weights hardly compress; storing them keeps release builds quick
            info.compress_type = zipfile.ZIP_STORED if name.endswith(".pt") else zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
    partial.replace(archive)


def eval_metrics_of(bundle_dir: Path, model: Path | None) -> dict[str, float] | None:
    """The numeric test metrics of ``model`` from ``<bundle_dir>/eval/evaluation/metrics.json``, or None when there
    are no weights, no evaluation, or the evaluation is older than the weights (a stale number is worse than none)."""
    metrics_file = bundle_dir / "eval" / "evaluation" / "metrics.json"
    if model is None or not metrics_file.is_file() or metrics_file.stat().st_mtime < model.stat().st_mtime:
        return None
    metrics = json.loads(metrics_file.read_text(encoding="utf-8")).get("metrics", {})
    return {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)} or None


def _release_metadata(path: Path, eval_metrics: dict[str, float] | None) -> Path | bytes:
    """``metadata.json`` as released: unchanged (the file itself) when its ``eval_metrics`` already match."""
    metadata = json.loads(path.read_text(encoding="utf-8"))
    if metadata.get("eval_metrics") == eval_metrics or (eval_metrics is None and "eval_metrics" not in metadata):
        return path
    metadata.pop("eval_metrics", None)
    if eval_metrics is not None:
        metadata["eval_metrics"] = eval_metrics
    return (json.dumps(metadata, indent=4) + "\n").encode("utf-8")


def build_archive(
    bundle_dir: str | Path,
    out_dir: str | Path,
    weights: str = "auto",
    weights_url: str | None = None,
) -> ReleaseArtifact:
    """Build ``<out_dir>/<name>_v<version>.zip`` from ``bundle_dir`` (see the module docstring).

    Args:
        bundle_dir: a bundle folder (``configs/``, ``docs/``, ``LICENSE``; ``models/model.pt`` for weights).
        out_dir: where the archive (and, with ``weights_url``, the weights file to upload) is written.
        weights: ``"auto"`` (use ``models/model.pt`` if it exists), ``"include"`` (it must exist) or ``"none"``.
        weights_url: base URL the weights will be uploaded to; the archive then carries ``large_files.yml`` with
            ``<weights_url>/<name>_v<version>_model.pt`` and its SHA-256 instead of the weights themselves.
    """
    bundle_dir, out_dir = Path(bundle_dir).expanduser().resolve(), Path(out_dir).expanduser().resolve()
    if weights not in ("auto", "include", "none"):
        raise ReleaseError(f"weights must be 'auto', 'include' or 'none', got {weights!r}")
    files = _bundle_files(bundle_dir)
    metadata = json.loads(files["configs/metadata.json"].read_text(encoding="utf-8"))
    name, version = bundle_dir.name, str(metadata.get("version", ""))
    if not version or version not in metadata.get("changelog", {}):
        raise ReleaseError(f"{name}: metadata version {version!r} must be set and have a changelog entry")

    members: dict[str, Path | bytes] = {f"{name}/{rel}": path for rel, path in files.items()}
    members.update({f"{name}/{VENDORED_NAME}/{rel}": path for rel, path in package_files().items()})

    model = bundle_dir / "models" / "model.pt"
    use_weights = weights == "include" or (weights == "auto" and model.is_file())
    if use_weights and not model.is_file():
        raise ReleaseError(f"{model} does not exist: train the bundle first, or pass --weights none")
    profile, mode, extra = None, "none", []
    out_dir.mkdir(parents=True, exist_ok=True)
    if use_weights:
        profile = weights_profile(bundle_dir, model)
        if weights_url:
            asset = out_dir / f"{name}_v{version}_model.pt"
            shutil.copyfile(model, asset)
            entry = {"path": "models/model.pt", "url": f"{weights_url.rstrip('/')}/{asset.name}",
                     "hash_val": _sha(asset, "sha256"), "hash_type": "sha256"}
            members[f"{name}/large_files.yml"] = yaml.safe_dump({"large_files": [entry]}, sort_keys=False).encode()
            mode, extra = "large_files", [asset]
        else:
            members[f"{name}/models/model.pt"] = model
            mode = "packed"

    members[f"{name}/configs/metadata.json"] = _release_metadata(
        files["configs/metadata.json"], eval_metrics_of(bundle_dir, model if use_weights else None))
    archive = out_dir / f"{name}_v{version}.zip"
    _write_zip(archive, members)
    return ReleaseArtifact(name, version, archive, _sha(archive, "sha1"), mode, profile, extra)


def build_release(
    bundles_root: str | Path,
    out_dir: str | Path,
    names: tuple[str, ...] = BUNDLE_NAMES,
    weights: str = "auto",
    weights_url: str | None = None,
    archive_url: str | None = None,
) -> list[ReleaseArtifact]:
    """Build the archives of ``names`` under ``bundles_root`` and a model-zoo style ``model_info.json`` index
    (``{"<name>_v<version>": {"checksum": sha1, "source": url}}``; ``source`` uses ``archive_url`` if given, else
    the archive's ``file://`` URI)."""
    out = Path(out_dir).expanduser().resolve()
    artifacts = [build_archive(Path(bundles_root).expanduser() / n, out, weights, weights_url) for n in names]
    index = {
        f"{a.name}_v{a.version}": {
            "checksum": a.sha1,
            "source": f"{archive_url.rstrip('/')}/{a.archive.name}" if archive_url else a.archive.as_uri(),
        }
        for a in artifacts
    }
    (out / "model_info.json").write_text(json.dumps(index, indent=4) + "\n", encoding="utf-8")
    return artifacts

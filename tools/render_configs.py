"""Render the three bundles' ``configs/*.json`` from their layered sources in ``bundles/_source``.

Each bundle folder stays standalone (``monai.bundle download``, release archives, MONAI Label), so its config files
are committed as rendered; what a person edits are the sources, where a shared part is written once:

    bundles/_source/all/<file>.json          every bundle
    bundles/_source/downstream/<file>.json   smartnet_down_cls and smartnet_down_seg
    bundles/_source/<bundle>/<file>.json     that bundle alone

Other files in ``_source/all`` (``logging.conf``) are copied to every bundle as they are.
``settings.json`` (in any of these folders) goes into both ``train.json`` and ``inference.json``: inference runs
without ``train.json``, so the settings both need (encoder, image size, HU windows, orientation, ...) are rendered
into each. Layers are merged from the broadest to the narrowest, dicts key by key; anything else is a leaf, and a
narrower layer may add keys but never redefine a leaf a broader one set (:class:`ConfigSourceError`): a value that
differs between bundles lives in the narrower layers only, so the bundles cannot drift apart by an edit to one of
them. A rendered file lists its keys in the order of ``bundles/_source/key_order.json`` (nested: each dict's keys;
keys it does not list follow in layer order, broadest first) and every ``changelog`` newest version first.
The bundles' ``version`` is the package's (``__version__`` in ``custom/smartnet/__init__.py``, which
``setup.cfg`` reads too): it is written into every ``metadata.json``, whose ``changelog`` must have an entry for it.
``tests/bundles/test_config_sources.py`` fails when a committed file differs from its sources.

    python tools/render_configs.py           write the rendered files
    python tools/render_configs.py --check   exit 1 naming each committed file that differs from its sources
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BUNDLES = REPO / "bundles"
SOURCE = BUNDLES / "_source"
# bundle -> its source scopes, broadest first
SCOPES: dict[str, tuple[str, ...]] = {
    "smartnet_upstream": ("all", "smartnet_upstream"),
    "smartnet_down_cls": ("all", "downstream", "smartnet_down_cls"),
    "smartnet_down_seg": ("all", "downstream", "smartnet_down_seg"),
}
SETTINGS = "settings.json"
SETTINGS_TARGETS = ("train.json", "inference.json")
KEY_ORDER = "key_order.json"
METADATA = "metadata.json"
PACKAGE_INIT = REPO / "custom" / "smartnet" / "__init__.py"


class ConfigSourceError(ValueError):
    """A source layer redefines a value of a broader one, or is not a JSON object."""


def _merge(into: dict, layer: dict, origin: dict, source: str, path: str = "") -> None:
    """Merge ``layer`` into ``into`` in place; ``origin`` records which source set each leaf (for the error)."""
    for key, value in layer.items():
        where = f"{path}#{key}" if path else key
        if key not in into:
            into[key] = json.loads(json.dumps(value))  # a copy: layers stay untouched
            origin[where] = source
            if isinstance(value, dict):
                for sub in _leaves(value, where):
                    origin[sub] = source
        elif isinstance(into[key], dict) and isinstance(value, dict):
            _merge(into[key], value, origin, source, where)
        else:
            raise ConfigSourceError(
                f"{source} redefines '{where}', already set by {origin.get(where, 'a broader layer')}: "
                "a value that differs between bundles belongs in the narrower layers only"
            )


def package_version(init: Path = PACKAGE_INIT) -> str:
    """The package's ``__version__``, read from its ``__init__.py`` (no import: the tool runs without the package)."""
    found = re.search(r'^__version__ = "([^"]+)"$', init.read_text(encoding="utf-8"), re.MULTILINE)
    if not found:
        raise ConfigSourceError(f"{init}: no line __version__ = \"...\"")
    return found.group(1)


def _leaves(d: dict, path: str) -> list[str]:
    out = []
    for key, value in d.items():
        where = f"{path}#{key}"
        out.append(where)
        if isinstance(value, dict):
            out.extend(_leaves(value, where))
    return out


def _layer(path: Path) -> dict:
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ConfigSourceError(f"{path}: a config source must be a JSON object")
    return data


def config_files(source: Path = SOURCE) -> list[str]:
    """The config file names the sources define (``settings.json`` is not one: it goes into others)."""
    names = {p.name for p in source.glob("*/*.json")} - {SETTINGS}
    return sorted(names | (set(SETTINGS_TARGETS) if (source / "all" / SETTINGS).exists() else set()))


def render_config(bundle: str, name: str, source: Path = SOURCE, version: str | None = None) -> str:
    """The text of ``bundles/<bundle>/configs/<name>`` from the layers that apply, as pretty 4-space JSON.

    ``metadata.json`` gets ``version`` (default: the package's), which its changelog must name."""
    rendered: dict = {}
    origin: dict = {}
    for scope in SCOPES[bundle]:
        parts = [SETTINGS, name] if name in SETTINGS_TARGETS else [name]
        for part in parts:
            path = source / scope / part
            if path.exists():
                _merge(rendered, _layer(path), origin, path.relative_to(source.parent).as_posix())
    if name == METADATA:
        if "version" in rendered:
            raise ConfigSourceError(f"{bundle}'s metadata sources set 'version': it is the package's __version__")
        rendered["version"] = version or package_version()
        if rendered["version"] not in rendered.get("changelog", {}):
            raise ConfigSourceError(f"{bundle}'s changelog has no entry for version {rendered['version']} "
                                    f"(add one to bundles/_source/{bundle}/metadata.json)")
    order_file = source / KEY_ORDER
    skeleton = _layer(order_file).get(name) if order_file.exists() else None
    return json.dumps(_ordered(rendered, skeleton), indent=4) + "\n"


def _ordered(d: dict, skeleton: dict | None) -> dict:
    """``d`` with its keys in the skeleton's order (recursively), the unlisted ones after in their own order."""
    skeleton = skeleton or {}
    rank = {key: i for i, key in enumerate(skeleton)}
    out = {}
    for key, value in sorted(d.items(), key=lambda kv: rank.get(kv[0], len(rank))):  # sorted() is stable
        if key == "changelog" and isinstance(value, dict):
            value = dict(sorted(value.items(), key=lambda kv: _version(kv[0]), reverse=True))
        elif isinstance(value, dict):
            value = _ordered(value, skeleton.get(key))
        out[key] = value
    return out


def _version(text: str) -> tuple:
    return tuple(int(p) if p.isdigit() else -1 for p in text.split("."))


def shared_files(source: Path = SOURCE) -> list[Path]:
    """The files of ``_source/all`` that are not JSON layers (``logging.conf``): every bundle gets them as they are."""
    return sorted(p for p in (source / "all").iterdir() if p.is_file() and p.suffix != ".json")


def render_all(source: Path = SOURCE) -> dict[Path, str]:
    """Every rendered config: ``bundles/<bundle>/configs/<name>`` (relative to ``bundles/``) -> text."""
    rendered = {Path(bundle) / "configs" / name: render_config(bundle, name, source)
                for bundle in SCOPES for name in config_files(source)}
    for path in shared_files(source):
        rendered.update({Path(bundle) / "configs" / path.name: path.read_text(encoding="utf-8") for bundle in SCOPES})
    return rendered


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="do not write; exit 1 if a committed file differs")
    args = parser.parse_args(argv)
    try:
        rendered = render_all()
    except (ConfigSourceError, json.JSONDecodeError) as e:
        print(f"render_configs: {e}", file=sys.stderr)
        return 2
    stale = [rel for rel, text in rendered.items()
             if not (BUNDLES / rel).exists() or (BUNDLES / rel).read_text(encoding="utf-8") != text]
    if args.check:
        for rel in stale:
            print(f"bundles/{rel} differs from its sources in bundles/_source "
                  "(edit the sources, then run python tools/render_configs.py)", file=sys.stderr)
        return 1 if stale else 0
    for rel in stale:
        (BUNDLES / rel).write_text(rendered[rel], encoding="utf-8")
        print(f"wrote bundles/{rel}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

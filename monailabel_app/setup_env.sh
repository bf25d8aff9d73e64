#!/usr/bin/env bash
# Build (once) the MONAI Label environment: bash monailabel_app/setup_env.sh [venv folder]
# Default folder: ~/.cache/smartnet/monailabel-venv. Rebuilt only when requirements.txt changes.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="${1:-$HOME/.cache/smartnet/monailabel-venv}"
stamp="$venv/.smartnet-requirements.sha256"
want="$(sha256sum "$here/requirements.txt" | cut -d' ' -f1)"
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" && -x "$venv/bin/monailabel" ]]; then
    echo "MONAI Label environment ready: $venv"
    exit 0
fi
echo "building the MONAI Label environment in $venv (a few minutes, about 8 GB)"
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/pip" install -q --disable-pip-version-check -r "$here/requirements.txt"
# monailabel without its sam2 dependency (an sdist build of minutes that this app never uses)
"$venv/bin/pip" install -q --disable-pip-version-check --no-deps monailabel==0.8.5
"$venv/bin/python" -c "import monailabel.interfaces.app, monai, torch; print('monailabel', monailabel.__version__, 'monai', monai.__version__, 'torch', torch.__version__)"
echo "$want" > "$stamp"
echo "MONAI Label environment ready: $venv"

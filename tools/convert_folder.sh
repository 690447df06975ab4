#!/usr/bin/env bash
# Convert a folder of images with a trained checkpoint: a thin wrapper over `translate convert`.
# Run with -h for usage.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: convert_folder.sh CHECKPOINT INPUT OUTPUT [options...]

Runs `translate convert CHECKPOINT INPUT OUTPUT [options...]`: translates every image under
INPUT (recursively) into OUTPUT, keeping relative paths. INPUT may be `-` to read a list of image
paths from stdin, one per line. Options after the three paths are passed through unchanged, e.g.
  --direction a2b|b2a   --batch-size N   --device cpu|cuda
(see `translate convert --help` for all of them).

  CHECKPOINT   a run folder (checkpoints/NAME) or its translator/ folder
  INPUT        folder of images, or - for a list of paths on stdin
  OUTPUT       output folder

The `translate` command is taken from PATH; without it, `python -m translate` runs with the
repository's .venv/bin/python, else python3.
Exit status: that of `translate convert` (0 only when every image was converted); 2 for usage
errors.
EOF
}

# shellcheck source=_common.sh
source "$(dirname "${BASH_SOURCE[0]}")/_common.sh"
check_paths_args convert_folder.sh "CHECKPOINT INPUT OUTPUT" 1 "$@"
checkpoint=$1
input=$2
output=$3
shift 3

if command -v translate >/dev/null 2>&1; then
    exec translate convert "$checkpoint" "$input" "$output" "$@"
fi

# No `translate` on PATH: run the package from this checkout.
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
python="$repo/.venv/bin/python"
if [ ! -x "$python" ]; then
    python=$(command -v python3 || true)
fi
if [ -z "$python" ]; then
    echo "convert_folder.sh: neither 'translate' nor python3 found on PATH; install the package (pip install -e .)" >&2
    exit 127
fi
export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"
exec "$python" -m translate convert "$checkpoint" "$input" "$output" "$@"

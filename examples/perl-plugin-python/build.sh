#!/usr/bin/env bash
# Builds the Perl plugin (written in Python) into a WebAssembly component with
# componentize-py, from PyPI. Output: $1 (default target/test-plugins/perl.wasm).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
out=${1:-$repo/target/test-plugins/perl.wasm}
venv=$repo/target/componentize-py-venv
if [ ! -x "$venv/bin/componentize-py" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet 'componentize-py==0.25.1'
fi
mkdir -p "$(dirname "$out")"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp "$here/app.py" "$work/"
cd "$work"
"$venv/bin/componentize-py" -d "$repo/wit/v0.1" -w language-plugin componentize app -o "$out" >/dev/null
echo "built $out ($(stat -c %s "$out") bytes)"

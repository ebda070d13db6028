#!/usr/bin/env bash
# Figures for `ecs-env build`: wall time, peak memory (max RSS) and the PDF's pages and
# QR codes, for a ~10 KB env (the original template's shape) and a ~100 KB env (the
# same with a large extra file of base64 text, as a big set of keys would be).
# Prints; asserts nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
make -s build
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

mkdir "$work/small"
cp env/testdata/template-env.yml "$work/small/env.yml"

{
  echo "appliance:"
  echo "  extra:"
  echo "    files:"
  echo "      - path: /etc/ecs/bulk.pem"
  echo "        contents: |"
  head -c 56000 /dev/urandom | base64 -w 64 | sed 's/^/          /'
} > "$work/extra.yml"
bin/ecs-env new ecs.example.org -o "$work/large" --extra "$work/extra.yml" >/dev/null

for size in small large; do
  dir="$work/$size"
  bytes=$(stat -c %s "$dir/env.yml")
  for run in 1 2 3; do
    rm -f "$dir"/env.yml.pdf "$dir"/env-cidata.iso
    /usr/bin/time -f "%e %M" -o "$work/time" bin/ecs-env build "$dir/env.yml" > "$work/out"
    read -r secs kib < "$work/time"
    echo "env $bytes bytes, run $run: ${secs}s, peak RSS $((kib / 1024)) MiB"
  done
  sed -n 's/^wrote .*env.yml.pdf: /  pdf: /p' "$work/out"
done

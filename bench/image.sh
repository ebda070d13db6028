#!/usr/bin/env bash
# Figures for the image pipeline on this machine (prints; asserts nothing):
# cold and warm `make image` (cold: no cached base; packer itself is set-up and stays
# cached), the image sizes, and the time from QEMU start to the agent's outcome line
# under TCG (from the boot test's log). Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
make -s packer plugin-install appliance-agent-static >/dev/null 2>&1

rm -rf packer_cache/ecs-image
for run in cold warm; do
  start=$SECONDS
  make -s image IMAGE_OUTPUT="$out/img" > "$out/$run.log" 2>&1 || { tail -20 "$out/$run.log"; exit 1; }
  echo "make image ($run): $((SECONDS - start)) s"
done
raw=$out/img/appliance.raw
echo "appliance.raw: $(du -m --apparent-size "$raw" | cut -f1) MiB size, $(du -m "$raw" | cut -f1) MiB allocated"
echo "appliance.qcow2: $(du -m --apparent-size "$out/img/appliance.qcow2" | cut -f1) MiB"

ECS_E2E_IMAGE=$out/img/appliance.qcow2 go test -count=1 -v -timeout 60m -run TestBootImage ./e2e/ 2>&1 |
  sed -n 's/^=== RUN   TestBootImage\/\([a-z]*\)$/\1:/p;s/.*\(first\|second\) boot: outcome \([a-z]*\) \(.*\) after QEMU started/  QEMU start to outcome (\1 boot, \2): \3/p;s/^--- FAIL.*/  boot test FAILED/p'

#!/usr/bin/env bash
# Figures of a boot of the appliance image under TCG (prints; asserts nothing): the
# configure and start phases on the first and the second boot, QEMU start to the first
# HTTPS answer, and the ratio to the same image with the agent's unit masked (QEMU start
# to the login prompt). Builds the image unless ECS_E2E_IMAGE names one. Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${ECS_E2E_IMAGE:-}" ]; then
  make -s test-deps image >/dev/null
  ECS_E2E_IMAGE=$PWD/output/appliance.qcow2
fi
ECS_E2E_IMAGE=$ECS_E2E_IMAGE go test -count=1 -run '^$' -bench BenchmarkBoot -benchtime 1x -timeout 60m ./e2e/

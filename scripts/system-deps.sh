#!/usr/bin/env bash
# Debian packages the test suite needs. Idempotent; needs root (CI and the dev machines run as root).
set -euo pipefail
needed=(prometheus chromium wrk nginx-light iproute2 redis-server valgrind)
# prometheus: tests/deploy (a real Prometheus); chromium: tests/e2e (headless, driven over the DevTools protocol);
# wrk, nginx-light: tests/loadtests/test_bench.py runs loadtests/bench.py (wrk the load, nginx the floor);
# redis-server: tests/state and tests/integration/test_fleet.py (a fleet's Redis, started by the tests);
# valgrind: tests/loadtests/test_bench_instructions.py runs loadtests/bench_instructions.py (callgrind's counts);
# iproute2: ip netns and tc for tests/integration/test_shaped_link.py (a veth pair shaped with tbf) and loadtests/netns.sh
if [ ${#needed[@]} -eq 0 ]; then exit 0; fi
missing=()
for pkg in "${needed[@]}"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then echo "system-deps: need root to install: ${missing[*]}" >&2; exit 1; fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

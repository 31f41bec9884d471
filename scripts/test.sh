#!/usr/bin/env bash
# The one test command: installs what the tests need on a fresh Debian machine, then runs every test.
# Safe to rerun; each install step is skipped when its tool is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v rg >/dev/null 2>&1 || need_apt+=(ripgrep)                     # bench --compare
command -v nft >/dev/null 2>&1 || need_apt+=(nftables)                   # export: nft -c -f
command -v named-checkzone >/dev/null 2>&1 || need_apt+=(bind9-utils)    # export: RPZ zone check
if ((${#need_apt[@]})); then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing: ${need_apt[*]}"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
  else
    echo "note: ${need_apt[*]} missing and not root; the tests that need them will say so and skip" >&2
  fi
fi

# Offline validation of docker-compose.yml against the Compose Specification.
if ! command -v check-jsonschema >/dev/null 2>&1; then
  python3 -m pip install -q check-jsonschema >/dev/null 2>&1 || echo "note: could not install check-jsonschema" >&2
fi

# A real libzmq publisher for tests/zmq.rs (MISP's ZeroMQ feed): pyzmq from PyPI, required once installed.
if python3 -c "import zmq" >/dev/null 2>&1 || python3 -m pip install -q pyzmq >/dev/null 2>&1; then
  export IOCMATCH_REQUIRE_ZMQ=1
else
  echo "note: could not install pyzmq; tests/zmq.rs will say so and skip" >&2
fi

# Hyperscan for bench --compare (Python package from PyPI), required once installed.
if python3 -c "import hyperscan" >/dev/null 2>&1 || python3 -m pip install -q hyperscan >/dev/null 2>&1; then
  export IOCMATCH_REQUIRE_HYPERSCAN=1
else
  echo "note: could not install hyperscan; the bench test will accept its absence" >&2
fi

# A real Kafka-protocol broker for tests/stream.rs (about 13 minutes to build once; reused afterwards).
if ! command -v tansu >/dev/null 2>&1 && [ ! -x "$HOME/.cargo/bin/tansu" ]; then
  echo "installing tansu (Kafka-compatible broker) with cargo install; this takes a while once"
  cargo install tansu --version 0.6.0 --features dynostore,libsql
fi
export PATH="$HOME/.cargo/bin:$PATH"

cargo test

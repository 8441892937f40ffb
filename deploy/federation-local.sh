#!/usr/bin/env bash
# Runs the local federation as plain processes on this machine, without containers: one
# `kring node` per configuration in config/federation/, each on its own loopback ports, with its
# store under data/federation/<node>/ and its log in data/federation/<node>.log. Ctrl-C (or
# SIGTERM) stops every node gracefully; when one node exits on its own, the others are stopped
# too and the script exits non-zero. Run deploy/federation-pki.sh first.
#
# Usage: deploy/federation-local.sh [--config-dir DIR] [--kring PATH]
#   --config-dir DIR  the node configurations (default config/federation; env KRING_FEDERATION_DIR)
#   --kring PATH      the kring binary (env KRING_BIN; default: cargo build --release, then
#                     target/release/kring)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
config_dir=${KRING_FEDERATION_DIR:-$root/config/federation}
kring=${KRING_BIN:-}
while [ $# -gt 0 ]; do
  case $1 in
    --config-dir) config_dir=${2:?--config-dir needs a directory}; shift 2 ;;
    --kring) kring=${2:?--kring needs a path}; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "federation-local.sh: unknown argument $1 (try --help)" >&2; exit 64 ;;
  esac
done
config_dir=$(cd "$config_dir" && pwd)
[ -f "$config_dir/pki/directory.note" ] || {
  echo "federation-local.sh: no $config_dir/pki/directory.note; run deploy/federation-pki.sh first" >&2
  exit 1
}
if [ -z "$kring" ]; then
  cargo build --release --manifest-path "$root/Cargo.toml" --bin kring
  kring=$root/target/release/kring
fi
logs=$(cd "$config_dir/../.." && pwd)/data/federation
mkdir -p "$logs"

# The federation's services first; the order is a courtesy (outboxes retry until delivered).
order=(authority pseudonyms pseudonyms-b index)
configs=()
for key in "${order[@]}"; do
  if [ -f "$config_dir/$key.toml" ]; then configs+=("$config_dir/$key.toml"); fi
done
for config in "$config_dir"/*.toml; do
  case " ${order[*]} " in *" $(basename "$config" .toml) "*) continue ;; esac
  configs+=("$config")
done

pids=()
stop() {
  trap - INT TERM
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap 'echo "stopping every node"; stop; exit 0' INT TERM

for config in "${configs[@]}"; do
  key=$(basename "$config" .toml)
  "$kring" node --config "$config" >>"$logs/$key.log" 2>&1 &
  pids+=($!)
  echo "started $key (pid $!), log $logs/$key.log"
done
echo "the federation runs; Ctrl-C stops it"

status=0
wait -n "${pids[@]}" || status=$?
echo "a node exited (status $status); stopping the others; see the logs in $logs" >&2
stop
exit $((status == 0 ? 1 : status))

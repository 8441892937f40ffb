#!/usr/bin/env bash
# Generates the development PKI and the signed directory of the local federation whose node
# configurations are config/federation/*.toml (see deploy/README.md):
#
#   pki/ca.crt, ca.key                 the federation CA
#   pki/<node>/node.crt, node.key      each node's certificate (OIN in the subject serialNumber;
#                                      DNS SANs <node> (its compose service), localhost,
#                                      127.0.0.1 and ::1), for the local and the peer listener
#   pki/<node>/audit.key               each node's Ed25519 audit signing key
#   pki/<node>/data-1.key              each node's AES-256 data key for encryption at rest
#   pki/authority.key, authority.pub   the authority's signing key and its verifier key, which
#                                      every configuration pins (federation.authority_key_file)
#   pki/directory-local.toml           the directory source with endpoints 127.0.0.1:<peer port>
#   pki/directory.note                 ... signed: what the configurations load
#   pki/directory-compose.toml         the directory source with endpoints <node>:<peer port>
#   pki/directory-compose.note         ... signed: compose mounts it over directory.note
#
# Everything about a member (name, OIN, type, roles, peer port, first contact point) is read from
# its configuration, so the configurations are the one place to change. The node's key is the
# file's name, which is also its compose service name and host name.
#
# Keys and certificates that exist are kept; the directories are built and signed again on every
# run, with the current Unix time as serial (higher than any signed here before: nodes never
# accept a lower one), valid 90 days. Run it again to renew them or after changing a
# configuration; running nodes pick the new directory up when they restart.
#
# Usage: deploy/federation-pki.sh [--config-dir DIR] [--kring PATH]
#   --config-dir DIR  the node configurations (default config/federation; env KRING_FEDERATION_DIR);
#                     the PKI goes to DIR/pki, where the configurations expect it
#   --kring PATH      the kring binary (env KRING_BIN; default: cargo run --release)
#
# Development keys only: never let a node configured from them see a real person's data.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
config_dir=${KRING_FEDERATION_DIR:-$root/config/federation}
kring_bin=${KRING_BIN:-}
while [ $# -gt 0 ]; do
  case $1 in
    --config-dir) config_dir=${2:?--config-dir needs a directory}; shift 2 ;;
    --kring) kring_bin=${2:?--kring needs a path}; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "federation-pki.sh: unknown argument $1 (try --help)" >&2; exit 64 ;;
  esac
done
config_dir=$(cd "$config_dir" && pwd)
pki=$config_dir/pki

kring() {
  if [ -n "$kring_bin" ]; then
    "$kring_bin" "$@"
  else
    cargo run --quiet --release --manifest-path "$root/Cargo.toml" -- "$@"
  fi
}

die() { echo "federation-pki.sh: $*" >&2; exit 1; }

# The raw TOML value (a "string" or an [array]) of KEY in SECTION of FILE, from the section's
# first block ([[contact_points]] appears several times); empty when absent. The configurations
# are simple enough for this: one key = value per line, no escapes, no multi-line values.
toml_raw() { # file section key
  awk -v want="$2" -v key="$3" '
    /^[[:space:]]*\[/ {
      header = $0
      sub(/[[:space:]]*(#.*)?$/, "", header)
      section = header
      gsub(/^[[:space:]]*\[+|\]+$/, "", section)
      blocks[section]++
      next
    }
    section == want && blocks[section] == 1 && $0 ~ ("^[[:space:]]*" key "[[:space:]]*=") {
      value = $0
      sub(/^[^=]*=[[:space:]]*/, "", value)
      if (match(value, /^"[^"]*"/) || match(value, /^\[[^]]*\]/)) {
        print substr(value, RSTART, RLENGTH)
        exit
      }
    }' "$1"
}

# A string value without its quotes; refuses escapes, which toml_raw does not understand.
toml_string() { # file section key
  local raw
  raw=$(toml_raw "$@")
  case $raw in
    *\\*) die "$1: [$2] $3 uses an escape, which this script does not read" ;;
    \"*\") raw=${raw#\"}; printf '%s' "${raw%\"}" ;;
    "") printf '' ;;
    *) die "$1: [$2] $3 is not a string" ;;
  esac
}

required() { # file section key
  local value
  value=$(toml_string "$@")
  [ -n "$value" ] || die "$1: [$2] $3 is missing"
  printf '%s' "$value"
}

shopt -s nullglob
configs=("$config_dir"/*.toml)
[ ${#configs[@]} -gt 0 ] || die "no node configurations (*.toml) in $config_dir"

mkdir -p "$pki"
if [ ! -f "$pki/ca.crt" ]; then
  kring pki init --dir "$pki" --name "kring development federation CA" >/dev/null
  echo "created the federation CA: $pki/ca.crt"
fi
if [ ! -f "$pki/authority.key" ]; then
  kring directory authority-key --out "$pki/authority.key" >"$pki/authority.pub.new"
  mv "$pki/authority.pub.new" "$pki/authority.pub"
  echo "created the authority key; its verifier key: $(cat "$pki/authority.pub")"
elif [ ! -f "$pki/authority.pub" ]; then
  die "$pki/authority.key exists without authority.pub; remove the key to make a new pair"
fi

federation="kring development federation"
local_source=$pki/directory-local.toml
compose_source=$pki/directory-compose.toml
for target in local compose; do
  source=$pki/directory-$target.toml
  {
    echo "# Generated by deploy/federation-pki.sh from $config_dir/*.toml; edits are overwritten."
    echo "# Endpoints for the $target federation. Without [policy], the regional default applies."
    echo "federation = \"$federation ($target)\""
  } >"$source"
done

peer_ports=()
for config in "${configs[@]}"; do
  key=$(basename "$config" .toml)
  [[ $key =~ ^[a-z0-9]([a-z0-9-]*[a-z0-9])?$ ]] ||
    die "$config: the file name must be a host name (lowercase letters, digits, hyphens): it names the compose service"
  name=$(required "$config" node organisation)
  oin=$(required "$config" node oin)
  org_type=$(toml_raw "$config" node org_type)
  roles=$(toml_raw "$config" federation roles)
  [ -n "$roles" ] || die "$config: [federation] roles is missing"
  listen=$(required "$config" federation listen)
  port=${listen##*:}
  [[ $port =~ ^[0-9]+$ ]] && [ "$port" -gt 0 ] ||
    die "$config: [federation] listen needs a fixed port (the directory names it), not $listen"
  peer_ports+=("$port")
  origin=$(toml_raw "$config" audit origin)

  if [ ! -f "$pki/$key/node.crt" ]; then
    kring pki issue --dir "$pki" --out "$pki/$key" --organisation "$name" --oin "$oin" \
      --host "$key" --host localhost --host 127.0.0.1 --host ::1 --days 365 >/dev/null
    echo "issued $key: $name ($oin)"
  fi
  if [ ! -f "$pki/$key/data-1.key" ]; then
    kring store new-key --out "$pki/$key/data-1.key" >/dev/null
    echo "created data key 1 of $key"
  fi

  for target in local compose; do
    if [ "$target" = local ]; then host=127.0.0.1; else host=$key; fi
    {
      echo
      echo "[[members]]"
      echo "oin = \"$oin\""
      echo "name = $(toml_raw "$config" node organisation)"
      echo "org_type = $org_type"
      echo "roles = $roles"
      echo "endpoint = \"$host:$port\""
      echo "certificates = [\"$key/node.crt\"]"
      echo "audit_key_file = \"$key/audit.key\""
      if [ -n "$origin" ]; then echo "audit_key_name = $origin"; fi
      contact=$(toml_raw "$config" contact_points name)
      if [ -n "$contact" ]; then
        echo "[members.contact]"
        echo "name = $contact"
        for field in phone email; do
          value=$(toml_raw "$config" contact_points "$field")
          if [ -n "$value" ]; then echo "$field = $value"; fi
        done
      fi
    } >>"$pki/directory-$target.toml"
  done
done
duplicates=$(printf '%s\n' "${peer_ports[@]}" | sort | uniq -d)
[ -z "$duplicates" ] || die "two configurations listen for peers on port(s) $duplicates"

# The current Unix time, and always above the serial of a directory signed here before, so that
# nodes that accepted that one accept this one (they refuse an equal serial with other content).
serial=$(date +%s)
for note in "$pki/directory.note" "$pki/directory-compose.note"; do
  if [ -f "$note" ]; then
    previous=$(grep -o '"serial":[0-9]*' "$note" | head -1 | cut -d: -f2)
    if [ -n "$previous" ] && [ "$previous" -ge "$serial" ]; then serial=$((previous + 1)); fi
  fi
done
sign() { # source note
  rm -f "$2.new"
  kring directory sign --source "$1" --key "$pki/authority.key" --serial "$serial" \
    --valid-days 90 --out "$2.new" >/dev/null
  mv -f "$2.new" "$2"
  echo "signed $2 from $(basename "$1"): serial $serial, ${#configs[@]} members, valid 90 days"
}
sign "$local_source" "$pki/directory.note"
sign "$compose_source" "$pki/directory-compose.note"

echo
echo "Example tokens (each configuration holds their SHA-256; never use them for real data):"
printf '  %-14s %-16s %-10s %s\n' node "local API" principal token
for config in "${configs[@]}"; do
  key=$(basename "$config" .toml)
  listen=$(required "$config" local listen)
  awk -v key="$key" -v listen="$listen" '
    /^[[:space:]]*\[/ { principal = ($0 ~ /^[[:space:]]*\[\[principals\]\]/); id = ""; next }
    principal && /^[[:space:]]*id[[:space:]]*=/ { id = $0; sub(/^[^"]*"/, "", id); sub(/".*/, "", id) }
    principal && /token_sha256/ && match($0, /# *[^ ]+/) {
      token = substr($0, RSTART, RLENGTH); sub(/^# */, "", token)
      printf "  %-14s %-16s %-10s %s\n", key, listen, id, token
    }' "$config"
done
cat <<EOF

As plain processes on this machine (one terminal or supervisor per node):
  cargo run --release -- node --config $config_dir/<node>.toml
  deploy/federation-local.sh --config-dir $config_dir   (every node; Ctrl-C stops them all)
With compose (the same PKI; directory-compose.note is mounted as directory.note):
  docker compose -f deploy/compose.yaml up --build
Then, e.g.:
  KRING_CA=$pki/ca.crt KRING_NODE=127.0.0.1:7404 KRING_TOKEN=kring_example_fed-school-m.jansen \\
    kring signal list
EOF

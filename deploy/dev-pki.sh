#!/usr/bin/env bash
# Generates a development PKI for the example configurations in config/: a federation CA and,
# per organisation, a node certificate (OIN in the subject serialNumber), an audit signing
# key and a data key for encryption at rest. Everything goes to config/pki/, which git ignores. Never use these keys for real data.
set -euo pipefail
cd "$(dirname "$0")/.."
kring() { cargo run --quiet --release -- "$@"; }
pki=config/pki
if [ ! -f "$pki/ca.crt" ]; then
  kring pki init --dir "$pki"
fi
issue() { # key organisation oin
  if [ ! -f "$pki/$1/node.crt" ]; then
    kring pki issue --dir "$pki" --out "$pki/$1" --organisation "$2" --oin "$3"
  fi
  if [ ! -f "$pki/$1/data-1.key" ]; then
    kring store new-key --out "$pki/$1/data-1.key"
  fi
}
issue school "Basisschool De Regenboog" 00000001820000001000
issue ggd "GGD Gelderland-Zuid, jeugdgezondheidszorg" 00000001820000002000
issue reclassering "Reclassering Nederland, unit Arnhem" 00000001820000003000
issue veilig-thuis "Veilig Thuis Gelderland-Midden" 00000001820000004000
cat <<'TOKENS'
Example bearer tokens (their hashes are in config/*.toml):
  school:        kring_example_school-signaler        kring_example_school-privacy
  ggd:           kring_example_ggd-signaler           kring_example_ggd-privacy
  reclassering:  kring_example_reclassering-signaler  kring_example_reclassering-privacy
  veilig thuis:  kring_example_vt-signaler  kring_example_vt-analyst  kring_example_vt-privacy
Start a node:   cargo run --release -- node --config config/school.toml
TOKENS

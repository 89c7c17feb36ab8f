# Sourced by scripts/test.sh and scripts/demo.sh: what building the gateway needs on a fresh
# Debian machine (Pingora's C dependencies want cmake and a C compiler), installed if missing.

log() { printf '\n== %s\n' "$*"; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

apt_updated=""
apt_install() {
  if [ -z "$apt_updated" ]; then as_root apt-get update -qq; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >/dev/null
}

ensure_build_tools() {
  local missing=()
  command -v cmake >/dev/null || missing+=(cmake)
  command -v cc >/dev/null || missing+=(build-essential)
  command -v pkg-config >/dev/null || missing+=(pkg-config)
  if ((${#missing[@]})); then apt_install "${missing[@]}"; fi
  command -v cargo >/dev/null || { echo "cargo is required (https://rustup.rs)"; exit 1; }
}

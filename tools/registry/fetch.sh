#!/usr/bin/env bash
# The registry the tests run: Debian's docker-registry (distribution 2.8.2),
# unpacked under target/registry, never installed (the package would start a
# registry service listening on every interface). Also makes sure htpasswd
# (apache2-utils) and openssl are there for the auth and TLS tests.
# Idempotent: does nothing when everything is in place.
set -euo pipefail
cd "$(dirname "$0")/../.."
dest=target/registry
bin=$dest/bin/docker-registry

apt_install() {
  # Only as root (CI); elsewhere say what is missing.
  if [ "$(id -u)" != 0 ]; then
    echo "registry/fetch.sh: $1 not found; install the Debian package(s): ${*:2}" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq --no-install-recommends "${@:2}" >/dev/null ||
    { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${@:2}" >/dev/null; }
}

command -v htpasswd >/dev/null 2>&1 || apt_install htpasswd apache2-utils
command -v openssl >/dev/null 2>&1 || apt_install openssl openssl

if [ -x "$bin" ] && "$bin" --version >/dev/null 2>&1; then
  exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# apt-get download writes into the current directory; a fresh machine may
# have no package lists yet, so update only when the download fails.
if ! (cd "$work" && apt-get download -qq docker-registry >/dev/null 2>&1); then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq
  fi
  (cd "$work" && apt-get download -qq docker-registry)
fi
deb=$(ls "$work"/docker-registry_*.deb)
dpkg-deb -x "$deb" "$work/root"
mkdir -p "$dest/bin"
# Copy then rename so an interrupted run never leaves a half binary.
cp "$work/root/usr/bin/docker-registry" "$bin.tmp"
chmod 0755 "$bin.tmp"
mv "$bin.tmp" "$bin"
"$bin" --version

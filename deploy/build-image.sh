#!/usr/bin/env bash
# Build the s2s-bridge container image (deploy/Dockerfile) from the repository root.
#
#   deploy/build-image.sh [--tag NAME] [--ca-bundle FILE] [--pip-conf FILE]
#
# Builder: Docker when an engine answers (`docker info`), else buildah (chroot isolation, the
# storage driver of STORAGE_DRIVER or buildah's own choice). Base: PYTHON_IMAGE
# (default python:3.11-slim-bookworm) when it is present or can be pulled within PULL_TIMEOUT_S
# seconds, else an equivalent Debian base made with debootstrap (python3 3.11, venv, pip,
# ca-certificates) from DEBIAN_MIRROR, cached as a tarball and imported as a local image.
# A CA bundle and a pip configuration reach pip and apt during the build as build secrets, never
# the image. Prints the image, its id, size and the build time at the end (also as one line
# `image: name=... id=... size=... seconds=... builder=... storage=... base=...`).
#
# Options (and the environment they can come from):
#   --tag NAME         image name (S2S_IMAGE; default s2s-bridge:<version in pyproject.toml>)
#   --ca-bundle FILE   CA bundle for the build (S2S_IMAGE_CA_BUNDLE; default PIP_CERT, else the
#                      `cert` of the pip configuration)
#   --pip-conf FILE    pip configuration for the build (PIP_CONFIG_FILE; default /etc/pip.conf
#                      when it exists)
#   --no-pip-conf      build without the host's pip configuration
# Environment:
#   IMAGE_BUILDER=docker|buildah     skip the detection
#   PYTHON_IMAGE, PULL_TIMEOUT_S (default 30)
#   DEBIAN_SUITE (default bookworm), DEBIAN_MIRROR (default http://deb.debian.org/debian),
#   DEBIAN_SECURITY_MIRROR (default http://deb.debian.org/debian-security; empty: no security suite)
#   S2S_IMAGE_CACHE (default ~/.cache/s2s-bridge/image-base): the debootstrapped base tarballs
#   STORAGE_DRIVER (default: buildah's storage.conf, else overlay where it works, else vfs),
#   BUILDAH_ISOLATION (default chroot)
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'build-image: %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 2; }
usage() { sed -n '2,29s/^# \{0,1\}//p' "$0"; exit "${1:-0}"; }

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' pyproject.toml | head -n1)
tag="${S2S_IMAGE:-s2s-bridge:$version}"
ca_bundle="${S2S_IMAGE_CA_BUNDLE:-${PIP_CERT:-}}"
pip_conf="${PIP_CONFIG_FILE:-}"
[[ -z "$pip_conf" && -f /etc/pip.conf ]] && pip_conf=/etc/pip.conf

while [[ $# -gt 0 ]]; do
  case "$1" in
    -h|--help) usage ;;
    --tag) [[ $# -ge 2 ]] || die "--tag needs a value"; tag="$2"; shift 2 ;;
    --ca-bundle) [[ $# -ge 2 ]] || die "--ca-bundle needs a file"; ca_bundle="$2"; shift 2 ;;
    --pip-conf) [[ $# -ge 2 ]] || die "--pip-conf needs a file"; pip_conf="$2"; shift 2 ;;
    --no-pip-conf) pip_conf=""; shift ;;
    *) printf 'error: unknown argument %q\n' "$1" >&2; usage 2 >&2 ;;
  esac
done

if [[ -n "$pip_conf" ]]; then
  [[ -r "$pip_conf" ]] || die "--pip-conf: cannot read $pip_conf"
  if [[ -z "$ca_bundle" ]]; then
    # the CA the host's pip trusts is the one the build's pip needs (a TLS-inspecting proxy)
    ca_bundle=$(sed -n 's/^[[:space:]]*cert[[:space:]]*=[[:space:]]*//p' "$pip_conf" | tail -n1)
  fi
fi
[[ -z "$ca_bundle" || -r "$ca_bundle" ]] || die "--ca-bundle: cannot read $ca_bundle"

python_image="${PYTHON_IMAGE:-python:3.11-slim-bookworm}"
pull_timeout="${PULL_TIMEOUT_S:-30}"
suite="${DEBIAN_SUITE:-bookworm}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
security_mirror="${DEBIAN_SECURITY_MIRROR-http://deb.debian.org/debian-security}"
cache="${S2S_IMAGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/s2s-bridge/image-base}"
# what the official python image has that the bridge needs: python3 (bookworm's is 3.11), venv
# (ensurepip), pip, the CA store; python-is-python3 for the Dockerfile's `python`
base_packages="python3,python3-venv,python3-pip,python-is-python3,ca-certificates"

# --------------------------------------------------------------------------- the builder

builder="${IMAGE_BUILDER:-}"
if [[ -z "$builder" ]]; then
  if command -v docker >/dev/null && timeout 20 docker info >/dev/null 2>&1; then
    builder=docker
  elif command -v buildah >/dev/null; then
    builder=buildah
  else
    die "no image builder: no Docker engine answers (docker info) and buildah is not installed (apt-get install buildah debootstrap)"
  fi
fi
storage="-"
buildah_opts=()
case "$builder" in
  docker) ;;
  buildah)
    command -v buildah >/dev/null || die "IMAGE_BUILDER=buildah but buildah is not installed"
    export BUILDAH_ISOLATION="${BUILDAH_ISOLATION:-chroot}"  # no runc/user namespaces needed
    # buildah 1.28 ignores STORAGE_DRIVER (it reads storage.conf, else picks overlay where the
    # kernel allows it, else vfs): pass it on as the flag
    [[ -n "${STORAGE_DRIVER:-}" ]] && buildah_opts=(--storage-driver "$STORAGE_DRIVER")
    storage=$(buildah "${buildah_opts[@]}" info --format '{{.store.GraphDriverName}}')
    ;;
  *) die "IMAGE_BUILDER must be docker or buildah, not $builder" ;;
esac
bah() { buildah "${buildah_opts[@]}" "$@"; }

have_image() {
  if [[ "$builder" == docker ]]; then docker image inspect "$1" >/dev/null 2>&1
  else bah inspect --type image "$1" >/dev/null 2>&1; fi
}

pull() {
  if [[ "$builder" == docker ]]; then timeout "$pull_timeout" docker pull -q "$1" >/dev/null
  else timeout "$pull_timeout" buildah "${buildah_opts[@]}" pull -q "$1" >/dev/null; fi  # (timeout runs programs, not the bah function)
}

# --------------------------------------------------------------------------- the base

# The Debian base: debootstrap's minimal system plus the packages above, with the security and
# updates suites applied, as a tarball in the cache (re-used until the recipe changes: delete it
# to pick up newer packages) and imported as localhost/s2s-bridge-base:<suite>-<hash>.
debian_base() {
  local key name tarball root
  key=$(printf '%s\n' "$suite" "$base_packages" "$security_mirror" recipe-1 | sha256sum | cut -c1-12)
  name="localhost/s2s-bridge-base:$suite-$key"
  tarball="$cache/$suite-$key.tar"
  if have_image "$name"; then
    echo "$name"; return
  fi
  if [[ ! -f "$tarball" ]]; then
    command -v debootstrap >/dev/null || die "no registry answers for $python_image and debootstrap is not installed to make a base from $mirror (apt-get install debootstrap)"
    [[ $EUID -eq 0 ]] || die "debootstrap needs root to make the base (or pull $python_image / set PYTHON_IMAGE to a base you have)"
    say "no registry answers for $python_image: making a $suite base with debootstrap from $mirror (once; cached in $cache)"
    local started=$SECONDS
    root=$(mktemp -d)
    # shellcheck disable=SC2064  # expand $root now: the trap outlives this function's locals
    trap "rm -rf '$root'" EXIT
    debootstrap --variant=minbase --include="$base_packages" "$suite" "$root" "$mirror" >&2 \
      || die "debootstrap $suite from $mirror failed (above); set DEBIAN_MIRROR to a reachable mirror"
    {
      echo "deb $mirror $suite main"
      echo "deb $mirror $suite-updates main"
      [[ -n "$security_mirror" ]] && echo "deb $security_mirror $suite-security main"
    } >"$root/etc/apt/sources.list"
    chroot "$root" sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get -y -qq upgrade' >&2 \
      || die "updating the $suite base failed (above); DEBIAN_SECURITY_MIRROR= skips the security suite"
    rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb \
      "$root"/var/log/*.log "$root"/etc/resolv.conf
    mkdir -p "$cache"
    tar --numeric-owner -C "$root" -cf "$tarball.part" . && mv "$tarball.part" "$tarball"
    rm -rf "$root"; trap - EXIT
    say "debootstrap base made in $((SECONDS - started)) s: $tarball ($(du -m "$tarball" | cut -f1) MB)"
  fi
  say "importing $tarball as $name"
  if [[ "$builder" == docker ]]; then
    docker import --change 'CMD ["python3"]' "$tarball" "$name" >/dev/null
  else
    local ctr
    ctr=$(bah from scratch)
    bah add --quiet "$ctr" "$tarball" / >/dev/null
    bah config --cmd python3 --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$ctr"
    bah commit --quiet --rm "$ctr" "$name" >/dev/null
  fi
  echo "$name"
}

if have_image "$python_image" || pull "$python_image"; then
  base="$python_image"
else
  base=$(debian_base)
fi
say "base: $base; builder: $builder${storage:+ (storage $storage)}"

# --------------------------------------------------------------------------- the build

# the secrets are always passed (empty when unset) so that the Dockerfile's mounts never miss
empty=$(mktemp)
trap 'rm -f "$empty"' EXIT
secrets=(--secret "id=ca_bundle,src=${ca_bundle:-$empty}" --secret "id=pip_conf,src=${pip_conf:-$empty}")
started=$SECONDS
if [[ "$builder" == docker ]]; then
  DOCKER_BUILDKIT=1 docker build -f deploy/Dockerfile --build-arg "PYTHON_IMAGE=$base" "${secrets[@]}" -t "$tag" .
  id=$(docker image inspect -f '{{.Id}}' "$tag")
  size="$(($(docker image inspect -f '{{.Size}}' "$tag") / 1000000))MB"
else
  # buildah 1.28 reads <Dockerfile>.dockerignore as BuildKit does; named all the same, for older ones
  previous=$(bah inspect --type image --format '{{.FromImageID}}' "$tag" 2>/dev/null || true)
  bah bud --layers=false -f deploy/Dockerfile --ignorefile deploy/Dockerfile.dockerignore \
    --build-arg "PYTHON_IMAGE=$base" "${secrets[@]}" -t "$tag" .
  id=$(bah inspect --type image --format '{{.FromImageID}}' "$tag")
  # the tag moved: drop the image it named (buildah keeps it, unnamed, otherwise; one per build)
  if [[ -n "$previous" && "$previous" != "$id" ]]; then bah rmi "$previous" >/dev/null 2>&1 || true; fi
  size=$(bah images --format '{{.Size}}' "$tag" | head -n1 | tr -d ' ')
fi
seconds=$((SECONDS - started))
say "built $tag: id ${id:0:12}, $size, in $seconds s"
echo "image: name=$tag id=$id size=$size seconds=$seconds builder=$builder storage=$storage base=$base"

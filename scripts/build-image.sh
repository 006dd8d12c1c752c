#!/usr/bin/env bash
# Builds the image healthd:local from the static binary (scripts/build-static.sh), with nothing
# pulled: the final stage of Dockerfile.distroless (user 65532, /run/healthd owned by it, ENV,
# EXPOSE, HEALTHCHECK, ENTRYPOINT), with only the base swapped (BASE_IMAGE, default scratch) and the
# binary taken from a local image instead of the builder stage (HEALTHD_FROM). One Dockerfile serves
# both this and the users' default `docker build -f Dockerfile.distroless .`.
#
# The binary image is made FROM scratch with `docker import` of a tar that this script writes: it
# holds /out/healthd (root, 0555), /out/run (root) and /out/run/healthd (65532:65532, 0755), exactly
# what the builder stage leaves in /out. A tar carries owners, which a build context cannot.
#
# Environment:
#   HEALTHD_IMAGE         the tag to build (default healthd:local)
#   BASE_IMAGE            the final stage's base (default scratch; the Dockerfile's default is
#                         gcr.io/distroless/static-debian12:nonroot)
#   HEALTHD_BINARY_IMAGE  keep the binary image under this tag (the caller removes it); without it
#                         the binary image is removed after the build
#   HEALTHD_IMAGE_LABEL   a label (key=value) put on every image built here (the container suite
#                         marks what it created)
#   DOCKER                the docker client (default /usr/bin/docker from docker.io when present:
#                         it speaks the engine's API and builds with the engine's BuildKit)
# Prints the image's tag as the LAST line on stdout (everything else goes to stderr).
set -euo pipefail
cd "$(dirname "$0")/.."

tag=${HEALTHD_IMAGE:-healthd:local}
base=${BASE_IMAGE:-scratch}
label=${HEALTHD_IMAGE_LABEL:-}

say() { printf 'build-image: %s\n' "$*" >&2; }
die() {
  printf 'build-image: FAILED: %s\n' "$*" >&2
  exit 1
}

if [ -z "${DOCKER:-}" ]; then
  if [ -x /usr/bin/docker ]; then DOCKER=/usr/bin/docker; else DOCKER=$(command -v docker || true); fi
fi
[ -n "$DOCKER" ] || die "no docker client (install docker.io)"
api=$("$DOCKER" version --format '{{.Server.APIVersion}}' 2>&1) ||
  die "no Docker engine answers $DOCKER: $api"

bin=$(bash scripts/build-static.sh | tail -n1)
[ -x "$bin" ] || die "scripts/build-static.sh printed no binary path"

work=$(mktemp -d)
binary_image=${HEALTHD_BINARY_IMAGE:-healthd-binary:build-$$}
keep_binary=${HEALTHD_BINARY_IMAGE:+yes}
cleanup() {
  [ -n "$keep_binary" ] || "$DOCKER" rmi "$binary_image" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

# /out as the builder stage leaves it (Dockerfile.distroless: install -m 0555 / install -d -o 65532).
mkdir -p "$work/out/run/healthd"
install -m 0555 "$bin" "$work/out/healthd"
chmod 0755 "$work/out" "$work/out/run" "$work/out/run/healthd"
tar_opts=(--numeric-owner --no-recursion --mtime=@0 -C "$work")
tar "${tar_opts[@]}" --owner=0 --group=0 -cf "$work/binary.tar" out out/healthd out/run
tar "${tar_opts[@]}" --owner=65532 --group=65532 -rf "$work/binary.tar" out/run/healthd

import_change=()
[ -z "$label" ] || import_change=(--change "LABEL $label")
"$DOCKER" import "${import_change[@]}" "$work/binary.tar" "$binary_image" >/dev/null ||
  die "docker import of the binary image failed"
say "binary image $binary_image from $bin"

build_label=()
[ -z "$label" ] || build_label=(--label "$label")
say "docker build -f Dockerfile.distroless --build-arg BASE_IMAGE=$base --build-arg HEALTHD_FROM=$binary_image -t $tag ."
# --pull=false: a base (scratch, or a local stand-in) is never fetched; BuildKit builds only the
# stages the final one needs, so the builder stage (rust image) is not used.
DOCKER_BUILDKIT=1 "$DOCKER" build --pull=false -q -f Dockerfile.distroless \
  --build-arg "BASE_IMAGE=$base" --build-arg "HEALTHD_FROM=$binary_image" \
  "${build_label[@]}" -t "$tag" . >&2 || die "docker build failed"

say "ok: $tag ($("$DOCKER" image inspect -f '{{.Size}}' "$tag") bytes, base $base, engine API $api)"
echo "$tag"

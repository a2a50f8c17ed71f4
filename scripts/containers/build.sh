#!/usr/bin/env bash
# Container test tier, step 2: build docker/Dockerfile on the local Node base (setup.sh) into
# dcache:$DCACHE_TAG, the image docker-compose.yml runs.
#
#   bash scripts/containers/build.sh              # from the working tree
#   bash scripts/containers/build.sh --from-head  # from the last commit (git archive HEAD)
#
# See docs/deployment.md, "Container test tier".
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"

context=$root
case "${1:-}" in
--from-head)
  context=$(mktemp -d)
  trap 'rm -rf "$context"' EXIT
  git -C "$root" archive HEAD | tar -x -C "$context"
  ;;
"") ;;
*) die "unknown option $1 (--from-head)" ;;
esac

podman image exists "$DC_NODE_IMAGE" || die "no $DC_NODE_IMAGE: run scripts/containers/setup.sh first"

# The host's npm cache as an overlay (:O): the build's npm ci finds the packages there, and
# what the build writes (the runtime stage's `npm cache clean`) never reaches the host's.
cache_mount=()
npm_cache=$(npm config get cache 2>/dev/null || true)
if [ -n "$npm_cache" ] && [ -d "$npm_cache" ]; then
  cache_mount=(--volume "$npm_cache:/root/.npm:O")
fi

t0=$(date +%s)
say "podman build docker/Dockerfile (NODE_IMAGE=$DC_NODE_IMAGE) -> dcache:$DCACHE_TAG"
log=$(mktemp)
rc=0
podman build --pull=never --layers \
  --file "$context/docker/Dockerfile" \
  --build-arg "NODE_IMAGE=$DC_NODE_IMAGE" \
  --build-arg "REVISION=$(git -C "$root" rev-parse HEAD)" \
  --build-arg "CREATED=$(git -C "$root" log -1 --format=%cI)" \
  "${cache_mount[@]}" \
  --tag "localhost/dcache:$DCACHE_TAG" \
  "$context" >"$log" 2>&1 || rc=$?
grep -E 'STEP [0-9]+/[0-9]+: (FROM|RUN)|^COMMIT' "$log" | cut -c1-110 || true
if [ "$rc" -ne 0 ]; then
  tail -40 "$log" >&2
  die "podman build failed (exit $rc); full log: $log"
fi
rm -f "$log"
say "dcache:$DCACHE_TAG built in $(($(date +%s) - t0))s"

#!/usr/bin/env bash
# Container test tier, step 1 (idempotent): Debian's podman and mmdebstrap, podman's
# Docker-compatible socket, and local base images built from Debian packages (no registry).
#
#   bash scripts/containers/setup.sh            # install what is missing, build missing images
#   bash scripts/containers/setup.sh --rebuild  # build the base images again
#   bash scripts/containers/setup.sh --check    # exit 3 when podman is neither present nor installable
#
# Then: export DOCKER_HOST=unix:///run/podman/podman.sock  (docker-compose, testcontainers).
# See docs/deployment.md, "Container test tier".
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"

rebuild=0
case "${1:-}" in
--rebuild) rebuild=1 ;;
--check)
  # Root (rootful podman), and podman present or installable with apt-get.
  can_root || exit 3
  command -v podman >/dev/null && command -v mmdebstrap >/dev/null && exit 0
  command -v apt-cache >/dev/null && apt-cache show podman mmdebstrap >/dev/null 2>&1 && exit 0
  exit 3
  ;;
"") ;;
*) die "unknown option $1 (--rebuild, --check)" ;;
esac
as_root "$@"

# ---- packages ---------------------------------------------------------------------------
# podman 4.3 (bookworm) rootful with netavark + aardvark-dns (bridge networks with name
# resolution between containers), runc (crun refuses this host's hybrid cgroups), iptables
# (netavark's firewall), catatonit (`init: true`), fuse-overlayfs/uidmap/slirp4netns as
# podman expects them; mmdebstrap builds the base roots.
need=()
for p in podman mmdebstrap runc netavark aardvark-dns catatonit fuse-overlayfs uidmap \
  slirp4netns iptables curl; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  say "apt-get install ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${need[@]}" >/dev/null
else
  say "podman $(podman --version | awk '{print $3}'), mmdebstrap present"
fi

# ---- /etc/containers/containers.conf -------------------------------------------------------
# default_ulimits = []: podman's default RLIMIT_NOFILE is refused by runc here.
# runtime = "runc": crun fails on cgroup v1/v2 hybrid hosts ("cgroups in hybrid mode").
conf=/etc/containers/containers.conf
mkdir -p /etc/containers
[ -f "$conf" ] || touch "$conf"
# Set KEY = VALUE under [SECTION]: replace the key if present, else add it (and the section).
set_conf() {
  local section=$1 key=$2 value=$3 tmp
  tmp=$(mktemp)
  awk -v s="[$section]" -v k="$key" -v v="$value" '
    function emit() { print k " = " v; done = 1 }
    skip { if ($0 ~ /\]/) skip = 0; next }
    /^\[/ { if (in_s && !done) emit(); in_s = ($0 == s); print; next }
    in_s && $0 ~ "^[ \t]*" k "[ \t]*=" {
      if (!done) emit()
      # an array value continued on the next lines: drop them up to its "]"
      if ($0 ~ /=[ \t]*\[/ && $0 !~ /\]/) skip = 1
      next
    }
    { print }
    END { if (!done) { if (!in_s) print "\n" s; emit() } }
  ' "$conf" >"$tmp"
  if ! cmp -s "$tmp" "$conf"; then
    say "$conf: [$section] $key = $value"
    cp "$tmp" "$conf"
  fi
  rm -f "$tmp"
}
set_conf containers default_ulimits '[]'
set_conf engine runtime '"runc"'

# ---- podman's Docker-compatible socket ----------------------------------------------------
if socket_up; then
  say "podman socket answers at $DC_PODMAN_SOCKET"
else
  mkdir -p "$(dirname "$DC_PODMAN_SOCKET")" "$DC_CONTAINERS_CACHE"
  say "starting podman system service on unix://$DC_PODMAN_SOCKET"
  # Detached from this shell (its own session, no inherited output) so that CI's shell can
  # exit; run.sh stops it again when it started it (pid file).
  setsid podman system service --time=0 "unix://$DC_PODMAN_SOCKET" \
    </dev/null >"$DC_CONTAINERS_CACHE/podman-service.log" 2>&1 &
  echo $! >"$DC_CONTAINERS_CACHE/podman-service.pid"
  for _ in $(seq 1 150); do
    socket_up && break
    sleep 0.2
  done
  socket_up || die "podman system service did not answer on $DC_PODMAN_SOCKET (log: $DC_CONTAINERS_CACHE/podman-service.log)"
fi

# ---- base images ----------------------------------------------------------------------------
have() { [ "$rebuild" = 0 ] && podman image exists "$1"; }

# An mmdebstrap root as an image; .debs are kept in $DC_CONTAINERS_CACHE/debs between runs.
# Docs, man pages and translations are left out, and libjs-moment-timezone's 214 MB of zone
# files (Prometheus' web UI depends on it; the tier uses its API); dpkg skips fsync (a
# throwaway root).
debootstrap_image() {
  local image=$1 variant=$2 include=$3 t0 work
  t0=$(date +%s)
  work=$(mktemp -d)
  mkdir -p "$DC_CONTAINERS_CACHE/debs"
  say "mmdebstrap --variant=$variant $DC_DEBIAN_SUITE + $include -> $image"
  mmdebstrap --quiet --variant="$variant" --include="$include" \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/info/*' \
    --dpkgopt='path-exclude=/usr/share/javascript/moment-timezone/*' \
    --dpkgopt=force-unsafe-io \
    --skip=download/empty --skip=essential/unlink \
    --setup-hook='mkdir -p "$1"/var/cache/apt/archives/' \
    --setup-hook="sync-in $DC_CONTAINERS_CACHE/debs /var/cache/apt/archives/" \
    --customize-hook="sync-out /var/cache/apt/archives $DC_CONTAINERS_CACHE/debs" \
    --customize-hook='rm -f "$1"/var/cache/apt/archives/*.deb' \
    "$DC_DEBIAN_SUITE" "$work/root.tar"
  podman import --quiet --change 'CMD ["/bin/bash"]' "$work/root.tar" "$image" >/dev/null
  rm -rf "$work"
  say "$image built in $(($(date +%s) - t0))s ($(podman image inspect -f '{{.Size}}' "$image" | awk '{printf "%d MB", $1/1e6}'))"
}

# Build IMAGE from a Containerfile given on stdin, with context directory $2.
containerfile_image() {
  local image=$1 context=$2
  podman build --quiet --pull=never -t "$image" -f - "$context" >/dev/null
}

# One root for every image of the tier: one apt-get update and one essential set to download
# and unpack instead of four (the first run, in CI, pays for it), and the images share its
# layer. Only what they run: the three servers, wget (nginx's healthcheck), and for Node its
# C++ runtime, CA certificates and tini (docker/Dockerfile installs tini only when missing).
need_root=0
for image in "$REDIS_IMAGE" "$NGINX_IMAGE" "$PROMETHEUS_IMAGE" "$DC_NODE_IMAGE"; do
  have "$image" || need_root=1
done
if [ "$need_root" = 0 ]; then
  :
elif have "$DC_ROOT_IMAGE"; then
  say "$DC_ROOT_IMAGE present"
else
  debootstrap_image "$DC_ROOT_IMAGE" essential \
    redis-server,nginx-light,prometheus,wget,libstdc++6,ca-certificates,tini
fi
# Per-role images: the root with the entrypoint the upstream image has (no new layer).
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
if ! have "$REDIS_IMAGE"; then
  printf 'FROM %s\nWORKDIR /data\nCMD ["redis-server"]\n' "$DC_ROOT_IMAGE" |
    containerfile_image "$REDIS_IMAGE" "$ctx"
fi
if ! have "$NGINX_IMAGE"; then
  printf 'FROM %s\nSTOPSIGNAL SIGQUIT\nCMD ["nginx", "-g", "daemon off;"]\n' \
    "$DC_ROOT_IMAGE" | containerfile_image "$NGINX_IMAGE" "$ctx"
fi
if ! have "$PROMETHEUS_IMAGE"; then
  printf '%s\n' "FROM $DC_ROOT_IMAGE" 'WORKDIR /prometheus' \
    'ENTRYPOINT ["/usr/bin/prometheus"]' \
    'CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]' |
    containerfile_image "$PROMETHEUS_IMAGE" "$ctx"
fi
say "$REDIS_IMAGE, $NGINX_IMAGE, $PROMETHEUS_IMAGE ready"

if have "$DC_NODE_IMAGE"; then
  say "$DC_NODE_IMAGE present"
else
  # This machine's Node and npm on the Debian root, laid out as the official image does
  # (/usr/local, user node uid 1000). The host's CA bundle goes in as npm's cafile (a
  # test-only image): the build's npm ci then trusts what the host trusts, e.g. a
  # TLS-intercepting proxy in front of the registry.
  node_bin=$(readlink -f "$(command -v node)")
  npm_dir=$(cd "$(dirname "$(readlink -f "$(command -v npm)")")/.." && pwd)
  ldd "$node_bin" | grep -q 'not found' && die "$node_bin needs a library this host lacks"
  cp "$node_bin" "$ctx/node"
  cp -a "$npm_dir" "$ctx/npm"
  cp /etc/ssl/certs/ca-certificates.crt "$ctx/host-ca.crt"
  say "Node base: $node_bin ($(node --version)), npm $(npm --version) -> $DC_NODE_IMAGE"
  printf '%s\n' "FROM $DC_ROOT_IMAGE" \
    'COPY node /usr/local/bin/node' \
    'COPY npm /usr/local/lib/node_modules/npm' \
    'COPY host-ca.crt /usr/local/share/dcache-test/host-ca.crt' \
    'RUN ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \
      && ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx \
      && mkdir -p /usr/local/etc \
      && echo cafile=/usr/local/share/dcache-test/host-ca.crt > /usr/local/etc/npmrc \
      && echo "node:x:1000:1000::/home/node:/bin/sh" >> /etc/passwd \
      && echo "node:x:1000:" >> /etc/group \
      && mkdir -p /home/node && chown 1000:1000 /home/node \
      && node --version && npm --version' \
    'ENV NODE_EXTRA_CA_CERTS=/usr/local/share/dcache-test/host-ca.crt' \
    'CMD ["node"]' | containerfile_image "$DC_NODE_IMAGE" "$ctx"
fi
say "setup done; export DOCKER_HOST=$DOCKER_HOST"

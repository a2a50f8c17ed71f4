# Shared settings of the container test tier (sourced by setup.sh, build.sh and run.sh).
# Every name can be overridden from the environment.

# Podman's Docker-compatible socket: docker-compose 1.29 and testcontainers talk to it.
DC_PODMAN_SOCKET=${DC_PODMAN_SOCKET:-/run/podman/podman.sock}
export DOCKER_HOST=${DOCKER_HOST:-unix://$DC_PODMAN_SOCKET}
# Where the tier keeps what survives between runs: downloaded .debs, the service's pid.
DC_CONTAINERS_CACHE=${DC_CONTAINERS_CACHE:-/var/cache/dcache-containers}
# Local base images, built from Debian packages (nothing is pulled from a registry).
DC_DEBIAN_SUITE=${DC_DEBIAN_SUITE:-bookworm}
DC_ROOT_IMAGE=${DC_ROOT_IMAGE:-localhost/dcache-test/root:$DC_DEBIAN_SUITE}
export REDIS_IMAGE=${REDIS_IMAGE:-localhost/dcache-test/redis:$DC_DEBIAN_SUITE}
export NGINX_IMAGE=${NGINX_IMAGE:-localhost/dcache-test/nginx:$DC_DEBIAN_SUITE}
export PROMETHEUS_IMAGE=${PROMETHEUS_IMAGE:-localhost/dcache-test/prometheus:$DC_DEBIAN_SUITE}
# The Node base carries this machine's Node, so its tag is that Node's version.
DC_NODE_IMAGE=${DC_NODE_IMAGE:-localhost/dcache-test/node:$(node --version 2>/dev/null | tr -d v)-$DC_DEBIAN_SUITE}
# The project's image as docker-compose.yml names it: dcache:${DCACHE_TAG}.
export DCACHE_TAG=${DCACHE_TAG:-containers-test}

_dc_t0=${_dc_t0:-$(date +%s)}
export _dc_t0
# Progress line with the seconds since the tier started.
say() { printf '[containers %4ss] %s\n' "$(($(date +%s) - _dc_t0))" "$*"; }
die() {
  printf '[containers] ERROR: %s\n' "$*" >&2
  exit 1
}
# True when the socket answers the Docker API's ping.
socket_up() { curl -fsS --max-time 2 --unix-socket "$DC_PODMAN_SOCKET" http://d/_ping >/dev/null 2>&1; }
# Rootful podman: the tier runs as root. can_root: root, or sudo without a password.
can_root() { [ "$(id -u)" -eq 0 ] || sudo -n true 2>/dev/null; }
# Re-run the calling script as root (keeping the environment) when it is not.
as_root() {
  [ "$(id -u)" -eq 0 ] && return 0
  can_root || die "needs root (rootful podman): run it as root or with sudo"
  exec sudo -E env "PATH=$PATH" bash "$0" "$@"
}

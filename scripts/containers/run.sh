#!/usr/bin/env bash
# The container test tier (`npm run test:containers`): podman + local Debian-built images,
# the project's image built from docker/Dockerfile, docker-compose.yml's profiles brought up
# through podman's Docker-compatible socket, then test/containers/*.containers.ts against it
# (the seed's curls, a proxy killed behind nginx, peer sync, Prometheus) and the fixture's
# testcontainers path. The stack is torn down whatever happens.
#
#   npm run test:containers                 # needs root (or sudo) and a Debian host
#   DC_CONTAINERS_KEEP=1 npm run test:containers   # leave the stack up to look at it
#
# See docs/deployment.md, "Container test tier".
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"
as_root "$@"
cd "$root"

service_pid_file="$DC_CONTAINERS_CACHE/podman-service.pid"
had_service=0
socket_up && had_service=1

bash "$here/setup.sh"
bash "$here/build.sh"

project=${DC_CONTAINERS_PROJECT:-dcache-ct}
work=$(mktemp -d)
chmod 700 "$work"
# Fresh secrets for this run only, in an env file of our own (a user's .env is not read).
secret() { node -e 'process.stdout.write(require("node:crypto").randomBytes(24).toString("hex"))'; }
admin_token=$(secret)
cat >"$work/env" <<EOF
DC_CACHE_PASSWORD=$(secret)
DC_ADMIN_TOKEN=$admin_token
DC_CLUSTER_TOKEN=$(secret)
GRAFANA_ADMIN_PASSWORD=$(secret)
REDIS_COMMANDER_PASSWORD=$(secret)
DCACHE_TAG=$DCACHE_TAG
REDIS_IMAGE=$REDIS_IMAGE
NGINX_IMAGE=$NGINX_IMAGE
PROMETHEUS_IMAGE=$PROMETHEUS_IMAGE
EOF
compose_args=(-p "$project" --env-file "$work/env" -f "$root/docker-compose.yml"
  --profile monitoring --profile cluster --profile loadbalancer)
compose() { docker-compose "${compose_args[@]}" "$@"; }
# Grafana and Redis Commander have no Debian package to build an image from.
services=(redis-1 redis-2 redis-3 cache-server cache-server-2 nginx prometheus)

health_pid=""
teardown() {
  local rc=$?
  trap - EXIT INT TERM
  [ -n "$health_pid" ] && kill "$health_pid" 2>/dev/null
  if [ "$rc" -ne 0 ]; then
    say "failed (exit $rc): the last log lines of each service"
    compose logs --no-color --tail 30 2>&1 | tail -200 || true
  fi
  if [ "${DC_CONTAINERS_KEEP:-0}" = 1 ]; then
    say "DC_CONTAINERS_KEEP=1: stack left up; down with: docker-compose ${compose_args[*]} down -v"
  else
    say "docker-compose down -v"
    compose down -v --remove-orphans --timeout 10 >/dev/null 2>&1 ||
      say "WARNING: docker-compose down failed; see: podman ps -a --filter label=com.docker.compose.project=$project"
    rm -rf "$work"
    # Stop the podman service when this run started it.
    if [ "$had_service" = 0 ] && [ -f "$service_pid_file" ]; then
      kill "$(cat "$service_pid_file")" 2>/dev/null || true
      rm -f "$service_pid_file"
    fi
  fi
  say "container tier $([ "$rc" -eq 0 ] && echo passed || echo FAILED) in $(($(date +%s) - _dc_t0))s"
  exit "$rc"
}
trap teardown EXIT
trap 'exit 130' INT TERM

for port in 80 8080 8082 9090; do
  if ss -Hltn "sport = :$port" 2>/dev/null | grep -q .; then
    die "port $port is in use on this host; docker-compose.yml publishes it (stop what listens there)"
  fi
done

say "docker-compose up: ${services[*]}"
say "left out of this run: grafana, redis-commander (no Debian package to build their images from)"
t_up=$(date +%s)
# A leftover of an interrupted run would keep its volumes (old ring state): start clean.
compose down -v --remove-orphans --timeout 5 >/dev/null 2>&1 || true
# Podman runs a container's HEALTHCHECK from systemd timers; without systemd (a CI
# container) nobody runs them and depends_on: service_healthy would wait forever. This loop
# runs them the way the timers would.
(
  while true; do
    for c in $(podman ps -q --filter "label=com.docker.compose.project=$project" 2>/dev/null); do
      podman healthcheck run "$c" >/dev/null 2>&1 || true
    done
    sleep 2
  done
) &
health_pid=$!
compose up -d --no-build "${services[@]}"
say "stack up in $(($(date +%s) - t_up))s"
compose ps

say "test/containers (seed curls, proxy killed behind nginx, peer sync, Prometheus)"
ct_args=$(node -e 'console.log(JSON.stringify(process.argv.slice(1)))' -- "${compose_args[@]}")
DC_CT_COMPOSE_ARGS=$ct_args DC_CT_ADMIN_TOKEN=$admin_token \
  npx vitest run --root test --config containers/vitest.config.ts

say "testcontainers path of @dcache/test-utils over the same socket"
DC_REQUIRE_DOCKER=1 TESTCONTAINERS_RYUK_DISABLED=true DC_TEST_REDIS_IMAGE=$REDIS_IMAGE \
  npx vitest run --root packages/test-utils test/redis-server.test.ts -t 'testcontainers'

#!/usr/bin/env bash
# Static checks of the deployment files: docker-compose.yml (every profile), docker/nginx.conf,
# docker/prometheus*.yml, docker/grafana (provisioning + dashboards), docker/Dockerfile and
# deploy/kubernetes (schemas offline, the overlays rendered when kubectl/kustomize is there),
# and that compose opens no door (scripts/check-deploy-secrets.mjs: no published Redis or
# proxy port, no default credential, every secret required with ${VAR:?...}, no Prometheus
# lifecycle API). Needs no Docker engine. Prints each check; exits non-zero if any fails. A
# tool that is not installed is skipped visibly ("SKIP: <tool> not installed"), never silently.
#
#   bash scripts/check-deploy.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/sbin:/sbin"

failures=0
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

check() { printf '%-72s ' "$1"; }
ok() { echo "ok${1:+ ($1)}"; }
fail() {
  echo "FAIL"
  [ -n "${1:-}" ] && sed 's/^/    /' <<<"$1"
  failures=$((failures + 1))
}
skip() { echo "SKIP: $1"; }
# run "description" cmd args...: runs the command, prints ok or FAIL with its output.
run() {
  local what="$1"
  shift
  check "$what"
  local out
  if out="$("$@" 2>&1)"; then ok; else fail "$out"; fi
}

echo "== docker-compose.yml"
# Secrets, published ports, Prometheus flags, trusted proxy; .env.example lists every variable.
check "no open doors (scripts/check-deploy-secrets.mjs)"
if out="$(node scripts/check-deploy-secrets.mjs --env-example .env.example docker-compose.yml 2>&1)"; then
  ok "$out"
else
  fail "$out"
fi
check ".env is ignored by git"
if ! command -v git >/dev/null 2>&1 || ! git rev-parse --git-dir >/dev/null 2>&1; then
  skip "not a git checkout"
elif git check-ignore -q .env; then
  ok
else
  fail "add .env to .gitignore: it holds the compose secrets"
fi

compose=()
if command -v docker-compose >/dev/null 2>&1; then
  compose=(docker-compose)
elif command -v docker >/dev/null 2>&1 && docker compose version >/dev/null 2>&1; then
  compose=(docker compose)
fi
if [ ${#compose[@]} -eq 0 ]; then
  check "compose config"
  skip "docker-compose not installed"
else
  # Compose requires the secrets (${VAR:?...}). Without them it must refuse, pointing at
  # .env.example; the checks below then run with .env.example filled with stand-ins (never
  # the developer's .env, so the result does not depend on it).
  required="$(grep -Eo '^[A-Za-z_][A-Za-z0-9_]*=$' .env.example | tr -d '=' || true)"
  : >"$tmp/empty.env"
  check "config refuses to run without the secrets of .env.example"
  unset_args=()
  for v in $required; do unset_args+=(-u "$v"); done
  if out="$(env "${unset_args[@]}" "${compose[@]}" --env-file "$tmp/empty.env" \
    -f docker-compose.yml config -q 2>&1)"; then
    fail "compose accepted a run with none of: ${required//$'\n'/ }"
  elif grep -q '\.env\.example' <<<"$out"; then
    ok
  else
    fail "refused, but the message does not name .env.example:"$'\n'"$out"
  fi
  sed -E 's/^([A-Za-z_][A-Za-z0-9_]*)=$/\1=check-deploy-stand-in-\1/' .env.example >"$tmp/check.env"
  compose+=(--env-file "$tmp/check.env")
  run "config -q (default profile)" "${compose[@]}" -f docker-compose.yml config -q
  for p in monitoring cluster loadbalancer; do
    run "config -q --profile $p" "${compose[@]}" -f docker-compose.yml --profile "$p" config -q
  done
  run "config -q (all profiles)" "${compose[@]}" -f docker-compose.yml --profile monitoring \
    --profile cluster --profile loadbalancer config -q
  # Which services each profile starts (the seed's profiles must keep their meaning).
  # docker-compose 1.29's `config --services` ignores profiles, so read the resolved file.
  "${compose[@]}" -f docker-compose.yml config >"$tmp/compose.resolved.yml" 2>&1 || true
  expect_services() {
    local want="$1"
    shift
    local got
    if ! got="$(
      node --input-type=module - "$tmp/compose.resolved.yml" "$@" <<'EOF' 2>&1
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
const { parse } = createRequire(`${process.cwd()}/package.json`)('yaml');
const [file, ...active] = process.argv.slice(2);
const services = parse(readFileSync(file, 'utf8')).services;
const on = Object.entries(services)
  .filter(([, s]) => !s.profiles || s.profiles.some((p) => active.includes(p)))
  .map(([name]) => name)
  .sort();
console.log(on.join(' '));
EOF
    )"; then
      fail "$got"
      return
    fi
    if [ "$got" = "$want" ]; then ok; else fail "want: $want"$'\n'"got:  $got"; fi
  }
  check "services (default)"
  expect_services "cache-server redis-1 redis-2 redis-3"
  check "services --profile monitoring"
  expect_services "cache-server grafana prometheus redis-1 redis-2 redis-3 redis-commander" \
    monitoring
  check "services --profile cluster"
  expect_services "cache-server cache-server-2 redis-1 redis-2 redis-3" cluster
  check "services --profile loadbalancer"
  expect_services "cache-server cache-server-2 nginx redis-1 redis-2 redis-3" loadbalancer
  check "files mounted by compose exist"
  missing=""
  for f in docker/Dockerfile docker/nginx.conf docker/prometheus.yml docker/prometheus-rules.yml \
    docker/grafana/provisioning docker/grafana/dashboards; do
    [ -e "$f" ] || missing+="$f "
  done
  if [ -z "$missing" ]; then ok; else fail "missing: $missing"; fi
fi

echo "== docker/nginx.conf"
check "X-Forwarded-For overwritten with \$remote_addr (clients cannot spoof it)"
if grep -Eq '^\s*proxy_set_header\s+X-Forwarded-For\s+\$remote_addr;' docker/nginx.conf &&
  ! grep -q 'proxy_add_x_forwarded_for' docker/nginx.conf; then
  ok
else
  fail "want: proxy_set_header X-Forwarded-For \$remote_addr; (not \$proxy_add_x_forwarded_for)"
fi
check "/internal/ answers 404 at the load balancer"
if grep -A1 -E '^\s*location\s+/internal/\s*\{' docker/nginx.conf | grep -Eq '^\s*return\s+404\b'; then
  ok
else
  fail "location /internal/ { return 404 ...; } is missing"
fi
if ! command -v nginx >/dev/null 2>&1; then
  check "nginx -t"
  skip "nginx not installed"
else
  # 1. The loopback config the e2e tests run, rendered from the shipped file.
  check "render-nginx.mjs (127.0.0.1 upstreams)"
  if out="$(node docker/render-nginx.mjs --listen 18080 --upstream 127.0.0.1:18081 \
    --upstream 127.0.0.1:18082 --prefix "$tmp/nginx" 2>&1)"; then ok; else fail "$out"; fi
  run "nginx -t (rendered loopback config)" \
    nginx -t -q -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf"
  # 2. The shipped file byte for byte. nginx -t resolves upstream host names, so
  # cache-server and cache-server-2 must resolve: give them 127.0.0.1 in a private mount
  # namespace's /etc/hosts (root only; nothing outside this command sees it).
  check "nginx -t (shipped config, compose host names)"
  if [ "$(id -u)" -ne 0 ] || ! command -v unshare >/dev/null 2>&1; then
    skip "needs root and unshare to map compose host names (rendered copy checked above)"
  else
    {
      cat /etc/hosts
      echo "127.0.0.1 cache-server cache-server-2"
    } >"$tmp/hosts"
    mkdir -p "$tmp/nginx-shipped/logs"
    # shellcheck disable=SC2016
    if out="$(unshare -m sh -c 'mount --bind "$1" /etc/hosts && nginx -t -q -p "$2" -c "$3"' \
      sh "$tmp/hosts" "$tmp/nginx-shipped" "$PWD/docker/nginx.conf" 2>&1)"; then
      ok
    elif grep -qi "operation not permitted\|unshare failed\|mount:" <<<"$out"; then
      skip "mount namespace not permitted here (rendered copy checked above)"
    else
      fail "$out"
    fi
  fi
fi

echo "== docker/prometheus.yml and rules"
if ! command -v promtool >/dev/null 2>&1; then
  check "promtool"
  skip "promtool not installed"
else
  run "promtool check config docker/prometheus.yml" promtool check config docker/prometheus.yml
  run "promtool check rules docker/prometheus-rules.yml" \
    promtool check rules docker/prometheus-rules.yml
fi

echo "== docker/grafana"
check "dashboards: JSON, uid, datasource/job/instance variables, \$__rate_interval"
if out="$(
  node --input-type=module - "$tmp/exprs.yml" <<'EOF' 2>&1
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
const dir = 'docker/grafana/dashboards';
const files = readdirSync(dir);
const errors = [];
const rules = [];
const uids = new Set();
// What a bare Prometheus gets for Grafana's variables (promtool parses the result).
const substitute = (e) =>
  e.replace(/\$__rate_interval|\$\{__rate_interval\}/g, '1m').replace(/"\$\{?(job|instance)\}?"/g, '".*"');
if (files.length === 0) errors.push(`${dir} is empty`);
for (const f of files) {
  if (!f.endsWith('.json')) { errors.push(`${f}: only dashboard .json files belong in ${dir}`); continue; }
  let d;
  try { d = JSON.parse(readFileSync(`${dir}/${f}`, 'utf8')); } catch (e) { errors.push(`${f}: ${e.message}`); continue; }
  if (!d.uid || uids.has(d.uid)) errors.push(`${f}: missing or duplicate uid`);
  uids.add(d.uid);
  if (!d.title) errors.push(`${f}: no title`);
  // Works in any Grafana: the data source is chosen, job and instance are filters.
  const vars = new Map((d.templating?.list ?? []).map((v) => [v.name, v]));
  if (vars.get('datasource')?.type !== 'datasource' || vars.get('datasource')?.query !== 'prometheus') errors.push(`${f}: no "datasource" variable of type datasource (query prometheus)`);
  for (const name of ['job', 'instance']) {
    const v = vars.get(name);
    if (v?.type !== 'query' || v.datasource?.uid !== '${datasource}' || !v.includeAll) errors.push(`${f}: no "${name}" query variable (on \${datasource}, with All)`);
  }
  const panels = (d.panels ?? []).flatMap((p) => [p, ...(p.panels ?? [])]);
  const ids = new Set();
  for (const p of panels) {
    if (ids.has(p.id)) errors.push(`${f}: duplicate panel id ${p.id}`);
    ids.add(p.id);
    if (p.type === 'row') continue;
    if (!['timeseries', 'stat', 'gauge', 'table', 'bargauge', 'text', 'state-timeline'].includes(p.type)) errors.push(`${f}: panel "${p.title}" has unknown type ${p.type}`);
    if (p.datasource?.uid !== '${datasource}') errors.push(`${f}: panel "${p.title}" datasource uid is not "\${datasource}"`);
    if (!Array.isArray(p.targets) || p.targets.length === 0) errors.push(`${f}: panel "${p.title}" has no targets`);
    for (const t of p.targets ?? []) {
      if (typeof t.expr !== 'string' || t.expr.trim() === '') { errors.push(`${f}: panel "${p.title}" target ${t.refId} has no expr`); continue; }
      // rate()/irate() over the scrape-aware window: a fixed [1m] is empty at 60 s scrapes.
      // A fixed window of 5m or more is allowed for rare events (membership convergence).
      for (const m of t.expr.matchAll(/\b(?:rate|irate)\([^()]*\[([^\]]+)\]/g)) {
        const fixed = /^(\d+)([mh])$/.exec(m[1]);
        const longEnough = fixed && (fixed[2] === 'h' || Number(fixed[1]) >= 5);
        if (m[1] !== '$__rate_interval' && !longEnough) errors.push(`${f}: panel "${p.title}": rate over [${m[1]}], not [$__rate_interval] (or >= 5m for rare events)`);
      }
      // Every series selector follows the job and instance variables.
      for (const m of t.expr.matchAll(/\b((?:dcache|process|nodejs)_[a-z0-9_]+)(\{[^}]*\})?/g)) {
        if (!m[2]?.includes('job=~"$job"') || !m[2]?.includes('instance=~"$instance"')) errors.push(`${f}: panel "${p.title}": ${m[1]} without job=~"$job" and instance=~"$instance"`);
      }
      const bare = substitute(t.expr);
      if (bare.includes('$')) errors.push(`${f}: panel "${p.title}" uses an unknown variable: ${t.expr}`);
      rules.push({ record: `check:${rules.length}`, expr: bare });
    }
  }
}
// promtool check rules parses every expression; JSON is valid YAML.
writeFileSync(process.argv[2], JSON.stringify({ groups: [{ name: 'dashboard-exprs', rules }] }));
if (errors.length) { console.error(errors.join('\n')); process.exit(1); }
console.log(`${files.length} dashboard(s), ${rules.length} expressions`);
EOF
)"; then ok "$out"; else fail "$out"; fi
if command -v promtool >/dev/null 2>&1; then
  if [ -s "$tmp/exprs.yml" ]; then
    run "dashboards: every expr parses (promtool check rules)" promtool check rules "$tmp/exprs.yml"
  fi
else
  check "dashboards: every expr parses"
  skip "promtool not installed"
fi
check "provisioning: default Prometheus datasource, dashboards provider path"
if grep -q '^\s*isDefault: true' docker/grafana/provisioning/datasources/prometheus.yml &&
  grep -q 'path: /var/lib/grafana/dashboards' docker/grafana/provisioning/dashboards/dashboards.yml &&
  grep -q './docker/grafana/dashboards:/var/lib/grafana/dashboards' docker-compose.yml; then
  ok
else
  fail "default datasource, provider path and compose mount must agree"
fi

echo "== docker/Dockerfile"
df=docker/Dockerfile
lint() {
  local what="$1" pattern="$2"
  check "Dockerfile: $what"
  if grep -Eq "$pattern" "$df"; then ok; else fail "no line matches /$pattern/"; fi
}
check "Dockerfile: multi-stage (>= 2 FROM ... AS ...)"
n="$(grep -Ec '^FROM .+ AS [a-z]+' "$df" || true)"
if [ "$n" -ge 2 ]; then ok "$n stages"; else fail "found $n named stages"; fi
lint "based on a maintained Node LTS (NODE_IMAGE=node:22[.minor]-bookworm-slim)" '^ARG NODE_IMAGE=node:22(\.[0-9]+)*-bookworm-slim$'
lint "every stage FROM \${NODE_IMAGE} (a local base can be substituted)" '^FROM \$\{NODE_IMAGE\} AS runtime$'
lint "init as PID 1 (tini)" '^ENTRYPOINT \["tini", "--"\]$'
lint "tini from Debian when the base lacks it" 'apt-get install -y --no-install-recommends tini'
lint "dcache CLI on the PATH" '^RUN ln -s /app/packages/cli/dist/bin.js /usr/local/bin/dcache'
check "Dockerfile: the base's Node major satisfies package.json engines"
if out="$(
  node --input-type=module - <<'EOF' 2>&1
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
const semver = createRequire(`${process.cwd()}/package.json`)('semver');
const range = JSON.parse(readFileSync('package.json', 'utf8')).engines.node;
const m = readFileSync('docker/Dockerfile', 'utf8').match(/^ARG NODE_IMAGE=node:(\d+)/m);
if (!m) throw new Error('no ARG NODE_IMAGE=node:<major>');
if (!semver.satisfies(`${m[1]}.99.0`, range)) throw new Error(`node ${m[1]} is outside engines ${range}`);
console.log(`node ${m[1]} within ${range}`);
EOF
)"; then ok "$out"; else fail "$out"; fi
check "Dockerfile: OCI labels (title, description, version, revision, created, licenses)"
missing=""
for l in title version revision created licenses description; do
  grep -q "org.opencontainers.image.$l=" "$df" || missing+="$l "
done
if [ -z "$missing" ]; then ok; else fail "missing org.opencontainers.image.*: $missing"; fi
lint "listens on the container's interface (DC_SERVER_HOST=0.0.0.0)" '^\s*(ENV\s+)?DC_SERVER_HOST=0\.0\.0\.0'
lint "npm ci in the build stage" '^RUN npm ci( |$)'
lint "production-only install in the runtime stage" 'npm ci --omit=dev'
check "Dockerfile: last USER is not root"
user="$(grep -E '^USER ' "$df" | tail -1 | awk '{print $2}')"
if [ -n "$user" ] && [ "$user" != root ] && [ "${user%%:*}" != 0 ]; then ok "USER $user"; else fail "USER is '${user:-unset}'"; fi
lint "HEALTHCHECK on /health/live" '^HEALTHCHECK .*|/health/live'
lint "EXPOSE 8080" '^EXPOSE 8080'
lint "STOPSIGNAL SIGTERM" '^STOPSIGNAL SIGTERM'
lint "exec-form CMD running packages/proxy/dist/main.js" '^CMD \["node", "packages/proxy/dist/main.js"\]'
check "Dockerfile: build stage copies every workspace manifest, runtime proxy+ring+client+cli"
if out="$(
  node --input-type=module - <<'EOF' 2>&1
import { readFileSync } from 'node:fs';
const ws = JSON.parse(readFileSync('package.json', 'utf8')).workspaces;
const df = readFileSync('docker/Dockerfile', 'utf8');
const missing = [];
for (const w of ws) {
  if (!df.includes(`COPY ${w}/package.json ${w}/`)) missing.push(`build stage: COPY ${w}/package.json`);
}
for (const w of ['packages/ring', 'packages/proxy', 'packages/client', 'packages/cli']) {
  if (!df.includes(`COPY --from=build /app/${w}/package.json ${w}/`)) missing.push(`runtime stage: ${w}/package.json`);
}
if (missing.length) { console.error(missing.join('\n')); process.exit(1); }
EOF
)"; then ok; else fail "$out"; fi
check "Dockerfile: COPY sources exist in the build context"
missing=""
while read -r src; do
  [ -e "$src" ] || missing+="$src "
done < <(grep -E '^COPY [^-]' "$df" | sed -E 's/^COPY //' | awk '{for (i = 1; i < NF; i++) print $i}')
if [ -z "$missing" ]; then ok; else fail "missing: $missing"; fi

echo "== deploy/kubernetes"
k8s=deploy/kubernetes
run "monitoring resources generated from docker/ are up to date" \
  node scripts/gen-kubernetes-monitoring.mjs --check
check "every manifest matches the Kubernetes / Prometheus Operator schemas"
mapfile -t k8s_files < <(find "$k8s" -name '*.yaml' | sort)
if out="$(node scripts/validate-kubernetes.mjs "${k8s_files[@]}" 2>&1)"; then
  ok "$(tail -1 <<<"$out")"
else
  fail "$out"
fi
check "overlays keep secrets out of git (secrets.env ignored)"
bad=""
for o in "$k8s"/overlays/*/; do
  if [ -e "$o/secrets.env" ] && git ls-files --error-unmatch "$o/secrets.env" >/dev/null 2>&1; then
    bad+="$o/secrets.env is tracked "
  fi
  if command -v git >/dev/null 2>&1 && git rev-parse --git-dir >/dev/null 2>&1 &&
    ! git check-ignore -q "$o/secrets.env"; then
    bad+="$o/secrets.env is not ignored "
  fi
done
if [ -z "$bad" ]; then ok; else fail "$bad"; fi
# Rendering needs kustomize (kubectl >= 1.27 embeds kustomize v5). It is not a Debian
# package at a usable version, so a machine without it skips visibly.
kustomize=()
if command -v kustomize >/dev/null 2>&1; then
  kustomize=(kustomize build)
elif command -v kubectl >/dev/null 2>&1 && kubectl kustomize --help >/dev/null 2>&1; then
  kustomize=(kubectl kustomize)
fi
for o in "$k8s"/overlays/*/; do
  o="${o%/}"
  name="${o##*/}"
  if [ ${#kustomize[@]} -eq 0 ]; then
    check "render overlay $name"
    skip "neither kubectl nor kustomize installed (schemas above still checked file by file)"
    continue
  fi
  # A copy with stand-in secrets: the overlay must refuse to build without secrets.env.
  rm -rf "$tmp/k8s" && mkdir -p "$tmp/k8s" && cp -r "$k8s"/. "$tmp/k8s/" && rm -f "$tmp/k8s/overlays/$name/secrets.env"
  check "overlay $name refuses to build without secrets.env"
  if out="$("${kustomize[@]}" "$tmp/k8s/overlays/$name" 2>&1)"; then
    fail "built without secrets.env"
  else
    ok
  fi
  if [ -f "$tmp/k8s/overlays/$name/secrets.env.example" ]; then
    sed -E 's/^([a-z0-9-]+)=$/\1=check-deploy-stand-in-\1/' "$tmp/k8s/overlays/$name/secrets.env.example" \
      >"$tmp/k8s/overlays/$name/secrets.env"
  fi
  check "render overlay $name (${kustomize[*]})"
  if out="$("${kustomize[@]}" "$tmp/k8s/overlays/$name" 2>&1 >"$tmp/rendered-$name.yaml")"; then
    ok "$(grep -c '^kind:' "$tmp/rendered-$name.yaml") objects"
    check "rendered overlay $name matches the schemas"
    if out="$(node scripts/validate-kubernetes.mjs "$tmp/rendered-$name.yaml" 2>&1)"; then
      ok "$(tail -1 <<<"$out")"
    else
      fail "$out"
    fi
  else
    fail "$out"
  fi
done

echo
if [ "$failures" -gt 0 ]; then
  echo "check-deploy: $failures check(s) FAILED"
  exit 1
fi
echo "check-deploy: all checks passed"

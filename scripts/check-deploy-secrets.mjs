#!/usr/bin/env node
// Security lint of a compose file (issue 15, "compose without open doors"): fails on the
// doors the 2026-12-02 review found open (C1-C3, D1). Reads the file as written (before
// interpolation), so it sees `${VAR:-default}` where `docker-compose config` would only
// show the value. Run by scripts/check-deploy.sh; tested by test/security/check-deploy.test.ts.
//
//   node scripts/check-deploy-secrets.mjs [--env-example .env.example] [docker-compose.yml]
//
// Fails (exit 1, one "FAIL" line per problem) on:
//   - a secret variable (name ending in PASSWORD, TOKEN, SECRET, AUTH, …) used without
//     `${VAR:?message}`: a `:-`/`-` default is a credential everyone knows, a bare `${VAR}`
//     becomes an empty one when unset;
//   - a secret environment entry (GF_SECURITY_ADMIN_PASSWORD, HTTP_PASSWORD, …) or a Redis
//     `--requirepass` with a literal value, and any "change-me" placeholder;
//   - a Redis node without --requirepass;
//   - a Redis port (a redis image, or container port 6379) or a proxy port (a service built
//     here or running the dcache image) published on anything but 127.0.0.1/::1, and a Redis
//     or proxy service on the host's network;
//   - Prometheus with --web.enable-lifecycle or --web.enable-admin-api;
//   - nginx without a fixed address, or proxies that do not trust it (DC_SERVER_TRUSTED_PROXIES);
//   - with --env-example: a variable compose reads that the example does not list, or a secret
//     the example gives a value (a copied example must not start with a usable credential).
// Exit 2 on a usage or parse error. Plain Node plus the `yaml` package of the workspace.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { BlockList, isIP } from 'node:net';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const require = createRequire(import.meta.url);
const { LineCounter, parseDocument, visit } = require('yaml');

/** Names of variables and environment entries that hold credentials. */
export const SECRET_NAME = /(PASSWORD|PASSWD|PASS|TOKEN|SECRET|API_KEY|PRIVATE_KEY)$|(^|_)AUTH$/i;
/** Placeholder credentials that must never ship. */
const PLACEHOLDER = /change[-_ ]?me|changeme/i;
/** `$$` (escape), `${NAME[op word]}` or `$NAME`, as compose reads them. */
const INTERPOLATION =
  /\$(?:(\$)|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))/g;
/** A whole value that is exactly one required interpolation. */
const REQUIRED_ONLY = /^\$\{([A-Za-z_][A-Za-z0-9_]*):\?[^}]+\}$/;

// `${VAR:-default}` counts as its default (an image variable names what it replaces).
const imageIs = (svc, name) =>
  typeof svc.image === 'string' &&
  new RegExp(`(^|/)${name}(:|@|$)`).test(
    svc.image.replace(/\$\{[A-Za-z_][A-Za-z0-9_]*:?-([^}]*)\}/g, '$1').replace(/\$\{[^}]*\}/g, ''),
  );

/** Environment as [key, value] pairs (map or list form; a bare key is [key, undefined]). */
function envEntries(svc) {
  const env = svc.environment;
  if (!env) return [];
  if (Array.isArray(env)) {
    return env.map((e) => {
      const s = String(e);
      const eq = s.indexOf('=');
      return eq < 0 ? [s, undefined] : [s.slice(0, eq), s.slice(eq + 1)];
    });
  }
  return Object.entries(env).map(([k, v]) => [k, v === null ? undefined : v]);
}

/** command/entrypoint as a list of arguments. */
function args(value) {
  if (value === undefined || value === null) return [];
  if (Array.isArray(value)) return value.map(String);
  return String(value).split(/\s+/).filter(Boolean);
}

/** One `ports:` entry as { ip, published, target }; ip '' means every interface. */
export function parsePort(entry) {
  if (entry !== null && typeof entry === 'object') {
    return {
      ip: entry.host_ip === undefined ? '' : String(entry.host_ip),
      published: entry.published === undefined ? '' : String(entry.published),
      target: String(entry.target ?? ''),
    };
  }
  let s = String(entry).replace(/\/(tcp|udp|sctp)$/i, '');
  let ip = '';
  if (s.startsWith('[')) {
    const end = s.indexOf(']');
    ip = s.slice(1, end);
    s = s.slice(end + 2);
  } else {
    const parts = s.split(':');
    if (parts.length >= 3) {
      ip = parts.slice(0, -2).join(':');
      s = parts.slice(-2).join(':');
    }
  }
  const parts = s.split(':');
  // "8080" alone publishes the container port on a random host port, on every interface.
  return parts.length === 1
    ? { ip, published: '(random)', target: parts[0] }
    : { ip, published: parts[0], target: parts[1] };
}

const isLoopback = (ip) => ip === 'localhost' || ip === '::1' || /^127\.\d+\.\d+\.\d+$/.test(ip);
const portText = (p) => `${p.ip || '0.0.0.0'}:${p.published}->${p.target}`;

/** Variables listed in an .env.example: name -> { value, commented }. */
function envExampleVars(text) {
  const vars = new Map();
  for (const line of text.split('\n')) {
    const m = line.match(/^\s*(#\s*)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$/);
    if (m && !(m[1] && vars.has(m[2])))
      vars.set(m[2], { value: m[3].trim(), commented: Boolean(m[1]) });
  }
  return vars;
}

/**
 * Checks compose `text`; returns the problems found, each { line?, message }.
 * @param {string} text the compose file
 * @param {{ envExample?: string }} [opts] text of the .env.example to check against
 */
export function checkCompose(text, opts = {}) {
  const problems = [];
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { merge: true, lineCounter, prettyErrors: false });
  if (doc.errors.length > 0) throw new Error(`not valid YAML: ${doc.errors[0].message}`);
  const at = (node) => (node?.range ? lineCounter.linePos(node.range[0]).line : undefined);
  const add = (node, message) => problems.push({ line: at(node), message });

  // 1. Every interpolation of a secret is ${VAR:?message}; no placeholder anywhere. Scalars
  // of the document, not its text: comments are not interpolated, and an anchor counts once.
  const variables = new Map(); // name -> { required: boolean }
  visit(doc, {
    Scalar(_key, node) {
      if (typeof node.value !== 'string') return;
      const s = node.value;
      if (PLACEHOLDER.test(s)) add(node, `placeholder credential "${s}": a value everyone knows`);
      for (const m of s.matchAll(INTERPOLATION)) {
        if (m[1]) continue; // $$
        const name = m[2] ?? m[5];
        const op = m[3];
        const word = m[4] ?? '';
        const seen = variables.get(name);
        variables.set(name, { required: (seen?.required ?? false) || op === ':?' });
        if (!SECRET_NAME.test(name)) continue;
        if (op === ':-' || op === '-') {
          add(
            node,
            `secret ${name} has a default ("${m[0]}"): a credential anyone who reads this file knows; write \${${name}:?message saying to copy .env.example to .env}`,
          );
        } else if (op !== ':?' || word.trim() === '') {
          add(
            node,
            `secret ${name} is used without ":?" ("${m[0]}"): when unset it becomes an empty credential; write \${${name}:?message saying to copy .env.example to .env}`,
          );
        }
      }
    },
  });

  const model = doc.toJS({ maxAliasCount: -1 }) ?? {};
  const services = model.services ?? {};
  const serviceNode = (name, ...path) => doc.getIn(['services', name, ...path], true);
  const kinds = {};
  for (const [name, svc] of Object.entries(services)) {
    if (!svc || typeof svc !== 'object') continue;
    const command = [...args(svc.entrypoint), ...args(svc.command)];
    const env = envEntries(svc);
    const redis = imageIs(svc, 'redis') || command.some((a) => /(^|\/)redis-server$/.test(a));
    const proxy =
      svc.build !== undefined ||
      imageIs(svc, 'dcache') ||
      env.some(([k]) => k === 'DC_CACHE_ADDRESSES');
    kinds[name] = { redis, proxy, env, svc };

    // 2. Credentials in the environment come from ${VAR:?...}, never literals.
    for (const [key, value] of env) {
      if (!SECRET_NAME.test(key)) continue;
      const node = serviceNode(name, 'environment') ?? serviceNode(name);
      if (value === undefined) {
        add(
          node,
          `service ${name}: ${key} is taken from the shell unchecked; write ${key}: \${${key}:?message}`,
        );
      } else if (typeof value !== 'string' || !value.includes('${')) {
        add(
          node,
          `service ${name}: ${key} has a literal value ("${value}"), a default credential; take it from \${VARIABLE:?message} in .env`,
        );
      } else if (
        !REQUIRED_ONLY.test(value) &&
        // A secret variable's own interpolation is judged (and reported) by check 1.
        ![...value.matchAll(INTERPOLATION)].some((m) => SECRET_NAME.test(m[2] ?? m[5] ?? ''))
      ) {
        add(
          node,
          `service ${name}: ${key} is "${value}", not exactly one required variable (\${VARIABLE:?message})`,
        );
      }
    }

    // 3. Redis runs with a password, and not a literal one.
    const passAt = command.findIndex(
      (a) => a === '--requirepass' || a.startsWith('--requirepass='),
    );
    if (passAt >= 0) {
      const value = command[passAt].includes('=')
        ? command[passAt].slice(command[passAt].indexOf('=') + 1)
        : (command[passAt + 1] ?? '');
      if (!value.includes('${'))
        add(
          serviceNode(name, 'command') ?? serviceNode(name),
          `service ${name}: --requirepass has a literal value, a default credential; use \${DC_CACHE_PASSWORD:?message}`,
        );
    } else if (redis) {
      add(
        serviceNode(name, 'command') ?? serviceNode(name),
        `service ${name}: Redis runs without a password (no --requirepass \${DC_CACHE_PASSWORD:?message})`,
      );
    }

    // 4. Prometheus management endpoints stay off.
    for (const flag of ['--web.enable-lifecycle', '--web.enable-admin-api']) {
      if (command.some((a) => a === flag || a.startsWith(`${flag}=`)))
        add(
          serviceNode(name, 'command') ?? serviceNode(name),
          `service ${name}: ${flag} lets anyone who reaches Prometheus ${flag.endsWith('lifecycle') ? 'POST /-/quit and /-/reload' : 'delete series and snapshot the TSDB'}; remove it`,
        );
    }

    // 5. Neither Redis nor a proxy is reachable from other hosts.
    if ((redis || proxy) && svc.network_mode === 'host')
      add(
        serviceNode(name, 'network_mode'),
        `service ${name}: network_mode host exposes its ${redis ? 'Redis' : 'proxy'} port on every interface of the host`,
      );
    const ports = Array.isArray(svc.ports) ? svc.ports : [];
    ports.forEach((entry, i) => {
      const p = parsePort(entry);
      if (isLoopback(p.ip)) return;
      const node = serviceNode(name, 'ports', i) ?? serviceNode(name, 'ports');
      if (redis || p.target === '6379') {
        add(
          node,
          `service ${name}: Redis port published on the host (${portText(p)}): anyone who reaches the host bypasses the proxy; publish nothing, or bind 127.0.0.1:${p.published}:${p.target}`,
        );
      } else if (proxy) {
        add(
          node,
          `service ${name}: proxy port published directly (${portText(p)}): clients must come through nginx, which does not serve /internal/; publish nothing, or bind 127.0.0.1`,
        );
      }
    });
  }

  // 6. The proxies believe nginx's X-Forwarded-For, and only nginx's.
  const nginx = Object.entries(kinds).find(([, k]) => imageIs(k.svc, 'nginx'));
  const proxies = Object.entries(kinds).filter(([, k]) => k.proxy);
  if (nginx && proxies.length > 0) {
    const [nginxName, { svc }] = nginx;
    const addresses = Object.values(
      svc.networks && !Array.isArray(svc.networks) ? svc.networks : {},
    )
      .map((n) => n?.ipv4_address)
      .filter((a) => typeof a === 'string' && isIP(a) === 4);
    if (addresses.length === 0) {
      add(
        serviceNode(nginxName),
        `service ${nginxName}: no fixed ipv4_address, so the proxies cannot trust its X-Forwarded-For (DC_SERVER_TRUSTED_PROXIES): every client would share one rate-limit bucket`,
      );
    } else {
      for (const [name, { env }] of proxies) {
        const raw = env.find(([k]) => k === 'DC_SERVER_TRUSTED_PROXIES')?.[1];
        const list = typeof raw === 'string' ? raw.split(',').map((e) => e.trim()) : [];
        const trusted = new BlockList();
        for (const e of list) {
          const [ip, bits] = e.split('/');
          if (isIP(ip) !== 4) continue;
          if (bits === undefined) trusted.addAddress(ip, 'ipv4');
          else trusted.addSubnet(ip, Number(bits), 'ipv4');
        }
        if (!addresses.some((a) => trusted.check(a, 'ipv4')))
          add(
            serviceNode(name, 'environment') ?? serviceNode(name),
            `service ${name}: DC_SERVER_TRUSTED_PROXIES (${raw ?? 'unset'}) does not include nginx's address ${addresses.join(', ')}: rate limits and auth throttling would see nginx as the only client`,
          );
      }
    }
  }

  // 7. The example env file lists every variable; its secrets are empty.
  if (opts.envExample !== undefined) {
    const listed = envExampleVars(opts.envExample);
    for (const [name, { required }] of variables) {
      const entry = listed.get(name);
      if (!entry) {
        problems.push({ message: `.env.example does not list ${name}, which compose reads` });
      } else if (required && entry.commented) {
        problems.push({
          message: `.env.example has ${name} commented out, but compose requires it`,
        });
      }
    }
    for (const [name, { value }] of listed) {
      if (SECRET_NAME.test(name) && value !== '')
        problems.push({
          message: `.env.example gives secret ${name} a value ("${value}"): a copied example would run with a known credential; leave it empty`,
        });
    }
  }
  return { problems, variables, services: Object.keys(services) };
}

function main(argv) {
  let envExamplePath;
  const files = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--env-example') envExamplePath = argv[++i];
    else if (argv[i] === '--help' || argv[i] === '-h') {
      process.stdout.write(
        'usage: check-deploy-secrets.mjs [--env-example .env.example] [docker-compose.yml]\n',
      );
      return 0;
    } else files.push(argv[i]);
  }
  if (files.length > 1 || (argv.includes('--env-example') && !envExamplePath)) {
    process.stderr.write(
      'usage: check-deploy-secrets.mjs [--env-example .env.example] [docker-compose.yml]\n',
    );
    return 2;
  }
  const file = files[0] ?? 'docker-compose.yml';
  let result;
  try {
    result = checkCompose(readFileSync(file, 'utf8'), {
      envExample: envExamplePath === undefined ? undefined : readFileSync(envExamplePath, 'utf8'),
    });
  } catch (err) {
    process.stderr.write(`check-deploy-secrets: ${file}: ${err.message}\n`);
    return 2;
  }
  for (const p of result.problems) {
    process.stdout.write(`FAIL ${file}${p.line ? `:${p.line}` : ''}: ${p.message}\n`);
  }
  if (result.problems.length > 0) return 1;
  const required = [...result.variables]
    .filter(([name, v]) => v.required && SECRET_NAME.test(name))
    .map(([name]) => name);
  process.stdout.write(
    `${result.services.length} services; secrets required with :? ${required.join(', ')}\n`,
  );
  return 0;
}

const isMain = process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href;
if (isMain) process.exitCode = main(process.argv.slice(2));

#!/usr/bin/env node
// `npm run test:api` (the seed's `make test-api`): the README's curl calls against a running
// proxy, each checked. DCACHE_URL picks the proxy (default http://localhost:8080). It writes and
// deletes keys under `test-api:` only; it never flushes. Exit 0 when every call answered as
// documented, 1 otherwise; --json prints one JSON object instead of lines.
// biome-ignore lint/suspicious/noUndeclaredEnvVars: run by hand against a running proxy, never by turbo
const base = (process.env.DCACHE_URL ?? 'http://localhost:8080').replace(/\/+$/, '');
const json = process.argv.includes('--json');
const k = (s) => `test-api:${s}`;

const steps = [
  ['PUT one key', 'PUT', `/api/v1/cache/${k('mi_clave')}`, { value: 'mi_valor', ttl: '1h' }, [200]],
  [
    'GET it',
    'GET',
    `/api/v1/cache/${k('mi_clave')}`,
    undefined,
    [200],
    (b) => b.value === 'mi_valor',
  ],
  ['HEAD it', 'HEAD', `/api/v1/cache/${k('mi_clave')}`, undefined, [200]],
  ['DELETE it', 'DELETE', `/api/v1/cache/${k('mi_clave')}`, undefined, [200]],
  ['GET it again (gone)', 'GET', `/api/v1/cache/${k('mi_clave')}`, undefined, [404]],
  [
    'batch PUT',
    'POST',
    '/api/v1/cache/batch',
    {
      items: {
        [k('clave1')]: { value: 'valor1', ttl: '30m' },
        [k('clave2')]: { value: 'valor2', ttl: '1h' },
        [k('clave3')]: { value: 'valor3', ttl: '1h' },
      },
    },
    [200],
    (b) => b.stored === 3,
  ],
  [
    'batch GET',
    'POST',
    '/api/v1/cache/batch/get',
    { keys: [k('clave1'), k('clave2'), k('clave3')] },
    [200],
    (b) => Object.keys(b.items ?? {}).length === 3,
  ],
  ['keys', 'GET', `/api/v1/cache/keys?pattern=${encodeURIComponent(k('*'))}`, undefined, [200]],
  [
    'batch DELETE',
    'DELETE',
    '/api/v1/cache/batch',
    { keys: [k('clave1'), k('clave2'), k('clave3')] },
    [200],
  ],
  ['stats', 'GET', '/api/v1/cache/stats', undefined, [200]],
  ['health', 'GET', '/health', undefined, [200]],
];

const results = [];
for (const [name, method, path, body, codes, check] of steps) {
  let status = 0;
  let ok = false;
  let error;
  try {
    const r = await fetch(`${base}${path}`, {
      method,
      headers: body ? { 'content-type': 'application/json' } : {},
      body: body ? JSON.stringify(body) : undefined,
      signal: AbortSignal.timeout(10_000),
    });
    status = r.status;
    const text = await r.text();
    ok = codes.includes(status);
    if (ok && check) ok = Boolean(check(JSON.parse(text)));
    if (!ok) error = text.slice(0, 300);
  } catch (e) {
    error = e.cause?.code ?? e.message;
  }
  results.push({ name, method, path, status, ok, ...(error ? { error } : {}) });
  if (!json)
    process.stdout.write(
      `${ok ? 'ok  ' : 'FAIL'} ${method.padEnd(6)} ${path} -> ${status || '-'}${error ? `  ${error}` : ''}\n`,
    );
}
const failed = results.filter((r) => !r.ok).length;
if (json) process.stdout.write(`${JSON.stringify({ url: base, failed, results })}\n`);
else
  process.stdout.write(
    `${results.length - failed}/${results.length} calls answered as documented (${base})\n`,
  );
process.exit(failed === 0 ? 0 : 1);

import fc from 'fast-check';
import { ADMIN_TOKEN, CLUSTER_TOKEN } from './harness.js';

/** How the body is framed on the wire. */
export type Framing = 'exact' | 'short' | 'long' | 'chunked' | 'none';

/** One generated HTTP request, serialised by `serialize`. */
export interface FuzzRequest {
  method: string;
  target: string;
  headers: [string, string][];
  body: string | undefined;
  framing: Framing;
  /** The request line or a header is deliberately not HTTP/1.1; the server may close without answering. */
  malformed: boolean;
  /** Which malformation. */
  variant?: string;
}

const enc = encodeURIComponent;

/** Limits of the fuzzed proxy (its defaults). */
export const LIMITS = { maxKeyBytes: 512, maxBatchKeys: 1_000, maxValueBytes: 1_048_576 };

// Keys: printable ASCII, any unicode, lengths around the 512-byte limit, and odd characters.
const keyText = fc.oneof(
  // A small pool of keys, so that reads and deletes often find what a write stored.
  { weight: 6, arbitrary: fc.integer({ min: 0, max: 15 }).map((i) => `hot:${i}`) },
  { weight: 4, arbitrary: fc.string({ minLength: 1, maxLength: 20 }) },
  { weight: 3, arbitrary: fc.string({ unit: 'grapheme', minLength: 1, maxLength: 30 }) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', minLength: 1, maxLength: 30 }) },
  {
    weight: 2,
    arbitrary: fc
      .integer({ min: LIMITS.maxKeyBytes - 3, max: LIMITS.maxKeyBytes + 3 })
      .map((n) => 'k'.repeat(n)),
  },
  { weight: 1, arbitrary: fc.integer({ min: 170, max: 172 }).map((n) => '€'.repeat(n)) },
  { weight: 1, arbitrary: fc.integer({ min: 600, max: 20_000 }).map((n) => 'x'.repeat(n)) },
  {
    weight: 2,
    arbitrary: fc.constantFrom(
      'batch',
      'keys',
      'stats',
      '.',
      '..',
      ' ',
      '*',
      '?',
      '#',
      '{tag}k',
      '\u0000',
      '\uFEFF',
      '\uD83D\uDE00',
      'a/b',
      'null',
    ),
  },
);

// A key as a path segment: properly encoded, raw, or with broken percent-encoding.
const keySegment = fc.oneof(
  { weight: 6, arbitrary: keyText.map(enc) },
  {
    weight: 1,
    arbitrary: fc.string({ minLength: 1, maxLength: 12 }).map((s) => s.replace(/[\s?#]/g, '_')),
  },
  {
    weight: 2,
    arbitrary: fc.constantFrom(
      '%',
      '%G1',
      '%2',
      '%C3',
      '%C3%28',
      '%ED%A0%80',
      '%F4%90%80%80',
      '%FF%FE',
      '%00',
      '%2F',
      '%252F',
      'a%20b',
      '%E2%82',
      '%c0%af',
      '%%',
      'é',
      '%E2%82%AC',
    ),
  },
  {
    weight: 1,
    arbitrary: fc
      .tuple(keyText.map(enc), fc.constantFrom('%', '%Z', '%E2%82'))
      .map(([a, b]) => a + b),
  },
);

const ttl = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.constantFrom('500ms', '30s', '30m', '1h', '1h30m', '2s', 60, 3_600, 0, '0'),
  },
  {
    weight: 4,
    arbitrary: fc.constantFrom(
      '0s',
      '',
      ' ',
      '1',
      '-1s',
      '1.5h',
      '1e3',
      '1 s',
      '1S',
      '999999h',
      '8761h',
      '0.0001s',
      '1ms',
      '1d',
      '1w',
      'NaN',
      'Infinity',
      '٣s',
      '1h-30m',
      'h',
      '10000000000000000000000s',
      null,
      true,
      [],
      {},
      '1s1s',
    ),
  },
  { weight: 1, arbitrary: fc.integer({ min: -10, max: 40_000_000 }) },
  { weight: 1, arbitrary: fc.double({ noNaN: false }) },
  { weight: 1, arbitrary: fc.string({ maxLength: 8 }) },
);

/** Arrays and objects nested around the depth limit (64) and far past it (this process can still stringify 3,000 levels; bounded-work.test.ts sends 5,000 as text). */
const deepValue = fc
  .record({
    depth: fc.oneof(fc.integer({ min: 60, max: 70 }), fc.integer({ min: 1_000, max: 3_000 })),
    object: fc.boolean(),
  })
  .map(({ depth, object }) => {
    let v: unknown = 1;
    for (let i = 0; i < depth; i++) v = object ? { d: v } : [v];
    return v;
  });

const jsonValue = fc.oneof(
  { weight: 5, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
  { weight: 1, arbitrary: deepValue },
  { weight: 1, arbitrary: fc.string({ unit: 'grapheme', maxLength: 50 }) },
  {
    weight: 1,
    arbitrary: fc
      .integer({ min: LIMITS.maxValueBytes - 4, max: LIMITS.maxValueBytes + 2 })
      .map((n) => 'v'.repeat(n)),
  },
);

const putBody = fc.oneof(
  { weight: 6, arbitrary: fc.record({ value: jsonValue, ttl }, { requiredKeys: ['value'] }) },
  { weight: 1, arbitrary: fc.record({ ttl }) },
  { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 2 }) },
);

const keyList = (min: number, max: number) =>
  fc.oneof(
    { weight: 4, arbitrary: fc.array(keyText, { minLength: min, maxLength: max }) },
    {
      weight: 1,
      arbitrary: fc.array(fc.oneof(keyText, fc.jsonValue({ maxDepth: 1 })), { maxLength: 8 }),
    },
  );

// Batch sizes straddle the 1,000-key limit.
const aroundLimit = fc
  .constantFrom(LIMITS.maxBatchKeys - 1, LIMITS.maxBatchKeys, LIMITS.maxBatchKeys + 1)
  .map((n) => Array.from({ length: n }, (_, i) => `fz:${i}`));

const batchSetBody = fc.oneof(
  {
    weight: 5,
    arbitrary: fc
      .dictionary(keyText, fc.record({ value: jsonValue, ttl }, { requiredKeys: ['value'] }), {
        maxKeys: 8,
      })
      .map((items) => ({ items })),
  },
  {
    weight: 1,
    arbitrary: aroundLimit.map((ks) => ({
      items: Object.fromEntries(ks.map((k) => [k, { value: k }])),
    })),
  },
  {
    weight: 1,
    arbitrary: fc
      .dictionary(keyText, fc.jsonValue({ maxDepth: 2 }), { maxKeys: 4 })
      .map((items) => ({ items })),
  },
  { weight: 1, arbitrary: fc.record({ items: fc.jsonValue({ maxDepth: 2 }) }) },
);

const keysBody = fc.oneof(
  { weight: 5, arbitrary: keyList(0, 10).map((keys) => ({ keys })) },
  { weight: 1, arbitrary: aroundLimit.map((keys) => ({ keys })) },
  { weight: 1, arbitrary: fc.record({ keys: fc.jsonValue({ maxDepth: 2 }) }) },
);

// Never a valid address or a real node id: an accepted change would alter the ring under the fuzz.
const badAddress = fc.oneof(
  fc.constantFrom(
    '',
    'nohost',
    ':80',
    'host:',
    'host:99999',
    'host:0',
    'a b:1',
    'h:abc',
    '::1:80',
    '[zz]:1',
    `${'x'.repeat(300)}:1`,
    'ex ample:1',
    'é:1',
  ),
  fc.jsonValue({ maxDepth: 1 }).filter((v) => typeof v !== 'string'),
);
const ringAddBody = fc.oneof(
  fc.record(
    {
      address: badAddress,
      weight: fc.oneof(fc.integer({ min: -2, max: 1_002 }), fc.jsonValue({ maxDepth: 1 })),
      id: fc.jsonValue({ maxDepth: 1 }),
      extra: fc.jsonValue({ maxDepth: 1 }),
    },
    { requiredKeys: [] },
  ),
  fc.jsonValue({ maxDepth: 2 }),
);
const ringPatchBody = fc.oneof(
  fc.record(
    {
      weight: fc.oneof(fc.integer({ min: -2, max: 1_002 }), fc.jsonValue({ maxDepth: 1 })),
      state: fc.oneof(
        fc.constantFrom('active', 'draining', 'removed', 'ejected', ''),
        fc.jsonValue({ maxDepth: 1 }),
      ),
      extra: fc.jsonValue({ maxDepth: 1 }),
    },
    { requiredKeys: [] },
  ),
  fc.jsonValue({ maxDepth: 2 }),
);
const peerBody = fc.oneof(
  fc.record(
    {
      from: fc.oneof(
        fc.record({ id: fc.string({ maxLength: 10 }), url: fc.string({ maxLength: 30 }) }),
        fc.jsonValue({ maxDepth: 1 }),
      ),
      peers: fc.oneof(
        fc.array(fc.string({ maxLength: 30 }), { maxLength: 4 }),
        fc.jsonValue({ maxDepth: 1 }),
      ),
      seeded: fc.jsonValue({ maxDepth: 0 }),
      digest: fc.oneof(
        fc.record({ version: fc.integer(), checksum: fc.string({ maxLength: 20 }) }),
        fc.jsonValue({ maxDepth: 1 }),
      ),
      doc: fc.oneof(
        fc.record({ entries: fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue()) }),
        fc.jsonValue({ maxDepth: 2 }),
      ),
    },
    { requiredKeys: [] },
  ),
  fc.jsonValue({ maxDepth: 2 }),
);

const malformedJson = fc.oneof(
  fc.constantFrom(
    '{',
    '{"value":',
    '{"value":1,}',
    "{'value':1}",
    '[',
    'nul',
    '{"items":{"a":{"value":1}}',
    '{"keys":["a",]}',
    '\u0000',
    '{"value":"\uD800"}',
    '{"value":1}{"value":2}',
    '{"__proto__":{"value":1}}',
    '{"constructor":{"prototype":{"x":1}},"value":1}',
    ' ',
  ),
  fc.string({ maxLength: 40 }),
  fc.jsonValue({ maxDepth: 2 }).map((v) => JSON.stringify(v).slice(0, -1)),
);

/** A body for a route: valid-ish JSON for it, any JSON, malformed text, or a huge blob. */
const bodyFor = (shape: fc.Arbitrary<unknown>) =>
  fc.oneof(
    { weight: 14, arbitrary: shape.map((v) => JSON.stringify(v)) },
    { weight: 2, arbitrary: fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)) },
    { weight: 2, arbitrary: malformedJson },
    { weight: 1, arbitrary: fc.constant(undefined) },
    {
      weight: 1,
      arbitrary: fc
        .integer({ min: 1_100_000, max: 1_300_000 })
        .map((n) => `{"value":"${'h'.repeat(n)}"}`),
    },
  );

type Route = { method: string; target: string; body: string | undefined };

const route = (
  method: fc.Arbitrary<string>,
  target: fc.Arbitrary<string>,
  body?: fc.Arbitrary<string | undefined>,
): fc.Arbitrary<Route> => fc.record({ method, target, body: body ?? fc.constant(undefined) });

const anyMethod = fc.oneof(
  {
    weight: 8,
    arbitrary: fc.constantFrom('GET', 'PUT', 'POST', 'DELETE', 'HEAD', 'PATCH', 'OPTIONS'),
  },
  {
    weight: 1,
    arbitrary: fc.constantFrom('PROPFIND', 'TRACE', 'CONNECT', 'SEARCH', 'MKCOL', 'PURGE'),
  },
  { weight: 1, arbitrary: fc.stringMatching(/^[A-Z]{1,8}$/) },
);

const query = fc
  .array(
    fc.tuple(
      fc.constantFrom('pattern', 'limit', 'cursor', 'x', ''),
      fc.oneof(
        fc.string({ maxLength: 12 }),
        fc.integer({ min: -5, max: 20_000 }).map(String),
        fc.constantFrom('*', 'fz:*', '[', '\\', '0', '1e3', '10001', '', 'eyJ4IjoxfQ', '%', '%ZZ'),
        fc.integer({ min: 1_000, max: 3_000 }).map((n) => 'p'.repeat(n)),
      ),
    ),
    { maxLength: 4 },
  )
  .map((pairs) =>
    pairs.length === 0
      ? ''
      : `?${pairs.map(([k, v]) => `${k}=${/^%/.test(v) ? v : enc(v)}`).join('&')}`,
  );

const keyMethod = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom('PUT', 'GET', 'HEAD', 'DELETE') },
  { weight: 1, arbitrary: anyMethod },
);

const routes = fc.oneof(
  {
    weight: 8,
    arbitrary: route(
      keyMethod,
      keySegment.map((k) => `/api/v1/cache/${k}`),
      bodyFor(putBody),
    ),
  },
  {
    weight: 4,
    arbitrary: route(
      fc.constantFrom('POST', 'PUT', 'GET'),
      fc.constant('/api/v1/cache/batch'),
      bodyFor(batchSetBody),
    ),
  },
  {
    weight: 3,
    arbitrary: route(
      fc.constantFrom('POST', 'GET'),
      fc.constant('/api/v1/cache/batch/get'),
      bodyFor(keysBody),
    ),
  },
  {
    weight: 3,
    arbitrary: route(
      fc.constantFrom('DELETE', 'POST'),
      fc.constant('/api/v1/cache/batch'),
      bodyFor(keysBody),
    ),
  },
  {
    weight: 2,
    arbitrary: route(
      anyMethod,
      query.map((q) => `/api/v1/cache/keys${q}`),
    ),
  },
  { weight: 1, arbitrary: route(anyMethod, fc.constant('/api/v1/cache/stats')) },
  { weight: 1, arbitrary: route(anyMethod, fc.constant('/api/v1/cache/'), bodyFor(putBody)) },
  {
    weight: 1,
    arbitrary: route(
      anyMethod,
      fc.constantFrom(
        '/health',
        '/health/live',
        '/health/ready',
        '/metrics',
        '/openapi.json',
        '/api/v1/ring',
      ),
    ),
  },
  {
    weight: 2,
    arbitrary: route(
      fc.constantFrom('POST', 'GET', 'PUT'),
      fc.constant('/api/v1/ring/nodes'),
      bodyFor(ringAddBody),
    ),
  },
  {
    weight: 2,
    arbitrary: route(
      fc.constantFrom('DELETE', 'PATCH', 'GET'),
      keySegment.map((k) => `/api/v1/ring/nodes/${k}`),
      bodyFor(ringPatchBody),
    ),
  },
  {
    weight: 2,
    arbitrary: route(
      anyMethod,
      keySegment.map((k) => `/api/v1/ring/owner/${k}`),
    ),
  },
  {
    weight: 2,
    arbitrary: route(
      fc.constantFrom('GET', 'POST'),
      fc.constantFrom(
        '/internal/v1/membership',
        '/internal/v1/membership/digest',
        '/internal/v1/membership/sync',
        '/internal/v1/x',
      ),
      bodyFor(peerBody),
    ),
  },
  {
    weight: 2,
    arbitrary: route(
      anyMethod,
      fc.oneof(
        fc.webPath(),
        fc.constantFrom(
          '/',
          '//',
          '/api',
          '/api/v1',
          '/api/v1/cache',
          '/api/v1/cache//x',
          '/api/v1/cache/x/y',
          '/api/v1/cache/./x',
          '/api/v1/cache/../../health',
          '/API/V1/CACHE/x',
          '/api/v1/cache/x?',
          '/api/v1/cache/x#f',
          '/api/v1/cache/x;p',
          '*',
          'http://127.0.0.1/api/v1/cache/x',
          '/health?x=%ZZ',
        ),
      ),
      bodyFor(putBody),
    ),
  },
);

const contentType = fc.oneof(
  { weight: 14, arbitrary: fc.constant('application/json') },
  {
    weight: 3,
    arbitrary: fc.constantFrom(
      'application/json; charset=utf-8',
      'Application/JSON',
      'application/json; charset=latin1',
      'text/plain',
      'text/json',
      'application/x-www-form-urlencoded',
      'multipart/form-data; boundary=x',
      'application/octet-stream',
      '',
      '*/*',
      'application/json, text/plain',
      'application/vnd.api+json',
      'application/json;;',
    ),
  },
  { weight: 1, arbitrary: fc.constant(undefined) },
);

// The right admin token is sent to ring changes too: the generated ids and addresses can never
// name a real node or be accepted, so the ring stays as it was (the test checks that).
const auth = fc.oneof(
  { weight: 3, arbitrary: fc.constant(undefined) },
  { weight: 2, arbitrary: fc.constant(`Bearer ${ADMIN_TOKEN}`) },
  { weight: 2, arbitrary: fc.constant(`Bearer ${CLUSTER_TOKEN}`) },
  {
    weight: 2,
    arbitrary: fc.constantFrom(
      'Bearer wrong',
      `Token ${ADMIN_TOKEN}`,
      `Basic ${Buffer.from(`a:${ADMIN_TOKEN}`).toString('base64')}`,
      'Bearer',
      'Bearer ',
      `Bearer ${ADMIN_TOKEN} extra`,
      `bearer ${ADMIN_TOKEN.toUpperCase()}`,
    ),
  },
  { weight: 1, arbitrary: fc.string({ maxLength: 40 }).map((s) => s.replace(/[\r\n]/g, ' ')) },
);

const extraHeader = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.constantFrom<[string, string]>(
      ['Accept', 'application/json'],
      ['Accept', 'text/html'],
      ['Accept-Encoding', 'gzip, br'],
      ['X-Request-Id', 'fuzz'],
      ['X-Forwarded-For', '10.0.0.1, 10.0.0.2'],
      ['Cookie', 'a=b'],
      ['Origin', 'http://evil.example'],
      ['X-Admin-Token', ADMIN_TOKEN],
      ['X-HTTP-Method-Override', 'DELETE'],
      ['Range', 'bytes=0-1'],
      ['If-None-Match', '*'],
      ['Host', 'other.example'],
    ),
  },
  {
    // Headers that change framing or negotiation.
    weight: 1,
    arbitrary: fc.constantFrom<[string, string]>(
      ['X-Request-Id', 'r'.repeat(4_000)],
      ['Expect', '100-continue'],
      ['Expect', 'teapot'],
      ['Content-Encoding', 'gzip'],
      ['Transfer-Encoding', 'gzip'],
      ['Upgrade', 'websocket'],
    ),
  },
  {
    weight: 2,
    arbitrary: fc.tuple(
      fc.stringMatching(/^[A-Za-z][A-Za-z0-9-]{0,20}$/),
      fc.string({ maxLength: 60 }).map((s) => s.trim()),
    ),
  },
);

/** A whole generated request. */
export const fuzzRequest: fc.Arbitrary<FuzzRequest> = routes.chain((r) =>
  fc
    .record({
      ct: contentType,
      auth,
      extra: fc.array(extraHeader, { maxLength: 3 }),
      framing: fc.oneof(
        { weight: 12, arbitrary: fc.constant<Framing>('exact') },
        { weight: 1, arbitrary: fc.constantFrom<Framing>('short', 'long', 'chunked', 'none') },
      ),
      malformed: fc.oneof(
        { weight: 30, arbitrary: fc.constant<string | undefined>(undefined) },
        {
          weight: 1,
          arbitrary: fc.constantFrom(
            'bad-version',
            'bad-header',
            'space-in-target',
            'ctl-in-target',
            'lf-only',
            'duplicate-cl',
            'negative-cl',
          ),
        },
      ),
    })
    .map(({ ct, auth, extra, framing, malformed }) => {
      const headers: [string, string][] = [];
      if (ct !== undefined && r.body !== undefined) headers.push(['Content-Type', ct]);
      if (auth !== undefined) headers.push(['Authorization', auth]);
      headers.push(...extra);
      return {
        method: r.method,
        target: r.target,
        headers,
        body: r.body,
        framing: r.body === undefined && framing !== 'none' ? 'exact' : framing,
        malformed: malformed !== undefined,
        ...(malformed !== undefined ? { variant: malformed } : {}),
      };
    }),
);

/** The bytes of a request (always `Connection: close`, so the server ends each exchange). */
export function serialize(req: FuzzRequest): Buffer {
  const body = req.body === undefined ? undefined : Buffer.from(req.body, 'utf8');
  const v = req.variant;
  let target = req.target;
  if (v === 'space-in-target') target = `${target} x`;
  if (v === 'ctl-in-target') target = `${target}\u0001`;
  const version = v === 'bad-version' ? 'HTTP/2.0' : 'HTTP/1.1';
  const eol = v === 'lf-only' ? '\n' : '\r\n';
  const lines = [`${req.method} ${target} ${version}`, 'Host: 127.0.0.1'];
  for (const [k, val] of req.headers) lines.push(`${k}: ${val}`);
  if (v === 'bad-header') lines.push('Bad Header: x');
  let payload: Buffer = Buffer.alloc(0);
  if (body !== undefined || req.framing === 'chunked') {
    const b = body ?? Buffer.alloc(0);
    switch (req.framing) {
      case 'exact':
        lines.push(`Content-Length: ${b.length}`);
        payload = b;
        break;
      case 'short':
        // Announces more than it sends; the client then half-closes (a truncated body).
        lines.push(`Content-Length: ${b.length + 1 + (b.length % 997)}`);
        payload = b;
        break;
      case 'long':
        // Announces less than it sends: the rest is read as the start of a next request.
        lines.push(`Content-Length: ${Math.floor(b.length / 2)}`);
        payload = b;
        break;
      case 'chunked': {
        lines.push('Transfer-Encoding: chunked');
        const half = Math.ceil(b.length / 2);
        const parts = [b.subarray(0, half), b.subarray(half)].filter((p) => p.length > 0);
        payload = Buffer.concat([
          ...parts.flatMap((p) => [
            Buffer.from(`${p.length.toString(16)}\r\n`),
            p,
            Buffer.from('\r\n'),
          ]),
          Buffer.from('0\r\n\r\n'),
        ]);
        break;
      }
      case 'none':
        payload = b;
        break;
    }
  }
  if (v === 'duplicate-cl') lines.push('Content-Length: 1', 'Content-Length: 2');
  if (v === 'negative-cl') lines.push('Content-Length: -1');
  lines.push('Connection: close');
  return Buffer.concat([Buffer.from(`${lines.join(eol)}${eol}${eol}`, 'utf8'), payload]);
}

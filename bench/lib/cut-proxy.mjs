/**
 * The proxy with per-request features cut out (`benchCut`, an option of startServer meant for
 * benchmarks only), for bench/feature-costs.ts and bench/variants.ts. Settings come from DC_*
 * as for `node packages/proxy/dist/main.js`; the cuts from DCACHE_BENCH_CUT, a comma list of
 * security-headers, ring-headers, request-id and http-metrics. Its answers are not the API's:
 * never a way to serve clients.
 *   DCACHE_BENCH_CUT=security-headers,http-metrics node bench/lib/cut-proxy.mjs
 */
import { loadConfig, startServer } from '@dcache/proxy';

const benchCut = (process.env.DCACHE_BENCH_CUT ?? '').split(',').filter((c) => c !== '');
const server = await startServer(loadConfig({ env: process.env }), { benchCut });
const stop = () => {
  void server.close().finally(() => process.exit(0));
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);

import { existsSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import {
  freePort,
  type RedisCluster,
  startProcess,
  startRedisCluster,
  type TestProcess,
} from '@dcache/test-utils';

/** The built proxy entry point (`npx turbo run build` first). */
export const PROXY_MAIN = fileURLToPath(new URL('../../proxy/dist/main.js', import.meta.url));

/** A real proxy process over real redis-servers. */
export interface ProxyFixture {
  url: string;
  port: number;
  cluster: RedisCluster;
  proc: TestProcess;
  stop(): Promise<void>;
}

/** Start `nodes` redis-servers and `node packages/proxy/dist/main.js` over them. */
export async function startProxy(
  nodes = 3,
  env: Record<string, string> = {},
): Promise<ProxyFixture> {
  if (!existsSync(PROXY_MAIN))
    throw new Error(`${PROXY_MAIN} is missing: run \`npx turbo run build\` first`);
  const cluster = await startRedisCluster(nodes);
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const proc = await startProcess('node', [PROXY_MAIN], {
    env: {
      DC_CACHE_ADDRESSES: cluster.addressList,
      DC_SERVER_HOST: '127.0.0.1',
      DC_SERVER_PORT: String(port),
      DC_ADMIN_TOKEN: 'admin-secret',
      DC_LOGGER_LEVEL: 'warn',
      // CI runs on 2 busy cores: no Redis timeout or ejection from load alone (tests override).
      DC_CACHE_COMMAND_TIMEOUT: '5s',
      DC_HEALTH_INTERVAL: '2s',
      DC_HEALTH_TIMEOUT: '2s',
      DC_HEALTH_FAILURE_THRESHOLD: '5',
      ...env,
    },
    readyUrl: `${url}/health`,
  });
  return {
    url,
    port,
    cluster,
    proc,
    async stop() {
      await proc.stop(5_000);
      await cluster.stopAll();
    },
  };
}

/** A plain HTTP server on a free loopback port that answers with `handler` (for transport cases). */
export async function startHttpServer(
  handler: (req: IncomingMessage, res: ServerResponse) => void,
): Promise<{ url: string; server: Server; connections: () => number; close(): Promise<void> }> {
  const server = createServer(handler);
  const sockets = new Set<Socket>();
  let connections = 0;
  server.on('connection', (s) => {
    connections++;
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    server,
    connections: () => connections,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

import { existsSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import {
  CI_SAFE_ENV,
  PROXY_MAIN,
  type RedisCluster,
  spawnProxy,
  startRedisCluster,
  type TestProcess,
} from '@dcache/test-utils';

export { PROXY_MAIN };

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
  const { url, port, proc } = await spawnProxy(
    {
      DC_CACHE_ADDRESSES: cluster.addressList,
      DC_ADMIN_TOKEN: 'admin-secret',
      ...CI_SAFE_ENV,
      ...env,
    },
    { readyPath: '/health' },
  );
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

import { request } from 'node:http';

/** True when a Docker engine answers `GET /_ping` on its socket (cheap; no testcontainers import). */
export function dockerAvailable(
  socketPath = process.env.DOCKER_SOCKET ?? '/var/run/docker.sock',
): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request({ socketPath, path: '/_ping', method: 'GET', timeout: 1_000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('error', () => resolve(false));
    req.on('timeout', () => {
      req.destroy();
      resolve(false);
    });
    req.end();
  });
}

/** A redis:7-alpine container started with testcontainers (only when a Docker engine answers). */
export interface RedisContainerHandle {
  readonly address: string;
  stop(): Promise<void>;
}

/** Start `redis:7-alpine` with testcontainers; callers must check `dockerAvailable()` first. */
export async function startRedisContainer(): Promise<RedisContainerHandle> {
  const { GenericContainer, Wait } = await import('testcontainers');
  const c = await new GenericContainer('redis:7-alpine')
    .withCommand(['redis-server', '--save', '', '--appendonly', 'no'])
    .withExposedPorts(6379)
    .withWaitStrategy(Wait.forLogMessage('Ready to accept connections'))
    .start();
  return {
    address: `${c.getHost()}:${c.getMappedPort(6379)}`,
    async stop() {
      await c.stop();
    },
  };
}

import { request } from 'node:http';

/** The engine's socket: DOCKER_SOCKET, else a `unix://` DOCKER_HOST (e.g. podman's), else Docker's. */
export function dockerSocketPath(env: NodeJS.ProcessEnv = process.env): string {
  if (env.DOCKER_SOCKET) return env.DOCKER_SOCKET;
  if (env.DOCKER_HOST?.startsWith('unix://')) return env.DOCKER_HOST.slice('unix://'.length);
  return '/var/run/docker.sock';
}

/** True when a Docker engine answers `GET /_ping` on its socket (cheap; no testcontainers import). */
export function dockerAvailable(socketPath = dockerSocketPath()): Promise<boolean> {
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

/** A Redis container started with testcontainers (only when a Docker engine answers). */
export interface RedisContainerHandle {
  readonly address: string;
  stop(): Promise<void>;
}

/**
 * Start a Redis container with testcontainers (`redis:7-alpine`, or DC_TEST_REDIS_IMAGE: any
 * image with redis-server on its PATH, e.g. the container tier's local one); callers must check
 * `dockerAvailable()` first. Without a password: protected mode off, as the official image has it.
 */
export async function startRedisContainer(
  image = process.env.DC_TEST_REDIS_IMAGE ?? 'redis:7-alpine',
): Promise<RedisContainerHandle> {
  const { GenericContainer, Wait } = await import('testcontainers');
  const c = await new GenericContainer(image)
    .withCommand(['redis-server', '--save', '', '--appendonly', 'no', '--protected-mode', 'no'])
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

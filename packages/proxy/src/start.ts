import { ConfigError, loadConfig } from './config.js';
import { startLocalRedis } from './dev/local-redis.js';
import { handleInfoFlags, run } from './main.js';

/**
 * `npm start`: with DC_CACHE_ADDRESSES (or a config file) use those nodes; otherwise start three
 * local redis-servers on free ports, shard over them, and stop them on exit.
 */
async function start(): Promise<void> {
  const argv = process.argv.slice(2);
  handleInfoFlags(argv, 'npm start --');
  const env = { ...process.env };
  const hasNodes = Boolean(
    env.DC_CACHE_ADDRESSES ||
      env.DC_CONFIG ||
      argv.some((a) => a.startsWith('--config') || a.startsWith('--cache-addresses')),
  );
  if (!hasNodes) {
    const n = Number(env.DCACHE_DEV_NODES ?? 3);
    let local: Awaited<ReturnType<typeof startLocalRedis>>;
    try {
      local = await startLocalRedis(n);
    } catch (e) {
      process.stderr.write(`dcache: ${(e as Error).message}\n`);
      process.exit(1);
    }
    env.DC_CACHE_ADDRESSES = local.addresses.join(',');
    process.stdout.write(`dcache: started ${n} local redis-servers: ${env.DC_CACHE_ADDRESSES}\n`);
  }
  try {
    await run(loadConfig({ argv, env }), process.env);
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`dcache: ${e.message}\n`);
      process.exit(2);
    }
    throw e;
  }
}

void start();

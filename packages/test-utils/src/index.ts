export { cleanupAll, registerCleanup, trackPid } from './cleanup.js';
export { type DnsMode, startDnsServer, type TestDnsServer } from './dns-server.js';
export {
  dockerAvailable,
  dockerSocketPath,
  type RedisContainerHandle,
  startRedisContainer,
} from './docker.js';
export { freePort } from './ports.js';
export { type ProcessOptions, startProcess, type TestProcess } from './process.js';
export {
  CI_SAFE_ENV,
  CLUSTER_TEST_ENV,
  type ClusterProxy,
  FAST_HEALTH,
  PROXY_MAIN,
  type ProxyCluster,
  type ProxyClusterOptions,
  type SpawnedProxy,
  type SpawnProxyOptions,
  spawnProxy,
  startProxyCluster,
} from './proxy-cluster.js';
export {
  type RedisCluster,
  type RedisServer,
  type RedisServerOptions,
  type RespValue,
  redisServerBin,
  respCommand,
  startRedis,
  startRedisCluster,
} from './redis-server.js';
export { sleep, type WaitOptions, waitFor } from './wait.js';

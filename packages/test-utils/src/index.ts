export { cleanupAll, registerCleanup, trackPid } from './cleanup.js';
export { dockerAvailable, type RedisContainerHandle, startRedisContainer } from './docker.js';
export { freePort } from './ports.js';
export { type ProcessOptions, startProcess, type TestProcess } from './process.js';
export {
  CLUSTER_TEST_ENV,
  type ClusterProxy,
  PROXY_MAIN,
  type ProxyCluster,
  type ProxyClusterOptions,
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

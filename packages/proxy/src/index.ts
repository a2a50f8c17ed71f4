export { type AppOptions, buildApp, codeOf, type RoutePlugin } from './app.js';
export { requireAdmin, requireToken, safeEqual } from './auth.js';
export { CacheService } from './cache-service.js';
export {
  type Config,
  ConfigError,
  envName,
  flagName,
  loadConfig,
  redact,
  SETTINGS,
} from './config.js';
export { startLocalRedis } from './dev/local-redis.js';
export { formatDuration, parseDuration } from './duration.js';
export { DcacheError, ERROR_CODES, ERRORS, type ErrorCode, errorBody } from './errors.js';
export { HealthTracker } from './health/health-tracker.js';
export { createLogger } from './log.js';
export { main, run } from './main.js';
export {
  BOOTSTRAP_TIMEOUT,
  type Cluster,
  type InitialMembership,
  initialMembership,
  setupCluster,
} from './membership/cluster.js';
export {
  type ChangeSource,
  MembershipHolder,
  type RingSnapshot,
  type RoutingChange,
  seedDoc,
  snapshotOf,
} from './membership/membership-holder.js';
export {
  type AddNodeInput,
  MembershipManager,
  type ReceiveResult,
  type UpdateNodeInput,
} from './membership/membership-manager.js';
export {
  type MembershipState,
  readStateFile,
  StateFileError,
  StatePersister,
  writeFileAtomic,
} from './membership/state-file.js';
export { createMetrics, type Metrics } from './metrics.js';
export { PeerClient, PeerError } from './peers/peer-client.js';
export { PeerSync, type PeerView } from './peers/peer-sync.js';
export { type Exchange, MAX_PEER_PAYLOAD, PATHS as PEER_PATHS } from './peers/protocol.js';
export { FENCED, Router } from './router.js';
export { healthSummary } from './routes/health.js';
export { fullRingView, ringView } from './routes/ring.js';
export { createRuntime, type Runtime } from './runtime.js';
export { type RunningServer, type StartOptions, startServer } from './server.js';
export { RedisConnection } from './upstream/resp/redis-connection.js';
export { RespConnection, type RespConnectionOptions } from './upstream/resp/resp-connection.js';
export { type Reply, ReplyError, RespParser } from './upstream/resp/resp-parser.js';

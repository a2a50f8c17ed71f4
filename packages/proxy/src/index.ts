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
  type ChangeSource,
  MembershipHolder,
  type RingSnapshot,
  seedDoc,
  snapshotOf,
} from './membership/membership-holder.js';
export { createMetrics, type Metrics } from './metrics.js';
export { Router } from './router.js';
export { healthSummary } from './routes/health.js';
export { ringView } from './routes/ring.js';
export { createRuntime, type Runtime } from './runtime.js';
export { type RunningServer, type StartOptions, startServer } from './server.js';

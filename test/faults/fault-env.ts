/** Health settings used by the fault tests: fast probes so ejection and re-add happen in a second or two. */
export const FAST_HEALTH = {
  DC_HEALTH_INTERVAL: '200ms',
  DC_HEALTH_TIMEOUT: '150ms',
  DC_HEALTH_FAILURE_THRESHOLD: '3',
  DC_HEALTH_SUCCESS_THRESHOLD: '2',
  DC_HEALTH_RETRY_INTERVAL: '300ms',
  DC_CACHE_COMMAND_TIMEOUT: '500ms',
  DC_CACHE_CONNECT_TIMEOUT: '500ms',
} as const;

/** The bound the issue states for ejection: F × interval + timeout (ms). */
export const EJECT_BOUND_MS = 3 * 200 + 150;
/** The bound for re-add: S × retry interval + timeout (ms). */
export const READD_BOUND_MS = 2 * 300 + 150;

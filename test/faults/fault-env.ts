/** Health settings used by the fault tests: fast probes so ejection and re-add happen in a second or two. */
export { FAST_HEALTH } from '@dcache/test-utils';

/** The bound the issue states for ejection: F × interval + timeout (ms). */
export const EJECT_BOUND_MS = 3 * 200 + 150;
/** The bound for re-add: S × retry interval + timeout (ms). */
export const READD_BOUND_MS = 2 * 300 + 150;

// A random prefix per process and a counter (e.g. "3f9a1c2e-1b"): distinct across requests and,
// with near certainty, across proxies and restarts, without fresh entropy per request.
const PREFIX = crypto.randomUUID().slice(0, 8);
let seq = 0;

/** A new request id for a request that did not bring its own X-Request-Id. */
export function nextRequestId(): string {
  return `${PREFIX}-${(++seq).toString(36)}`;
}

/** The id of a request: the X-Request-Id it brought (any non-empty value), else a new one. */
export function requestIdOf(given: string | string[] | undefined): string {
  return typeof given === 'string' && given !== '' ? given : nextRequestId();
}

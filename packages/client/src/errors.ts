/** Every stable error code the dcache API documents (SPEC §3, the proxy's error catalogue). */
export const KNOWN_ERROR_CODES = [
  'INVALID_JSON',
  'INVALID_KEY',
  'INVALID_TTL',
  'MISSING_VALUE',
  'INVALID_BODY',
  'INVALID_QUERY',
  'INVALID_CURSOR',
  'INVALID_ADDRESS',
  'INVALID_MEMBERSHIP',
  'BATCH_TOO_LARGE',
  'BAD_REQUEST',
  'UNAUTHORIZED',
  'FORBIDDEN',
  'KEY_NOT_FOUND',
  'NODE_NOT_FOUND',
  'NOT_FOUND',
  'METHOD_NOT_ALLOWED',
  'NODE_EXISTS',
  'RING_CONFLICT',
  'PAYLOAD_TOO_LARGE',
  'UNSUPPORTED_MEDIA_TYPE',
  'RATE_LIMITED',
  'NODE_ERROR',
  'NODE_UNAVAILABLE',
  'NO_NODES',
  'ALL_FAILED',
  'SHUTTING_DOWN',
  'NODE_TIMEOUT',
  'INTERNAL',
] as const;

/** A code from the API's catalogue. */
export type KnownErrorCode = (typeof KNOWN_ERROR_CODES)[number];

/**
 * The `code` of a server error: a catalogue code, or another string (a newer server, or
 * `HTTP_<status>` when something in front of the proxy answered without a dcache error body).
 */
export type ErrorCode = KnownErrorCode | (string & Record<never, never>);

/** Per-key failures of a batch call: key (or node id, for flush) → error code. */
export type FailedMap = Record<string, ErrorCode>;

/** The server answered with an error status and (usually) a `{"error": {code, message}}` body. */
export class DcacheClientError extends Error {
  /** Stable error code from the body (`HTTP_<status>` when the body was not a dcache error). */
  readonly code: ErrorCode;
  /** HTTP status of the answer. */
  readonly status: number;
  /** Per-key failures when the body carried them (batch calls answered 503 `ALL_FAILED`, flush). */
  readonly failed: FailedMap | undefined;
  /** The `x-request-id` of the answer, for matching server logs. */
  readonly requestId: string | undefined;

  constructor(
    code: ErrorCode,
    status: number,
    message: string,
    extra: { failed?: FailedMap; requestId?: string } = {},
  ) {
    super(message);
    this.name = 'DcacheClientError';
    this.code = code;
    this.status = status;
    this.failed = extra.failed;
    this.requestId = extra.requestId;
  }
}

/** Why a call got no usable answer. */
export type NetworkErrorCode =
  /** Could not connect (refused, unknown host, unreachable, connect timeout). */
  | 'UNREACHABLE'
  /** The connection broke while the call was in flight. */
  | 'CONNECTION_LOST'
  /** The call did not finish within its timeout. */
  | 'TIMEOUT'
  /** The answer was not what the API sends (not JSON where JSON was due). */
  | 'BAD_RESPONSE';

/** No usable answer from the server: a transport failure, distinct from an error the server sent. */
export class DcacheNetworkError extends Error {
  /** What went wrong, as a stable code. */
  readonly code: NetworkErrorCode;
  /** Method and URL of the call. */
  readonly request: string;

  constructor(code: NetworkErrorCode, request: string, message: string, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = 'DcacheNetworkError';
    this.code = code;
    this.request = request;
  }
}

/** The call ran past its timeout (the request is cancelled). */
export class DcacheTimeoutError extends DcacheNetworkError {
  /** The timeout that elapsed, in milliseconds. */
  readonly timeoutMs: number;

  constructor(request: string, timeoutMs: number) {
    super('TIMEOUT', request, `${request}: no answer within ${timeoutMs} ms`);
    this.name = 'DcacheTimeoutError';
    this.timeoutMs = timeoutMs;
  }
}

/** The caller's AbortSignal cancelled the call; `cause` is the signal's reason. */
export class DcacheAbortError extends Error {
  /** Always `ABORTED`. */
  readonly code = 'ABORTED';
  /** Method and URL of the call. */
  readonly request: string;

  constructor(request: string, reason: unknown) {
    super(`${request}: aborted`, { cause: reason });
    this.name = 'AbortError';
    this.request = request;
  }
}

/** True for an error the server answered with `code` (any code when omitted). */
export function isDcacheClientError(e: unknown, code?: ErrorCode): e is DcacheClientError {
  return e instanceof DcacheClientError && (code === undefined || e.code === code);
}

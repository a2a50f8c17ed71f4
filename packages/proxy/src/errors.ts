import { STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
/** Every error the API can return: stable code → HTTP status and default message. */
export const ERRORS = {
  INVALID_JSON: { status: 400, message: 'the request body is not valid JSON' },
  INVALID_KEY: { status: 400, message: 'the key is invalid' },
  INVALID_TTL: { status: 400, message: 'the TTL is invalid' },
  MISSING_VALUE: { status: 400, message: 'the body has no "value"' },
  INVALID_BODY: { status: 400, message: 'the request body does not have the expected shape' },
  INVALID_QUERY: { status: 400, message: 'a query parameter is invalid' },
  INVALID_CURSOR: { status: 400, message: 'the cursor is invalid or from another ring' },
  INVALID_ADDRESS: { status: 400, message: 'the node address is invalid' },
  INVALID_MEMBERSHIP: { status: 400, message: 'the membership document is invalid' },
  VALUE_TOO_DEEP: { status: 400, message: 'the value nests arrays or objects too deeply' },
  NODE_NOT_ALLOWED: {
    status: 400,
    message: 'the node address is not in the allow-list (DC_CACHE_ALLOWED_ADDRESSES)',
  },
  VERSION_LIMIT: {
    status: 409,
    message:
      'a membership version would pass its cap (2^39 changes); add the Redis node under a new id',
  },
  BATCH_TOO_LARGE: { status: 400, message: 'the batch holds too many keys' },
  BAD_REQUEST: { status: 400, message: 'the request is malformed' },
  UNAUTHORIZED: { status: 401, message: 'a bearer token is required' },
  FORBIDDEN: { status: 403, message: 'the token is not valid for this call' },
  PROTECTED_MODE: {
    status: 403,
    message:
      'admin calls answer only loopback clients while no admin token is set: set DC_ADMIN_TOKEN (and send "Authorization: Bearer <token>"), or call from the proxy host',
  },
  KEY_NOT_FOUND: { status: 404, message: 'the key does not exist' },
  NODE_NOT_FOUND: { status: 404, message: 'no such node in the ring' },
  NOT_FOUND: { status: 404, message: 'no such route' },
  METHOD_NOT_ALLOWED: { status: 405, message: 'the method is not allowed on this route' },
  NODE_EXISTS: { status: 409, message: 'the node is already in the ring' },
  RING_CONFLICT: { status: 409, message: 'the change would leave the ring without an active node' },
  PAYLOAD_TOO_LARGE: { status: 413, message: 'the body or value is too large' },
  RESPONSE_TOO_LARGE: {
    status: 413,
    message:
      'the answer would pass DC_LIMITS_MAX_BATCH_RESPONSE_BYTES; ask for fewer keys per call',
  },
  UNSUPPORTED_MEDIA_TYPE: { status: 415, message: 'the body must be application/json' },
  RATE_LIMITED: { status: 429, message: 'too many requests' },
  AUTH_THROTTLED: {
    status: 429,
    message: 'too many failed authentications from this client; wait and retry with a valid token',
  },
  NODE_ERROR: { status: 502, message: 'the Redis node answered with an error' },
  NODE_UNAVAILABLE: { status: 503, message: 'the Redis node that owns the key is unavailable' },
  NO_NODES: { status: 503, message: 'no Redis node can serve the request' },
  ALL_FAILED: { status: 503, message: 'every node involved in the request failed' },
  SHUTTING_DOWN: { status: 503, message: 'the proxy is shutting down' },
  NODE_TIMEOUT: { status: 504, message: 'the Redis node did not answer in time' },
  INTERNAL: { status: 500, message: 'internal error (a bug: please report it)' },
} as const satisfies Record<string, { status: number; message: string }>;

/** A stable error code. */
export type ErrorCode = keyof typeof ERRORS;

/** Every code, in catalogue order. */
export const ERROR_CODES = Object.keys(ERRORS) as ErrorCode[];

/** An error with a stable code; the HTTP layer turns it into `{"error":{code,message}}`. */
export class DcacheError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly details: Record<string, unknown> | undefined;
  constructor(code: ErrorCode, message?: string, details?: Record<string, unknown>) {
    super(message ?? ERRORS[code].message);
    this.name = 'DcacheError';
    this.code = code;
    this.status = ERRORS[code].status;
    this.details = details;
  }
}

/** The JSON body of an error response. */
export function errorBody(
  code: ErrorCode,
  message?: string,
): { error: { code: ErrorCode; message: string } } {
  return { error: { code, message: message ?? ERRORS[code].message } };
}

/** Write a whole error response straight to a socket (for requests Fastify never sees). */
export function rawError(socket: Duplex, code: ErrorCode, message: string): void {
  if (!socket.writable) return;
  const text = JSON.stringify(errorBody(code, message));
  const status = ERRORS[code].status;
  socket.write(
    `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(text)}\r\nConnection: close\r\n\r\n${text}`,
  );
}

/** True when `x` is a catalogue code. */
export function isErrorCode(x: unknown): x is ErrorCode {
  return typeof x === 'string' && Object.hasOwn(ERRORS, x);
}

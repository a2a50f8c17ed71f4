import type { FastifyError } from 'fastify';
import { DcacheError, ERRORS, type ErrorCode, errorBody, isErrorCode } from '../errors.js';

const FASTIFY_CODES: Record<string, ErrorCode> = {
  FST_ERR_CTP_INVALID_JSON_BODY: 'INVALID_JSON',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'INVALID_JSON',
  FST_ERR_CTP_BODY_TOO_LARGE: 'PAYLOAD_TOO_LARGE',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'UNSUPPORTED_MEDIA_TYPE',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'BAD_REQUEST',
  FST_ERR_BAD_URL: 'INVALID_KEY',
  FST_ERR_ASYNC_CONSTRAINT: 'BAD_REQUEST',
};

/** Map any error thrown while serving to a catalogue code. */
export function codeOf(err: unknown): { code: ErrorCode; message: string } {
  if (err instanceof DcacheError) return { code: err.code, message: err.message };
  const e = err as FastifyError & { status?: number };
  const mapped = e?.code ? FASTIFY_CODES[e.code] : undefined;
  if (mapped)
    return {
      code: mapped,
      message: mapped === 'INVALID_KEY' ? 'the URL is not valid percent-encoding' : e.message,
    };
  if (e?.code && isErrorCode(e.code)) return { code: e.code, message: e.message };
  const status = e?.statusCode ?? e?.status;
  if (e instanceof SyntaxError || (status === 400 && /JSON/i.test(e?.message ?? ''))) {
    return { code: 'INVALID_JSON', message: 'the request body is not valid JSON' };
  }
  if (status === 413) return { code: 'PAYLOAD_TOO_LARGE', message: e.message };
  if (status === 415) return { code: 'UNSUPPORTED_MEDIA_TYPE', message: e.message };
  if (status === 404) return { code: 'NOT_FOUND', message: e.message };
  if (status === 405) return { code: 'METHOD_NOT_ALLOWED', message: e.message };
  if (status === 429) return { code: 'RATE_LIMITED', message: e.message };
  if (status !== undefined && status >= 400 && status < 500)
    return { code: 'BAD_REQUEST', message: e.message };
  return { code: 'INTERNAL', message: 'internal error' };
}

/** The logger an error answer is reported to (a request's logger, bound to its id). */
export interface ErrorLog {
  error(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

/** An error as the API answers it: status, catalogue code and JSON body. */
export interface ErrorAnswer {
  status: number;
  code: ErrorCode;
  body: Record<string, unknown>;
}

/**
 * The answer to an error thrown while serving, for every front end: the catalogue code and
 * status, the body (with the per-key `failed` map of an ALL_FAILED), and one log line for a 5xx
 * (error with the stack for a bug, warn for an upstream failure).
 */
export function errorAnswer(err: unknown, log: () => ErrorLog): ErrorAnswer {
  const { code, message } = codeOf(err);
  const status = ERRORS[code].status;
  if (status >= 500 && code === 'INTERNAL') log().error({ err }, 'unhandled error');
  else if (status >= 500) log().warn({ code, msg: message }, 'upstream error');
  const body: Record<string, unknown> = errorBody(code, message);
  if (err instanceof DcacheError && err.details?.failed) body.failed = err.details.failed;
  return { status, code, body };
}

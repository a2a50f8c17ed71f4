import {
  DcacheAbortError,
  DcacheClientError,
  DcacheNetworkError,
  DcacheTimeoutError,
} from '@dcache/client';

/** Exit codes of the `dcache` binary. */
export const EXIT = {
  /** The command did what was asked. */
  OK: 0,
  /** The operation failed (server error, unreachable proxy, partial batch, health not ok). */
  FAILED: 1,
  /** Bad command line or input (also a 400 from the server: the input was refused). */
  USAGE: 2,
  /** The key or node does not exist. */
  NOT_FOUND: 3,
} as const;

/** A bad command line or input; `usage` is the command's usage line. */
export class UsageError extends Error {
  readonly usage: string | undefined;
  constructor(message: string, usage?: string) {
    super(message);
    this.name = 'UsageError';
    this.usage = usage;
  }
}

/** A failure the command itself detected (exit 1, or `exit`), printed as `error CODE: message`. */
export class CommandError extends Error {
  readonly code: string;
  readonly exit: number;
  /** Extra fields of the `--json` error document (e.g. what `ring apply` made before failing). */
  readonly details: Record<string, unknown> | undefined;
  constructor(
    code: string,
    message: string,
    exit: number = EXIT.FAILED,
    details?: Record<string, unknown>,
  ) {
    super(message);
    this.name = 'CommandError';
    this.code = code;
    this.exit = exit;
    this.details = details;
  }
}

/** How an error is reported: stable code, one-line message, exit code. */
export interface Reported {
  code: string;
  message: string;
  exit: number;
  status?: number;
  details?: Record<string, unknown>;
}

const NOT_FOUND_CODES = new Set(['KEY_NOT_FOUND', 'NODE_NOT_FOUND']);

/** Classify any error a command threw. */
export function report(e: unknown, url: string): Reported {
  if (e instanceof UsageError) return { code: 'USAGE', message: e.message, exit: EXIT.USAGE };
  if (e instanceof CommandError)
    return {
      code: e.code,
      message: e.message,
      exit: e.exit,
      ...(e.details ? { details: e.details } : {}),
    };
  if (e instanceof DcacheClientError) {
    const exit = NOT_FOUND_CODES.has(e.code)
      ? EXIT.NOT_FOUND
      : e.status === 400 || e.status === 413
        ? EXIT.USAGE
        : EXIT.FAILED;
    let message = e.message;
    if (e.code === 'UNAUTHORIZED') message += ' (pass --token or set DCACHE_TOKEN)';
    if (e.code === 'NOT_FOUND' && /no route/.test(message))
      message += ` (is ${url} a dcache proxy of this version?)`;
    return { code: e.code, message, exit, status: e.status };
  }
  if (e instanceof DcacheTimeoutError) {
    return {
      code: 'TIMEOUT',
      message: `no answer from ${url} within ${e.timeoutMs} ms (raise --timeout)`,
      exit: EXIT.FAILED,
    };
  }
  if (e instanceof DcacheNetworkError) {
    if (e.code === 'UNREACHABLE') {
      const why = /\(([A-Z_]+)\)$/.exec(e.message)?.[1];
      return {
        code: 'UNREACHABLE',
        message: `cannot connect to ${url}${why ? ` (${why})` : ''}: is the proxy running? (set --url or DCACHE_URL)`,
        exit: EXIT.FAILED,
      };
    }
    return { code: e.code, message: e.message, exit: EXIT.FAILED };
  }
  if (e instanceof DcacheAbortError) return { code: 'ABORTED', message: e.message, exit: 130 };
  const err = e as Error;
  return {
    code: 'INTERNAL',
    message: `${err?.message ?? String(e)} (a bug in dcache: please report it)`,
    exit: EXIT.FAILED,
  };
}

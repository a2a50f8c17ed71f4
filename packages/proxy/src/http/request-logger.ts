import type { FastifyBaseLogger } from 'fastify';

type AnyLogFn = (...args: unknown[]) => void;
type Bindings = Parameters<FastifyBaseLogger['child']>[0];
type ChildLoggerOptions = NonNullable<Parameters<FastifyBaseLogger['child']>[1]>;

/**
 * A request's logger that makes its pino child (bound to the request id) on first use. Fastify
 * builds one child per request; with request logging off almost no request ever logs, so the
 * child (bindings serialised, redaction set up) was pure cost on the hot path.
 */
export class LazyRequestLogger {
  private readonly parent: FastifyBaseLogger;
  private readonly bindings: Bindings;
  private readonly opts: ChildLoggerOptions;
  private made: FastifyBaseLogger | undefined;

  constructor(parent: FastifyBaseLogger, bindings: Bindings, opts: ChildLoggerOptions) {
    this.parent = parent;
    this.bindings = bindings;
    this.opts = opts;
  }

  private get real(): FastifyBaseLogger {
    this.made ??= this.parent.child(this.bindings, this.opts);
    return this.made;
  }

  get level(): string {
    return this.made?.level ?? this.opts.level ?? this.parent.level;
  }

  set level(l: string) {
    this.real.level = l;
  }

  fatal(...a: unknown[]): void {
    (this.real.fatal as AnyLogFn)(...a);
  }

  error(...a: unknown[]): void {
    (this.real.error as AnyLogFn)(...a);
  }

  warn(...a: unknown[]): void {
    (this.real.warn as AnyLogFn)(...a);
  }

  info(...a: unknown[]): void {
    (this.real.info as AnyLogFn)(...a);
  }

  debug(...a: unknown[]): void {
    (this.real.debug as AnyLogFn)(...a);
  }

  trace(...a: unknown[]): void {
    (this.real.trace as AnyLogFn)(...a);
  }

  silent(...a: unknown[]): void {
    (this.real.silent as AnyLogFn)(...a);
  }

  child(b: Bindings, o?: ChildLoggerOptions): FastifyBaseLogger {
    return this.real.child(b, o);
  }
}

import type { MembershipHolder, RingSnapshot } from '../membership/membership-holder.js';
import { SECURITY_HEADERS } from './security-headers.js';

/** Content-Type of every JSON answer. */
export const JSON_TYPE = 'application/json; charset=utf-8';

/**
 * The headers every answer carries, for both front ends: the security headers, X-Ring-Version
 * and X-Ring-Checksum (the routing epoch the answer was served under), an embedder's headers if
 * any, X-Request-Id, and `Connection: close` while the proxy shuts down (a request in flight when
 * shutdown began must not keep its connection open: the drain waits for every connection).
 */
export class ResponseHead {
  private readonly holder: MembershipHolder;
  private readonly leave: ReadonlySet<string>;
  private readonly state: { readonly shuttingDown: boolean };
  private readonly embedder: (() => Record<string, string>) | undefined;
  private of: RingSnapshot | undefined;
  private fixed: string[] = [];
  // One array for every answer: both front ends read it synchronously and keep no reference.
  private readonly out: string[] = [];

  /** `leave`: header groups a benchmark cuts (`security-headers`, `ring-headers`, `request-id`). */
  constructor(
    holder: MembershipHolder,
    state: { readonly shuttingDown: boolean },
    embedder?: () => Record<string, string>,
    leave: ReadonlySet<string> = new Set(),
  ) {
    this.holder = holder;
    this.leave = leave;
    this.state = state;
    this.embedder = embedder;
  }

  /**
   * The headers of one answer as flat name/value pairs, in a reused array that the caller may
   * append to (Content-Type, Content-Length) and must use before the next call.
   */
  headers(requestId: string): string[] {
    const snap = this.holder.current;
    if (snap !== this.of) {
      this.of = snap;
      this.fixed = [
        ...(this.leave.has('security-headers') ? [] : SECURITY_HEADERS.flat()),
        ...(this.leave.has('ring-headers')
          ? []
          : ['x-ring-version', String(snap.version), 'x-ring-checksum', snap.checksum]),
      ];
    }
    const out = this.out;
    out.length = 0;
    const fixed = this.fixed;
    for (let i = 0; i < fixed.length; i++) out.push(fixed[i] as string);
    if (this.embedder) for (const [k, v] of Object.entries(this.embedder())) out.push(k, v);
    if (!this.leave.has('request-id')) out.push('x-request-id', requestId);
    if (this.state.shuttingDown) out.push('connection', 'close');
    return out;
  }
}

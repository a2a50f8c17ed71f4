import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { rawError } from '../errors.js';

const kLastResponse = Symbol('dcache.lastResponse');

/** A socket carrying the response of its latest request (our own property, set by `inTurn`). */
type OrderedSocket = Socket & { [kLastResponse]?: ServerResponse };

/** The one message of a request whose body did not arrive within the read timeout. */
export const BODY_TIMEOUT_MESSAGE = 'the request body was not received within the read timeout';

/**
 * Run `go` once the previous request of the same connection has been answered. Node dispatches
 * pipelined requests at once and only orders the answers; RFC 9112 §9.3.2 allows that for safe
 * methods only, so a GET pipelined after a PUT of the same key must wait to read what it wrote.
 */
export function inTurn(req: IncomingMessage, res: ServerResponse, go: () => void): void {
  const sock = req.socket as OrderedSocket;
  const prev = sock[kLastResponse];
  sock[kLastResponse] = res;
  if (prev === undefined || prev.writableFinished || prev.destroyed) go();
  else prev.once('close', go);
}

/**
 * True when an answer on this socket has started (its head is out) and not finished: a request
 * Node's parser refuses must not write an error into the middle of it.
 */
export function answerUnderway(socket: Socket): boolean {
  const res = (socket as OrderedSocket)[kLastResponse];
  return res?.headersSent === true && !res.writableFinished;
}

/**
 * Node's requestTimeout stops counting once the headers are in: a body trickling in a byte a
 * second would hold its connection for ever. Close it `ms` after the headers. A body that came
 * with its headers is complete once the parser has run over the rest of the packet, before the
 * next tick: only a body still missing then gets a timer.
 */
export function armBodyTimeout(req: IncomingMessage, res: ServerResponse, ms: number): void {
  process.nextTick(() => {
    if (req.complete || res.writableFinished) return;
    const timer = setTimeout(() => {
      if (req.complete) return;
      if (!res.headersSent) rawError(req.socket, 'BAD_REQUEST', BODY_TIMEOUT_MESSAGE);
      req.socket.destroy();
    }, ms);
    res.once('close', () => clearTimeout(timer));
  });
}

/**
 * Run `send` once the request's unread body has arrived (and been discarded), or `ms` after now.
 * A refused body (413 from Content-Length, a bad JSON body) closes the connection after the
 * answer, and closing over unread bytes makes the kernel reset the connection, which can discard
 * the answer before the client reads it; once the body is in, the close is clean.
 */
export function afterBody(req: IncomingMessage, send: () => void, ms = 2_000): void {
  if (req.complete || req.readableEnded) {
    send();
    return;
  }
  let sent = false;
  const go = () => {
    if (sent) return;
    sent = true;
    clearTimeout(timer);
    send();
  };
  const timer = setTimeout(go, ms);
  req.once('end', go);
  req.once('error', go);
  req.resume();
}

import { type ChildProcess, spawn } from 'node:child_process';
import { trackPid } from './cleanup.js';
import { waitFor } from './wait.js';

/** Options for `startProcess`. */
export interface ProcessOptions {
  env?: Record<string, string | undefined>;
  cwd?: string;
  /** Wait until GET on this URL answers (any status below 500) before resolving. */
  readyUrl?: string;
  /** Or wait until this text appears in stdout/stderr. */
  readyText?: string;
  readyTimeout?: number;
}

/** A child process the test controls, with its output captured. */
export interface TestProcess {
  readonly child: ChildProcess;
  readonly pid: number | undefined;
  /** Everything printed so far (stdout + stderr). */
  output(): string;
  stdout(): string;
  stderr(): string;
  /** Resolves with the exit code (or signal name) once the process ends. */
  readonly exited: Promise<number | string>;
  readonly running: boolean;
  signal(sig: NodeJS.Signals): void;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves with the exit code. */
  stop(graceMs?: number): Promise<number | string>;
}

/** Spawn a process, capture its output, optionally wait until it is ready. */
export async function startProcess(
  cmd: string,
  args: string[],
  opts: ProcessOptions = {},
): Promise<TestProcess> {
  const child = spawn(cmd, args, {
    cwd: opts.cwd,
    env: { ...process.env, ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  trackPid(child);
  let out = '';
  let so = '';
  let se = '';
  child.stdout?.on('data', (d: Buffer) => {
    out += d.toString();
    so += d.toString();
  });
  child.stderr?.on('data', (d: Buffer) => {
    out += d.toString();
    se += d.toString();
  });
  const exited = new Promise<number | string>((resolve) =>
    child.once('exit', (code, sig) => resolve(code ?? sig ?? 'unknown')),
  );
  const running = () => child.exitCode === null && child.signalCode === null;
  const proc: TestProcess = {
    child,
    pid: child.pid,
    output: () => out,
    stdout: () => so,
    stderr: () => se,
    exited,
    get running() {
      return running();
    },
    signal(sig) {
      if (running()) child.kill(sig);
    },
    async stop(graceMs = 10_000) {
      if (!running()) return exited;
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), graceMs);
      const code = await exited;
      clearTimeout(t);
      return code;
    },
  };
  const timeout = opts.readyTimeout ?? 20_000;
  if (opts.readyUrl) {
    const url = opts.readyUrl;
    await waitFor(
      async () => {
        if (!running()) throw new Error(`${cmd} exited before ready:\n${out}`);
        try {
          const r = await fetch(url, { signal: AbortSignal.timeout(1_000) });
          await r.arrayBuffer();
          return r.status < 500 || r.status === 503;
        } catch {
          return false;
        }
      },
      { timeout, interval: 50, message: `${url} to answer` },
    );
  } else if (opts.readyText) {
    const text = opts.readyText;
    await waitFor(
      () => {
        if (out.includes(text)) return true;
        if (!running()) throw new Error(`${cmd} exited before printing "${text}":\n${out}`);
        return false;
      },
      { timeout, interval: 25, message: `"${text}" in the output` },
    );
  }
  return proc;
}

import { readFile } from 'node:fs/promises';
import { UsageError } from './errors.js';

/**
 * What a lone `-` argument becomes before yargs parses the command line (yargs would turn a `-`
 * positional into `''` or `true`): "read stdin".
 */
export const STDIN_ARG = '\u0000stdin';

/** Prefix of arguments that came after `--` (taken literally, never as options). */
export const LITERAL_MARK = '\u0001';

/** Whether a file/value argument means stdin (omitted, `-`). */
export function isStdin(arg: string | undefined): boolean {
  return arg === undefined || arg === STDIN_ARG || arg === '-';
}

/** The text of `file`, or of stdin when `file` is omitted or `-`. */
export async function readInput(file: string | undefined): Promise<string> {
  if (!isStdin(file) && file !== undefined) {
    try {
      return await readFile(file, 'utf8');
    } catch (e) {
      throw new UsageError(
        `cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
      );
    }
  }
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** Parse JSON input, naming where it came from in the error. */
export function parseJsonInput(text: string, from: string): unknown {
  if (text.trim() === '') throw new UsageError(`${from} is empty: expected JSON`);
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    throw new UsageError(`${from} is not valid JSON: ${(e as Error).message}`);
  }
}

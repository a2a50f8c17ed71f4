import { readFile } from 'node:fs/promises';
import { UsageError } from './errors.js';

/** The text of `file`, or of stdin when `file` is undefined or `-`. */
export async function readInput(file: string | undefined): Promise<string> {
  if (file !== undefined && file !== '-') {
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

#!/usr/bin/env node
import { main } from './main.js';

// `dcache keys | head`: a closed pipe ends the listing quietly.
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code === 'EPIPE') process.exit(0);
  throw e;
});

// `main` resolves once a one-shot command is done (`serve`/`dev` never resolve): exit as soon
// as stdout is flushed, whatever handles are left.
main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
    process.stdout.write('', () => process.exit(code));
  },
  (e: unknown) => {
    process.stderr.write(`error INTERNAL: ${(e as Error)?.stack ?? String(e)}\n`);
    process.exit(1);
  },
);

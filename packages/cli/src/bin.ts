#!/usr/bin/env node
import { main } from './main.js';

// `dcache keys | head`: a closed pipe ends the listing quietly.
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code === 'EPIPE') process.exit(0);
  throw e;
});

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    process.stderr.write(`error INTERNAL: ${(e as Error)?.stack ?? String(e)}\n`);
    process.exitCode = 1;
  },
);

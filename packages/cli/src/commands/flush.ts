import { createInterface } from 'node:readline/promises';
import type { Argv } from 'yargs';
import { command, type Session } from '../context.js';
import { CommandError, EXIT, UsageError } from '../errors.js';
import { paint } from '../output.js';

async function confirm(question: string): Promise<boolean> {
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    const answer = await rl.question(question);
    return /^(y|yes)$/i.test(answer.trim());
  } finally {
    rl.close();
  }
}

/** `dcache flush [--yes]`: FLUSHDB on every node, after a confirmation. */
export function flushCommand(y: Argv, s: Session): Argv {
  return command(y, s, {
    command: 'flush',
    describe: 'Delete every key on every node (asks for confirmation unless --yes; admin token)',
    usage: 'dcache flush [--yes]',
    builder: (b) =>
      b.option('yes', {
        alias: 'y',
        type: 'boolean',
        default: false,
        describe: 'Do not ask for confirmation',
      }),
    handler: async (a, ctx) => {
      const client = ctx.client();
      if (!a.yes) {
        if (!process.stdin.isTTY)
          throw new UsageError(
            'refusing to flush without --yes: stdin is not a terminal to confirm on',
          );
        const ring = await client.ring();
        const ok = await confirm(
          `${paint(ctx.out.color, 'red', 'Delete every key')} on ${ring.nodes.length} nodes behind ${ctx.url}? Type "yes" to confirm: `,
        );
        if (!ok) throw new CommandError('CANCELLED', 'nothing was flushed', EXIT.FAILED);
      }
      const r = await client.flush();
      const failed = Object.entries(r.failed);
      if (ctx.out.json) ctx.out.emit(r);
      else {
        ctx.out.line(`flushed ${r.flushed_nodes} nodes`);
        for (const [id, code] of failed)
          ctx.out.line(paint(ctx.out.color, 'red', `not flushed: ${id} (${code})`));
      }
      if (failed.length > 0) {
        ctx.out.note(
          `${paint(ctx.out.color, 'red', 'error PARTIAL_FAILURE')}: ${failed.length} nodes were not flushed`,
        );
        return EXIT.FAILED;
      }
      return EXIT.OK;
    },
  });
}

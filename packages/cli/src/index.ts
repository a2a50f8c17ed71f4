/** @dcache/cli — the `dcache` admin binary (yargs) and the pieces it is built from. */

export { Session } from './context.js';
export { CommandError, EXIT, report, UsageError } from './errors.js';
export { buildCli, main, VERSION } from './main.js';
export { bytes, count, percent, table } from './output.js';
export {
  type KeyMoves,
  movesOf,
  type Plan,
  type PlanChange,
  type PlanNode,
  type PlanOptions,
  planChange,
  ringsFor,
  syntheticKey,
} from './plan.js';
export {
  type ApplyPlan,
  type ApplyStep,
  applySteps,
  diffRing,
  planApply,
} from './ring-apply.js';
export { type DesiredNode, parseRingFile } from './ring-file.js';

/**
 * @statespace/cli: the `statespace` command, also usable in process.
 *
 * @example
 * ```ts
 * import { main } from '@statespace/cli';
 * await main(['logits', './fixtures/hf-tiny/mamba2', '--ids', '3,1,4', '--json'], { out: console.log, err: console.error, isTTY: false });
 * ```
 * @packageDocumentation
 */
export { main, commands, type CommandDef } from './main.js';
export { type CliIO, processIO } from './io.js';
export {
  type GenerateFlags,
  type ModelFlags,
  type TextCodec,
  generateCommand,
  getRuntime,
  inspectCommand,
  loadCodec,
  logitsCommand,
  openCliModel,
  releaseRuntime,
} from './commands.js';

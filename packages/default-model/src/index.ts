/**
 * @statespace/default-model: the small model that ships with statespace, so that `statespace start`
 * generates text with no model hub in reach. A dense Granite 4.0 hybrid (7 Mamba-2 layers, 1 attention
 * layer, hidden size 256, vocabulary 4096, 7.4M parameters in f16) trained on the King James Bible;
 * its model card is `model/README.md`.
 *
 * @example
 * ```ts
 * import { fileURLToPath } from 'node:url';
 * import { Runtime } from '@statespace/core';
 * import { Session, loadModel } from '@statespace/hybrid';
 * import { defaultModelUrl } from '@statespace/default-model';
 *
 * const runtime = await Runtime.create();
 * const { model } = await loadModel(runtime, fileURLToPath(defaultModelUrl));
 * const session = new Session(model);
 * ```
 * @packageDocumentation
 */

/**
 * The model folder (config.json, model.safetensors, tokenizer.json, tokenizer_config.json): a `file:`
 * URL in Node, the address the bundler gives the package in a browser build. It ends in `/`, so
 * `new URL('config.json', defaultModelUrl)` names a file in it.
 *
 * @example
 * ```ts
 * import { fileURLToPath } from 'node:url';
 * const dir = fileURLToPath(defaultModelUrl); // .../node_modules/@statespace/default-model/model/
 * ```
 */
export const defaultModelUrl: URL = new URL('../model/', import.meta.url);

/**
 * The files in {@link defaultModelUrl} that a loader reads (the folder also holds the model card,
 * README.md).
 *
 * @example
 * ```ts
 * for (const name of defaultModelFiles) console.log(new URL(name, defaultModelUrl).href);
 * ```
 */
export const defaultModelFiles: readonly string[] = ['config.json', 'generation_config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json'];

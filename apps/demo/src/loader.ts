/**
 * Loading a model for the demo: a URL to a Hugging Face-layout folder
 * (config.json, model.safetensors or an index with shards, tokenizer.json) or
 * the files a user picked or dropped. Weights stream in with progress.
 */
import { type LoadProgress, type ModelFolder, openModel } from '@statespace/checkpoint';
import type { Runtime } from '@statespace/core';
import { type HybridModel, type ModelSpec, loadModel, patternOf } from '@statespace/hybrid';
import { describeError } from './errors.js';
import { folderListing, listedFiles } from './folder-listing.js';
import { TextCodec } from './text.js';

/** A loaded model with its text side. */
export interface DemoModel {
  model: HybridModel;
  spec: ModelSpec;
  text: TextCodec;
  /** Where it came from (URL or "N files"). */
  name: string;
  /** config.json `model_type` / architecture. */
  architecture: string;
  /** One letter per layer: M (Mamba-2), m (Mamba-1), A/* (attention), ... */
  pattern: string;
  /** Set when tokenizer.json exists but could not be used (the model still runs on ids). */
  tokenizerWarning?: string;
  loadMs: number;
}

/** How weight matrices are stored on the GPU ('keep': as in the file). SSM parameters and norms stay f32. */
export type WeightDtype = 'f32' | 'f16' | 'keep';

/** Where a model comes from. */
export type DemoSource = { kind: 'url'; url: string } | { kind: 'files'; files: File[] };

/** An absolute http(s) URL for a folder typed as `models/default/`, `/fixtures/x` or a full address (always ends with `/`). */
export function folderUrl(input: string, base: string): string {
  const url = new URL(input.trim(), base);
  let text = url.toString();
  // A link to a file of the folder (…/config.json) means the folder.
  text = text.replace(/\/(config\.json|model\.safetensors(\.index\.json)?|tokenizer\.json)$/, '/');
  return text.endsWith('/') ? text : `${text}/`;
}

/** Drops anything that is not a file of a model folder from a drop (hidden files, .git, ...). */
export function modelFilesOf(files: readonly File[]): File[] {
  return files.filter((f) => {
    const path = (f as File & { webkitRelativePath?: string }).webkitRelativePath || f.name;
    return !path.split('/').some((part) => part.startsWith('.'));
  });
}

/**
 * Opens a folder URL, with its listing when the server gives one: then absent
 * optional files are known absent without a request (and without a 404 in the console).
 */
export async function openQuietly(url: string, pageOrigin: string, fetchFn?: (input: string, init?: RequestInit) => Promise<Response>): Promise<ModelFolder> {
  const options = fetchFn ? { fetch: fetchFn as typeof fetch } : {};
  const [folder, listing] = await Promise.all([openModel(url, options), folderListing(url, pageOrigin, fetchFn)]);
  return listing ? openModel(listedFiles(folder.files, listing)) : folder;
}

/**
 * Opens and loads a model; `onProgress` sees each chunk of weights uploaded.
 *
 * @throws the checkpoint's and the model's StatespaceErrors (file missing, corrupt, unknown architecture, ...).
 */
export async function loadDemoModel(
  runtime: Runtime,
  source: DemoSource,
  options: { weightDtype?: WeightDtype; onProgress?: (p: LoadProgress) => void; onStage?: (stage: string) => void } = {},
): Promise<DemoModel> {
  const t0 = performance.now();
  options.onStage?.('reading config.json');
  const folder: ModelFolder = source.kind === 'url' ? await openQuietly(folderUrl(source.url, location.href), location.origin) : await openModel(modelFilesOf(source.files));
  const name = source.kind === 'url' ? folderUrl(source.url, location.href) : `${source.files.length} local file${source.files.length === 1 ? '' : 's'}`;
  // Read the config first so a missing or broken config.json is reported before any weights move.
  const config = await folder.config();
  const architecture = String(config.json.model_type ?? (config.json.architectures as string[] | undefined)?.[0] ?? 'unknown');
  options.onStage?.('loading weights');
  const { model, spec } = await loadModel(runtime, folder, { weightDtype: options.weightDtype ?? 'f32', onProgress: options.onProgress });
  options.onStage?.('reading the tokenizer');
  let text: TextCodec;
  let tokenizerWarning: string | undefined;
  try {
    text = await TextCodec.fromFolder(folder, spec.vocabSize);
  } catch (error) {
    const { code, message } = describeError(error);
    tokenizerWarning = `${code ? `${code}: ` : ''}${message}`;
    text = TextCodec.idsOnly(spec.vocabSize);
  }
  return { model, spec, text, name, architecture, pattern: patternOf(spec), tokenizerWarning, loadMs: performance.now() - t0 };
}

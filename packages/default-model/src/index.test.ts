/** The package points at a complete model folder (copied from models/default by the build). */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { defaultModelFiles, defaultModelUrl } from './index.js';

describe('@statespace/default-model', () => {
  it('defaultModelUrl names a folder holding every listed file, identical to models/default', () => {
    const dir = fileURLToPath(defaultModelUrl);
    expect(dir.endsWith('/model/')).toBe(true);
    const repo = fileURLToPath(new URL('../../../models/default/', import.meta.url));
    for (const name of defaultModelFiles) {
      expect(existsSync(`${dir}${name}`), `${dir}${name} (build the package first)`).toBe(true);
      expect(statSync(`${dir}${name}`).size, name).toBe(statSync(`${repo}${name}`).size);
    }
    const config = JSON.parse(readFileSync(`${dir}config.json`, 'utf8'));
    expect(config.model_type).toBe('granitemoehybrid');
    expect(config.vocab_size).toBe(4096);
  });
});

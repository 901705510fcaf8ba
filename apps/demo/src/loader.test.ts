import { describe, expect, it } from 'vitest';
import { folderUrl, modelFilesOf } from './loader.js';

describe('folderUrl', () => {
  const base = 'http://127.0.0.1:5173/demo/index.html?x=1';
  it('resolves relative folders against the page and ends them with a slash', () => {
    expect(folderUrl('models/default', base)).toBe('http://127.0.0.1:5173/demo/models/default/');
    expect(folderUrl('/fixtures/mamba2/', base)).toBe('http://127.0.0.1:5173/fixtures/mamba2/');
  });
  it('keeps absolute URLs and turns a link to a file of the folder into the folder', () => {
    expect(folderUrl(' https://huggingface.co/org/repo/resolve/main/ ', base)).toBe('https://huggingface.co/org/repo/resolve/main/');
    expect(folderUrl('https://example.com/m/config.json', base)).toBe('https://example.com/m/');
    expect(folderUrl('https://example.com/m/model.safetensors.index.json', base)).toBe('https://example.com/m/');
  });
});

describe('modelFilesOf', () => {
  it('drops hidden files and folders', () => {
    const file = (name: string, relative = '') => Object.assign(new File(['x'], name), { webkitRelativePath: relative });
    const kept = modelFilesOf([file('config.json', 'm/config.json'), file('.DS_Store'), file('HEAD', 'm/.git/HEAD'), file('model.safetensors')]);
    expect(kept.map((f) => f.name)).toEqual(['config.json', 'model.safetensors']);
  });
});

// Redraws the decode-vs-context chart from a saved benchmark JSON:  tsx src/chart-from-json.ts results/h100-statespace.json results/decode-vs-context.svg
import { readFileSync, writeFileSync } from 'node:fs';
import { lineChartSvg } from './chart.js';

const [input, output] = process.argv.slice(2);
const data = JSON.parse(readFileSync(input, 'utf8'));
const label = String(data.adapter).startsWith('nvidia') ? 'NVIDIA H100 through Dawn/Vulkan' : data.adapter;
writeFileSync(output, lineChartSvg('Decode time per token vs context', 'context length (tokens)', 'ms per token', data.chart, `${label}, 8 layers of width 768, random weights (${data.dtype})`));

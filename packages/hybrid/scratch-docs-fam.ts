import { readModelSpec, patternOf, families } from '@statespace/hybrid';
for (const d of ['mamba1','falcon_mamba','mamba2','llama','jamba','bamba','granitemoehybrid','granitemoehybrid_moe','nemotron_h','falcon_h1','qwen3_next','zamba2']) {
  const { spec, family } = await readModelSpec(`../../fixtures/hf-tiny/${d}`);
  const kinds = new Set(spec.blocks.flatMap((b) => b.mixers.map((m) => m.kind).concat(b.channel ? [b.channel.kind] : []).concat(b.sharedBlock ? ['shared'] : [])));
  console.log(d, family.modelTypes.join(','), family.architecture, patternOf(spec), [...kinds].join(','));
}
console.log(families.map((f) => f.modelTypes[0]).join(' '));

import { Runtime } from '@statespace/core';
import { loadModel, Session } from '@statespace/hybrid';
import { loadTokenizer, TextStreamer } from '@statespace/tokenizer';

const runtime = await Runtime.create(); // Dawn in Node: a GPU, or SwiftShader on a CPU-only machine
console.log(`adapter: ${runtime.adapterName}`);

const dir = '../../models/default';
const { model } = await loadModel(runtime, dir, { weightDtype: 'f16' });
const tokenizer = await loadTokenizer(dir);

const session = new Session(model);
const prompt = tokenizer.encode('And the LORD said unto Moses,');
const streamer = new TextStreamer(tokenizer, { skipSpecialTokens: true, onText: (text) => process.stdout.write(text) });
for await (const token of session.generate(prompt, { maxNewTokens: 32, temperature: 0.7, topP: 0.9, seed: 1 })) {
  streamer.put(token);
}
streamer.end();
process.stdout.write('\n');

session.dispose();
model.dispose();
runtime.destroy();

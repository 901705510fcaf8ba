import { moeRoutingReference, concatLastDimReference, argmaxHost, randomWeightValues, channelWeightShapes, sub } from '@statespace/hybrid';
console.log(Array.from(moeRoutingReference(new Float32Array([0, 1, 2, 3]), 4, 2, true)).map((x) => x.toFixed(3)));
console.log(Array.from(concatLastDimReference(new Float32Array([1, 2]), new Float32Array([3, 4]), 2, 1, 1)));
console.log(argmaxHost([0.1, 2, 2, -1]));
console.log(Array.from(randomWeightValues({ name: 'layers.0.mixer.A_log', shape: [4, 3], f32: true, init: 'a_log' }, 1)).map((x) => Math.exp(x)));
console.log(JSON.stringify(channelWeightShapes({ kind: 'relu2', prefix: 'layers.1.mlp.', intermediate: 256 }, 64)));
console.log(Object.keys(sub({ 'model.norm.weight': 1, 'lm_head.weight': 2 } as never, 'model.')));

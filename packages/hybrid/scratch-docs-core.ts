import * as c from '@statespace/core';
import * as t from '@statespace/core/testing';
console.log(c.f32ToF16Bits(1).toString(16), c.f32ToBf16Bits(1).toString(16), c.f16BitsToF32(0x3c00), c.bf16BitsToF32(0x3f80));
console.log(c.bytesPerElement('f16'), c.storageBytes('f16', 3), c.numel([2, 3, 4]), c.uniformByteSize({ a: 'u32', b: 'f32' }), c.uniformByteSize({ a: 'u32', b: 'f32', c: 'u32', d: 'u32', e: 'f32' }));
console.log(c.linearDispatch(100000), c.linearDispatch(10));
console.log(Array.from(c.f32To16([1, 0.5], 'f16')).map((x) => x.toString(16)), Array.from(c.f16ToF32(new Uint16Array([0x3c00, 0x3800]), 'f16')));
console.log(Array.from(c.roundTo(new Float32Array([0.1]), 'bf16')), c.wgslStorageType('bf16'));
console.log(c.erfReference(0.5), c.unaryReference('silu', 1), c.binaryReference('silu_mul', 1, 2));
console.log(Array.from(c.softmaxReference(new Float32Array([0, Math.log(3)]), 2)));
console.log(c.topKReference(new Float32Array([1, 5, 3, 5]), 4, 2));
console.log(Array.from(c.gluReference(new Float32Array([1, 2]), 1, 'silu')));
console.log(Array.from(c.embeddingReference(new Int32Array([1]), new Float32Array([1, 2, 3, 4]), 2)));
console.log(Array.from(c.normReference('rms', new Float32Array([3, 4]), new Float32Array([1, 1]), 2, 0)));
console.log(Array.from(c.matmulReference(new Float32Array([1, 2, 3, 4, 5, 6]), new Float32Array([1, 0, 0, 0, 1, 0]), 2, 2, 3)));
const bytes = c.packState(5, [new Float32Array([1, 2]).buffer]); const u = c.unpackState(bytes); console.log(u.length, new Float32Array(u.parts[0].slice().buffer));
console.log(c.wgslBindings({ n: 'u32' }, [{ name: 'x', type: 'f32', access: 'read' }, { name: 'y', type: 'f32', access: 'read_write' }]));
console.log(c.wgslLoadFloat('loadW', 'w', 'f16'));
console.log(t.relError([1, 2], [1, 2]), t.maxAbsError([1, 2], [1, 2.5]), t.randn(3, 1), t.randu(2, 1, -1, 1), t.rng(1)());
try { c.assertShape('myOp', 'x', [2, 3], { batch: 2, d: 4 }); } catch (e) { console.log((e as Error).message); }
try { c.assertArg(3 > 4, 'myOp', 'k must be at most D'); } catch (e) { console.log((e as c.StatespaceError).code, (e as Error).message); }
try { c.validateShape([2, -1], 'x'); } catch (e) { console.log((e as Error).message); }
const d = c.createMatmulKernel({ M: 1, N: 4, K: 8 }); console.log(d.name, d.cacheKey, d.dispatch);

/**
 * The register-tiled inner product shared by the SSD matmul kernels: a 16 × 16
 * workgroup computes a 64 × 64 output tile, each thread a 4 × 4 block with rows
 * `lid.y + 16·i` and columns `lid.x + 16·j`, from two (TK × 64) slices in
 * workgroup memory `As` ([k][row]) and `Bs` ([k][col]). The same scheme as core's matmul.
 */

/** Output tile edge. */
export const TILE = 64;
/** Depth of one slice staged in workgroup memory. */
export const TILE_K = 16;

/** WGSL: `acc[i·4 + j] += Σ_k As[k][row_i] · Bs[k][col_j]` over one staged slice (needs `acc`, `As`, `Bs`, `lid`). */
export const WGSL_TILE_ACCUMULATE = `for (var k = 0u; k < TK; k++) {
      var a: array<f32, 4>;
      var bb: array<f32, 4>;
      for (var i = 0u; i < 4u; i++) { a[i] = As[k * TS + lid.y + 16u * i]; bb[i] = Bs[k * TS + lid.x + 16u * i]; }
      for (var i = 0u; i < 4u; i++) {
        for (var j = 0u; j < 4u; j++) { acc[i * 4u + j] += a[i] * bb[j]; }
      }
    }`;

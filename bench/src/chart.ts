/**
 * A small SVG line chart for the README (decode time per token vs context).
 * Written by hand because the charting libraries that fit (uPlot, Chart.js)
 * draw into a browser canvas; the benchmark runs in Node and commits a file.
 */
export interface Series {
  name: string;
  points: [number, number][];
}

const COLORS = ['#2563eb', '#16a34a', '#dc2626', '#9333ea', '#ea580c'];

/** Renders series on log2-x, linear-y axes. */
export function lineChartSvg(title: string, xLabel: string, yLabel: string, series: Series[], subtitle = ''): string {
  const W = 720;
  const H = 420;
  const m = { l: 70, r: 170, t: 40, b: 55 };
  const xs = series.flatMap((s) => s.points.map((p) => Math.log2(p[0])));
  const ys = series.flatMap((s) => s.points.map((p) => p[1]));
  const x0 = Math.min(...xs);
  const x1 = Math.max(...xs);
  const y1 = Math.max(...ys) * 1.1 || 1;
  const px = (x: number) => m.l + ((Math.log2(x) - x0) / Math.max(1e-9, x1 - x0)) * (W - m.l - m.r);
  const py = (y: number) => H - m.b - (y / y1) * (H - m.t - m.b);
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="system-ui, sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${m.l}" y="20" font-size="15" font-weight="600">${title}</text>`,
    `<text x="${m.l}" y="34" font-size="11" fill="#6b7280">${subtitle}</text>`,
  ];
  for (let i = 0; i <= 5; i++) {
    const y = (y1 * i) / 5;
    parts.push(`<line x1="${m.l}" x2="${W - m.r}" y1="${py(y)}" y2="${py(y)}" stroke="#e5e7eb"/>`, `<text x="${m.l - 8}" y="${py(y) + 4}" text-anchor="end">${y.toFixed(y1 < 10 ? 2 : 0)}</text>`);
  }
  const ticks = [...new Set(series.flatMap((s) => s.points.map((p) => p[0])))].sort((a, b) => a - b);
  for (const t of ticks) parts.push(`<text x="${px(t)}" y="${H - m.b + 18}" text-anchor="middle">${t >= 1024 ? `${t / 1024}k` : t}</text>`);
  parts.push(`<text x="${(m.l + W - m.r) / 2}" y="${H - 12}" text-anchor="middle">${xLabel}</text>`);
  parts.push(`<text transform="translate(18 ${(m.t + H - m.b) / 2}) rotate(-90)" text-anchor="middle">${yLabel}</text>`);
  series.forEach((s, i) => {
    const c = COLORS[i % COLORS.length];
    const d = s.points.map((p, j) => `${j ? 'L' : 'M'}${px(p[0]).toFixed(1)},${py(p[1]).toFixed(1)}`).join(' ');
    parts.push(`<path d="${d}" fill="none" stroke="${c}" stroke-width="2.5"/>`);
    for (const p of s.points) parts.push(`<circle cx="${px(p[0])}" cy="${py(p[1])}" r="3.5" fill="${c}"/>`);
    parts.push(`<rect x="${W - m.r + 15}" y="${m.t + 10 + i * 22}" width="14" height="4" fill="${c}"/>`, `<text x="${W - m.r + 35}" y="${m.t + 15 + i * 22}">${s.name}</text>`);
  });
  parts.push('</svg>');
  return parts.join('\n');
}

// The bench's chart: ms per tenant against p, one line per metric, as a small SVG with no
// dependency (a few polylines and labels). run.ts writes bench/results/apply.svg with it.

export interface Series {
  label: string;
  color: string;
  /** ms per tenant at each p (a missing or NaN value leaves a gap). */
  points: { p: number; ms: number }[];
  dashed?: boolean;
}

const W = 780;
const H = 360;
const M = { left: 56, right: 220, top: 36, bottom: 44 };

const esc = (t: string) => t.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** A step of 1, 2 or 5 times a power of ten that gives about five ticks up to max. */
function tickStep(max: number): number {
  const raw = max / 5;
  const pow = 10 ** Math.floor(Math.log10(raw));
  return [1, 2, 5, 10].map((k) => k * pow).find((s) => s >= raw) ?? raw;
}

export function lineChart(title: string, ps: number[], series: Series[]): string {
  const all = series.flatMap((s) => s.points.map((x) => x.ms)).filter((v) => Number.isFinite(v));
  const step = tickStep(Math.max(...all, 1));
  const top = Math.ceil(Math.max(...all, 1) / step) * step;
  const pw = W - M.left - M.right;
  const ph = H - M.top - M.bottom;
  // p is spaced by its rank, not its value: 1, 2, 4, 8 sit evenly.
  const x = (p: number) => M.left + (ps.length === 1 ? pw / 2 : (ps.indexOf(p) / (ps.length - 1)) * pw);
  const y = (ms: number) => M.top + ph - (ms / top) * ph;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${M.left}" y="20" font-size="13" font-weight="bold">${esc(title)}</text>`,
  ];
  for (let v = 0; v <= top + 1e-9; v += step) {
    out.push(`<line x1="${M.left}" x2="${M.left + pw}" y1="${y(v)}" y2="${y(v)}" stroke="#ddd"/>`,
             `<text x="${M.left - 6}" y="${y(v) + 4}" text-anchor="end">${+v.toFixed(2)}</text>`);
  }
  for (const p of ps) out.push(`<text x="${x(p)}" y="${M.top + ph + 18}" text-anchor="middle">p${p}</text>`);
  out.push(`<text x="${M.left + pw / 2}" y="${H - 8}" text-anchor="middle">parallel connections</text>`,
           `<text x="14" y="${M.top + ph / 2}" text-anchor="middle" transform="rotate(-90 14 ${M.top + ph / 2})">ms per tenant</text>`);
  series.forEach((s, i) => {
    const pts = s.points.filter((q) => Number.isFinite(q.ms) && ps.includes(q.p));
    const dash = s.dashed ? ' stroke-dasharray="6 4"' : '';
    if (pts.length > 1) {
      out.push(`<polyline fill="none" stroke="${s.color}" stroke-width="2"${dash} points="${pts.map((q) => `${x(q.p)},${y(q.ms)}`).join(' ')}"/>`);
    }
    for (const q of pts) out.push(`<circle cx="${x(q.p)}" cy="${y(q.ms)}" r="3" fill="${s.color}"/>`);
    const ly = M.top + 10 + i * 20;
    out.push(`<line x1="${W - M.right + 16}" x2="${W - M.right + 40}" y1="${ly}" y2="${ly}" stroke="${s.color}" stroke-width="2"${dash}/>`,
             `<text x="${W - M.right + 46}" y="${ly + 4}">${esc(s.label)}</text>`);
  });
  out.push('</svg>');
  return out.join('\n') + '\n';
}

// A small hand-drawn SVG line chart: lines against steps, a shaded band, axes with a few ticks.
"use strict";

const SVG_NS = "http://www.w3.org/2000/svg";

function svgEl(tag, attrs, parent) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v);
  if (parent) parent.appendChild(el);
  return el;
}

function niceTicks(lo, hi, n) {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / n, mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 5, 10].map(m => m * mag).find(s => s >= raw);
  const out = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + 1e-12; t += step) out.push(+t.toPrecision(12));
  return out;
}

// series: [{name, color, points: [[x, y], ...]}]; band: [x0, x1] or null
function lineChart(svg, series, band) {
  while (svg.firstChild) svg.removeChild(svg.firstChild);
  const W = +svg.getAttribute("width"), H = +svg.getAttribute("height");
  const m = {l: 48, r: 8, t: 8, b: 34};
  const pts = series.flatMap(s => s.points).filter(p => p[1] !== null && isFinite(p[1]));
  if (!pts.length) { svgEl("text", {x: 60, y: 40}, svg).textContent = "no evaluations yet"; return; }
  let [x0, x1] = [Math.min(...pts.map(p => p[0])), Math.max(...pts.map(p => p[0]))];
  let [y0, y1] = [Math.min(...pts.map(p => p[1])), Math.max(...pts.map(p => p[1]))];
  if (band) { x0 = Math.min(x0, band[0]); x1 = Math.max(x1, band[1]); }
  if (x1 === x0) x1 = x0 + 1;
  if (y1 === y0) { y0 -= Math.abs(y0) * 0.05 + 1e-9; y1 += Math.abs(y1) * 0.05 + 1e-9; }
  const sx = x => m.l + (x - x0) / (x1 - x0) * (W - m.l - m.r);
  const sy = y => H - m.b - (y - y0) / (y1 - y0) * (H - m.t - m.b);
  if (band) svgEl("rect", {class: "band", x: sx(band[0]), y: m.t, width: Math.max(sx(band[1]) - sx(band[0]), 1),
                           height: H - m.t - m.b}, svg);
  svgEl("line", {class: "axis", x1: m.l, y1: H - m.b, x2: W - m.r, y2: H - m.b}, svg);
  svgEl("line", {class: "axis", x1: m.l, y1: m.t, x2: m.l, y2: H - m.b}, svg);
  for (const t of niceTicks(x0, x1, 5)) {
    svgEl("text", {x: sx(t), y: H - m.b + 12, "text-anchor": "middle"}, svg).textContent = String(t);
  }
  for (const t of niceTicks(y0, y1, 4)) {
    svgEl("text", {x: m.l - 4, y: sy(t) + 3, "text-anchor": "end"}, svg).textContent = t.toPrecision(3);
  }
  svgEl("text", {x: W - m.r, y: H - 2, "text-anchor": "end"}, svg).textContent = "step";
  let lx = m.l + 4;
  for (const s of series) {
    const good = s.points.filter(p => p[1] !== null && isFinite(p[1]));
    svgEl("polyline", {class: "series", stroke: s.color,
                       points: good.map(p => `${sx(p[0]).toFixed(1)},${sy(p[1]).toFixed(1)}`).join(" ")}, svg);
    svgEl("rect", {x: lx, y: H - 12, width: 10, height: 3, fill: s.color}, svg);
    const label = svgEl("text", {x: lx + 13, y: H - 8}, svg);
    label.textContent = s.name;
    lx += 20 + 6 * s.name.length;
  }
}

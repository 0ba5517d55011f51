// A horizontal SVG bar chart: one bar per label, with the count written next to it.
const NS = "http://www.w3.org/2000/svg";

function svgEl(tag, attrs, text) {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

// noData empties container and, when there is nothing to draw, says so and returns true.
function noData(container, data) {
  container.replaceChildren();
  if (data.length) return false;
  const p = document.createElement("p");
  p.className = "muted";
  p.textContent = "No data yet.";
  container.append(p);
  return true;
}

// barChart replaces container's content with a chart of data ([[label, count], …]).
export function barChart(container, data, { unit = "" } = {}) {
  if (noData(container, data)) return;
  const rowH = 28, labelW = 130, countW = 70, width = 560;
  const barMax = width - labelW - countW;
  const max = Math.max(...data.map((d) => d[1]), 1);
  const svg = svgEl("svg", {
    viewBox: `0 0 ${width} ${data.length * rowH + 4}`, class: "bar-chart", role: "img",
    "aria-label": data.map(([l, n]) => `${l}: ${n}${unit}`).join(", "),
  });
  data.forEach(([label, n], i) => {
    const y = i * rowH + 2;
    svg.append(svgEl("text", { x: labelW - 8, y: y + rowH / 2 + 5, "text-anchor": "end", class: "chart-label" }, label));
    const w = Math.max(2, Math.round((n / max) * barMax));
    const bar = svgEl("rect", { x: labelW, y: y + 4, width: w, height: rowH - 8, rx: 3, class: "chart-bar" });
    bar.append(svgEl("title", {}, `${label}: ${n}${unit}`));
    svg.append(bar);
    svg.append(svgEl("text", { x: labelW + w + 6, y: y + rowH / 2 + 5, class: "chart-count" }, `${n}${unit}`));
  });
  container.append(svg);
}

// lineChart replaces container's content with values over time: points is [[time (ms),
// value], …] oldest first. With step, a value holds until the next point (counts, presence).
// The newest value and the time span are written on the chart and in its accessible name.
export function lineChart(container, points, { label = "", unit = "", step = false, format = String } = {}) {
  if (noData(container, points)) return;
  const width = 560, height = 150, left = 64, right = 12, top = 12, bottom = 22;
  const t0 = points[0][0], t1 = Math.max(points[points.length - 1][0], t0 + 1);
  let lo = Math.min(...points.map((p) => p[1])), hi = Math.max(...points.map((p) => p[1]));
  if (lo > 0 && lo / (hi || 1) > 0.5) lo = Math.floor(lo * 0.9);
  if (lo > 0) lo = 0;
  if (hi === lo) hi = lo + 1;
  const x = (t) => left + ((t - t0) / (t1 - t0)) * (width - left - right);
  const y = (v) => top + (1 - (v - lo) / (hi - lo)) * (height - top - bottom);
  const coords = [];
  points.forEach(([t, v], i) => {
    if (step && i > 0) coords.push([x(t), y(points[i - 1][1])]);
    coords.push([x(t), y(v)]);
  });
  const last = points[points.length - 1];
  const when = (t) => new Date(t).toLocaleString([], { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
  const svg = svgEl("svg", {
    viewBox: `0 0 ${width} ${height}`, class: "line-chart", role: "img",
    "aria-label": `${label}: ${points.length} points from ${when(t0)} to ${when(last[0])}, now ${format(last[1])}${unit}`,
  });
  svg.append(
    svgEl("line", { x1: left, y1: y(lo), x2: width - right, y2: y(lo), class: "chart-axis" }),
    svgEl("text", { x: left - 6, y: y(hi) + 4, "text-anchor": "end", class: "chart-label" }, `${format(hi)}${unit}`),
    svgEl("text", { x: left - 6, y: y(lo), "text-anchor": "end", class: "chart-label" }, `${format(lo)}${unit}`),
    svgEl("text", { x: left, y: height - 4, class: "chart-label" }, when(t0)),
    svgEl("text", { x: width - right, y: height - 4, "text-anchor": "end", class: "chart-label" }, when(last[0])),
    svgEl("polyline", { points: coords.map(([a, b]) => `${a.toFixed(1)},${b.toFixed(1)}`).join(" "), class: "chart-line", fill: "none" }),
  );
  const dot = svgEl("circle", { cx: x(last[0]), cy: y(last[1]), r: 3.5, class: "chart-dot" });
  dot.append(svgEl("title", {}, `${when(last[0])}: ${format(last[1])}${unit}`));
  svg.append(dot);
  container.append(svg);
}

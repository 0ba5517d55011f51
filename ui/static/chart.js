// A horizontal SVG bar chart: one bar per label, with the count written next to it.
const NS = "http://www.w3.org/2000/svg";

function svgEl(tag, attrs, text) {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

// barChart replaces container's content with a chart of data ([[label, count], …]).
export function barChart(container, data, { unit = "" } = {}) {
  container.replaceChildren();
  if (!data.length) {
    const p = document.createElement("p");
    p.className = "muted";
    p.textContent = "No data yet.";
    container.append(p);
    return;
  }
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

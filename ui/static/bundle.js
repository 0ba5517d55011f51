// Provisioning downloads shared by the pages that create devices or rotate their
// credentials: the answer (deviceCredentialsResponse) carries the bundle as JSON and as an
// ESP-IDF NVS partition CSV, secret included, and warnings about the bundle's addresses.
import { downloadLink, el } from "./api.js";

// provisioningDownloads returns the elements to show beside a new secret: a warning per
// problem with the bundle (a broker host of localhost that devices cannot reach), then a
// download link for the JSON bundle (Linux agent, espadmin sim) and one for the NVS CSV
// (nvs_partition_gen.py, then esptool).
export function provisioningDownloads(resp) {
  const id = resp.id;
  const json = el("a", { class: "button", "data-download": "bundle-json" }, "Download provisioning bundle (JSON)");
  downloadLink(json, `espadmin-${id}.json`, JSON.stringify(resp.provisioning, null, 2));
  const out = (resp.provisioning_warnings || []).map((w) => el("p", { class: "notice", role: "alert", "data-f": "bundle-warning" }, "⚠ ", w));
  const links = el("p", { class: "downloads" }, json);
  if (resp.provisioning_nvs_csv) {
    const csv = el("a", { class: "button", "data-download": "bundle-nvs-csv" }, "Download NVS partition CSV");
    downloadLink(csv, `espadmin-${id}.csv`, resp.provisioning_nvs_csv, "text/csv");
    links.append(" ", csv);
  }
  out.push(links);
  return out;
}

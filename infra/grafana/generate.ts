// Writes the dashboards of dashboards.ts to infra/grafana/*.json: `npx tsx infra/grafana/generate.ts`.
// test/unit/grafana.test.ts fails when the files and the code disagree.
import { writeFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { buildDashboards, dashboardText } from "./dashboards.ts";

const dir = path.dirname(fileURLToPath(import.meta.url));
for (const [file, dashboard] of Object.entries(buildDashboards())) {
  await writeFile(path.join(dir, file), dashboardText(dashboard));
  console.log(`wrote infra/grafana/${file}`);
}

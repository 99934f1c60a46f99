// Generates a migration from the difference between the entities and the
// schema the committed migrations build (run: npm run migration:create).
// Review the file it writes, then list it in src/store/migrations/index.ts.
import { openOrm, migrate } from "../src/store/orm.js";
import { startEmbeddedPostgres } from "../src/store/embedded-postgres.js";
import { mkdtempSync, chmodSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const dir = mkdtempSync(join(tmpdir(), "jobs-migration-"));
chmodSync(dir, 0o755);
const pgServer = await startEmbeddedPostgres({ dataDir: join(dir, "pg"), port: 0, log: () => {} });
try {
  const orm = await openOrm({ databaseUrl: pgServer.url, poolSize: 2, acquireTimeoutMs: 5000 });
  await migrate(orm, pgServer.url);
  const result = await orm.migrator.create("src/store/migrations", false, false, process.argv[2]);
  console.log(result.fileName ? `wrote ${result.fileName}` : "no schema changes");
  await orm.close();
} finally {
  await pgServer.stop();
}

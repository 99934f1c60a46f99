// jobsctl serve: start, print how to reach the server, drain on SIGTERM/SIGINT.

import { parseArgs } from "node:util";
import { startApp } from "../app.js";
import { loadConfig } from "../config.js";
import { createLogger } from "../log.js";
import { EXIT } from "./exit-codes.js";

export async function runServe(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: { "no-migrate": { type: "boolean" }, help: { type: "boolean", short: "h" } },
  });
  if (values.help) {
    process.stdout.write(
      "Usage: jobsctl serve [--no-migrate]\n\nRuns the server. Configuration comes from the environment (README: Configuration).\n--no-migrate  do not apply pending migrations at start (MIGRATE_ON_START=false)\n",
    );
    return EXIT.ok;
  }
  const config = loadConfig();
  const log = createLogger(config.logLevel);
  const app = await startApp(config, log, values["no-migrate"] ? { migrate: false } : {});

  // For people, not for log collectors: on stderr, and never as a log line.
  const lines = [`jobs is serving gRPC, gRPC-Web and Connect on ${app.url}`];
  if (app.devToken) {
    lines.push(
      `embedded PostgreSQL: ${config.dataDir}/pg`,
      `development token (service "dev", jobs:read + jobs:write), also in ${config.dataDir}/dev-token:`,
      `  ${app.devToken}`,
      `try: npx buf curl --protocol grpc --http2-prior-knowledge -H "authorization: Bearer $(cat ${config.dataDir}/dev-token)" ${app.url}/jobs.v1.JobService/ListJobs`,
    );
  }
  process.stderr.write(`${lines.join("\n")}\n`);

  await new Promise<void>((resolve) => {
    const onSignal = (signal: NodeJS.Signals) => {
      log.info("signal received", { signal });
      resolve();
    };
    process.once("SIGTERM", onSignal);
    process.once("SIGINT", onSignal);
  });
  await app.stop();
  return EXIT.ok;
}

// How client commands reach a server: --server / JOBS_SERVER, and a token from
// --token / JOBS_TOKEN, else the development token the embedded server wrote.

import { existsSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { type Client, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { type Command, Option } from "commander";
import { JobService } from "../gen/jobs/v1/job_service_pb.js";
import { UsageError } from "./exit-codes.js";

export const DEFAULT_SERVER = "http://127.0.0.1:50051";

export interface ClientOptions {
  readonly server: string;
  readonly token?: string;
  readonly json?: boolean;
}

/** The options every client command takes. */
export function addClientOptions(command: Command): Command {
  return command
    .addOption(new Option("--server <url>", "the server to call").env("JOBS_SERVER").default(DEFAULT_SERVER).helpGroup("Connection:"))
    .addOption(
      new Option("--token <token>", "bearer token (default: JOBS_DATA_DIR/dev-token of a local embedded server)").env("JOBS_TOKEN").helpGroup("Connection:"),
    )
    .addOption(new Option("--json", "print JSON for scripts instead of text").helpGroup("Output:"));
}

export type JobsClient = Client<typeof JobService>;

export function connect(options: ClientOptions): JobsClient {
  let baseUrl: URL;
  try {
    baseUrl = new URL(options.server);
  } catch {
    throw new UsageError(`--server must be a URL such as ${DEFAULT_SERVER}, got "${options.server}"`);
  }
  if (baseUrl.protocol !== "http:" && baseUrl.protocol !== "https:") {
    throw new UsageError(`--server must be an http:// or https:// URL, got "${options.server}"`);
  }
  const token = options.token || developmentToken();
  if (!token) {
    throw new UsageError(
      "no token: pass --token or set JOBS_TOKEN (jobsctl tokens create makes one), or run jobsctl serve with the embedded database once for a development token",
    );
  }
  const transport = createGrpcTransport({
    baseUrl: options.server,
    interceptors: [
      (next) => (req) => {
        req.header.set("authorization", `Bearer ${token}`);
        return next(req);
      },
    ],
  });
  return createClient(JobService, transport);
}

function developmentToken(): string | undefined {
  const file = join(resolve(process.env.JOBS_DATA_DIR || ".data"), "dev-token");
  return existsSync(file) ? readFileSync(file, "utf8").trim() : undefined;
}

// The operators' console: the web page built from console/ into dist/console
// (`npm run build:console`), answered for GET and HEAD on every path that is
// not an RPC's, on the API's own port, so that the page calls the API on its
// own origin and needs no CORS. The files are read once, when the server
// starts; a request path is only ever looked up among them, never joined to a
// file system path. Every answer here, 404s included, carries a policy that
// lets the page run only its own scripts and talk only to its own origin.

import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import type http from "node:http";
import { dirname, extname, join, relative, sep } from "node:path";
import { gzipSync } from "node:zlib";
import type { Logger } from "../log.js";
import { type NodeHandler, type NodeResponse, pathOf } from "./transport/exchange.js";

export interface ConsoleOptions {
  /** CONSOLE_ENABLED. */
  readonly enabled: boolean;
  /** The built files; default: dist/console of this checkout. */
  readonly dir?: string;
  readonly log: Logger;
}

export const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");

const SECURITY_HEADERS = {
  "content-security-policy": CONTENT_SECURITY_POLICY,
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
};

const CONTENT_TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
  ".json": "application/json",
  ".txt": "text/plain; charset=utf-8",
  ".woff2": "font/woff2",
};

/** Vite names what it emits under assets/ after a hash of the contents: such a file never changes under its name. */
const IMMUTABLE = /^\/assets\//;

interface StaticFile {
  readonly body: Buffer;
  readonly gzipped: Buffer | null;
  readonly type: string;
  readonly etag: string;
  readonly cacheControl: string;
}

const NOT_BUILT =
  "The operators' console has not been built on this server: run `npm run build` (or `npm run build:console`) in the checkout, then restart the server.\n";
const TURNED_OFF = "Not found: the operators' console is turned off on this server (CONSOLE_ENABLED=false).\n";
const NOT_FOUND = "Not found. This port answers gRPC, gRPC-Web and Connect calls, and the operators' console at /.\n";

/** Answers the requests that name no RPC: the console's files, or a plain-text 404. */
export function createConsole(options: ConsoleOptions): NodeHandler {
  const dir = options.dir ?? builtConsoleDir();
  const files = options.enabled ? readBuilt(dir) : new Map<string, StaticFile>();
  const home = !options.enabled ? TURNED_OFF : files.size === 0 ? NOT_BUILT : NOT_FOUND;
  if (options.enabled && files.size === 0) {
    options.log.warn("console not built: / answers 404", { dir, fix: "npm run build" });
  }

  return (req, res) => {
    const path = pathOf(req);
    const file = req.method === "GET" || req.method === "HEAD" ? files.get(path === "/" ? "/index.html" : path) : undefined;
    if (file === undefined) {
      const body = path === "/" ? home : NOT_FOUND;
      send(res, 404, { ...SECURITY_HEADERS, "content-type": "text/plain; charset=utf-8", "cache-control": "no-cache" }, req.method === "HEAD" ? null : body);
      return;
    }
    const gzipped = /\bgzip\b/.test(String(req.headers["accept-encoding"] ?? "")) ? file.gzipped : null;
    // Each encoding is a representation of its own, with an ETag of its own.
    const etag = gzipped ? `${file.etag.slice(0, -1)}-gzip"` : file.etag;
    const headers: Record<string, string> = {
      ...SECURITY_HEADERS,
      "content-type": file.type,
      "cache-control": file.cacheControl,
      etag,
      vary: "accept-encoding",
    };
    if (req.headers["if-none-match"] === etag) {
      send(res, 304, headers, null);
      return;
    }
    const body = gzipped ?? file.body;
    if (gzipped) headers["content-encoding"] = "gzip";
    headers["content-length"] = String(body.length);
    send(res, 200, headers, req.method === "HEAD" ? null : body);
  };
}

function send(res: NodeResponse, status: number, headers: Record<string, string>, body: Buffer | string | null): void {
  // HTTP/1.1's and HTTP/2's response objects share these calls, though not one type for them.
  const answer = res as http.ServerResponse;
  answer.writeHead(status, headers);
  if (body === null) answer.end();
  else answer.end(body);
}

/** dist/console beside this module's dist/src (built), or under the checkout (run from src/ by the tests). */
function builtConsoleDir(): string {
  let dir = import.meta.dirname;
  while (!existsSync(join(dir, "package.json")) && dirname(dir) !== dir) dir = dirname(dir);
  return join(dir, "dist", "console");
}

/** Every built file by URL path; empty when nothing was built. Dot files (the build's stamp) are not served. */
function readBuilt(dir: string): Map<string, StaticFile> {
  const files = new Map<string, StaticFile>();
  if (!existsSync(join(dir, "index.html"))) return files;
  for (const entry of readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const full = join(entry.parentPath, entry.name);
    const rel = relative(dir, full).split(sep);
    if (rel.some((part) => part.startsWith("."))) continue;
    const path = `/${rel.join("/")}`;
    const type = CONTENT_TYPES[extname(entry.name)] ?? "application/octet-stream";
    const body = readFileSync(full);
    const compressible = /^(text\/|application\/json|image\/svg)/.test(type) && body.length > 1024;
    files.set(path, {
      body,
      gzipped: compressible ? gzipSync(body) : null,
      type,
      etag: `"${createHash("sha256").update(body).digest("base64url").slice(0, 22)}"`,
      cacheControl: IMMUTABLE.test(path) ? "public, max-age=31536000, immutable" : "no-cache",
    });
  }
  return files;
}

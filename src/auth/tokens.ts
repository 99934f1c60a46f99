// Bearer tokens: opaque random secrets, known to the server only by hash.

import { createHash, randomBytes } from "node:crypto";

const PREFIX = "jobs_";
/** The secret after the prefix: 32 random bytes in unpadded base64url. */
const SECRET_CHARACTERS = "[A-Za-z0-9_-]{43}";
const TOKEN_PATTERN = new RegExp(`^${PREFIX}${SECRET_CHARACTERS}$`);
const TOKEN_ANYWHERE = new RegExp(`${PREFIX}${SECRET_CHARACTERS}`);

/** A new secret: 256 random bits, prefixed so that secret scanners and people can recognize it. */
export function generateSecret(): string {
  return PREFIX + randomBytes(32).toString("base64url");
}

/** The stored form. A fast hash is right here: the secret has 256 bits of entropy, so there is nothing to brute-force. */
export function hashSecret(secret: string): string {
  return createHash("sha256").update(secret).digest("hex");
}

export function looksLikeToken(secret: string): boolean {
  return TOKEN_PATTERN.test(secret);
}

/** Whether `text` holds a token anywhere in it (pasted into a field by mistake, say). */
export function containsToken(text: string): boolean {
  return TOKEN_ANYWHERE.test(text);
}

export type BearerParse = { ok: true; secret: string } | { ok: false; problem: "missing" | "malformed" };

/** Reads `authorization: Bearer <token>`; the scheme is case-insensitive, as in HTTP. */
export function parseAuthorization(header: string | null | undefined): BearerParse {
  if (header === null || header === undefined || header === "") return { ok: false, problem: "missing" };
  const match = /^bearer +(\S+)\s*$/i.exec(header);
  if (!match || !looksLikeToken(match[1])) return { ok: false, problem: "malformed" };
  return { ok: true, secret: match[1] };
}

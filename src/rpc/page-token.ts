// Opaque page tokens. A token carries where the previous page ended and a
// fingerprint of the listing it belongs to (filters and caller), so a token
// replayed with other filters or by another caller is refused rather than
// silently paging the wrong set. A forged token could at most start a listing
// the caller may run anyway at another position, so it needs no signature.

import { createHash } from "node:crypto";
import { InvalidPageToken } from "../domain/errors.js";

interface Envelope<T> {
  v: 1;
  f: string;
  p: T;
}

export function fingerprint(listing: unknown): string {
  return createHash("sha256")
    .update(JSON.stringify(listing, (_k, v) => (typeof v === "bigint" ? v.toString() : v)))
    .digest("base64url")
    .slice(0, 22);
}

export function encodePageToken<T>(listing: string, position: T): string {
  const envelope: Envelope<T> = { v: 1, f: listing, p: position };
  return Buffer.from(JSON.stringify(envelope)).toString("base64url");
}

/** The position in `token`; null for an empty token (first page). */
export function decodePageToken<T>(token: string, listing: string, valid: (p: unknown) => p is T): T | null {
  if (token === "") return null;
  let envelope: Envelope<unknown>;
  try {
    envelope = JSON.parse(Buffer.from(token, "base64url").toString("utf8")) as Envelope<unknown>;
  } catch {
    throw new InvalidPageToken();
  }
  if (envelope?.v !== 1 || envelope.f !== listing || !valid(envelope.p)) throw new InvalidPageToken();
  return envelope.p;
}

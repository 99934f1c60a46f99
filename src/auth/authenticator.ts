// Resolves a request's bearer token to its caller. Lookups are cached for a
// few seconds, so a revoked token stops working within TOKEN_CACHE_SECONDS on
// every replica, with no invalidation protocol between them.

import { PermissionDenied, Unauthenticated } from "../domain/errors.js";
import type { Caller, Scope } from "../domain/principal.js";
import type { TokenInfo } from "../store/token-store.js";
import { hashSecret, parseAuthorization } from "./tokens.js";

export interface TokenLookup {
  findActive(secretHash: string): Promise<TokenInfo | null>;
}

export class Authenticator {
  private readonly cache = new Map<string, { caller: Caller | null; expires: number }>();
  /** Lookups in flight: a burst of calls with one new token (a reconnect storm) makes one query. */
  private readonly pending = new Map<string, Promise<Caller | null>>();

  constructor(
    private readonly tokens: TokenLookup,
    private readonly cacheMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  async authenticate(authorization: string | null): Promise<Caller> {
    const parsed = parseAuthorization(authorization);
    if (!parsed.ok) {
      throw parsed.problem === "missing"
        ? new Unauthenticated("MISSING_TOKEN", "this call needs an `authorization: Bearer <token>` header; create a token with `jobsctl tokens create`")
        : new Unauthenticated("MALFORMED_TOKEN", "the authorization header must be `Bearer <token>` with a token issued by `jobsctl tokens create`");
    }
    // Keyed by the secret itself, so that a cached call does no hashing.
    const now = this.now();
    const cached = this.cache.get(parsed.secret);
    let caller: Caller | null;
    if (cached && cached.expires > now) {
      caller = cached.caller;
    } else {
      caller = await this.lookup(parsed.secret, now);
    }
    if (!caller) throw new Unauthenticated("INVALID_TOKEN", "the bearer token is unknown or revoked");
    return caller;
  }

  private lookup(secret: string, now: number): Promise<Caller | null> {
    let pending = this.pending.get(secret);
    if (!pending) {
      pending = (async () => {
        try {
          const info = await this.tokens.findActive(hashSecret(secret));
          const caller = info ? { principal: info.principal, scopes: new Set(info.scopes), tokenId: info.id } : null;
          if (this.cacheMs > 0) {
            if (this.cache.size > 10_000) this.evictExpired(now);
            this.cache.set(secret, { caller, expires: now + this.cacheMs });
          }
          return caller;
        } finally {
          this.pending.delete(secret);
        }
      })();
      this.pending.set(secret, pending);
    }
    return pending;
  }

  private evictExpired(now: number): void {
    for (const [key, entry] of this.cache) if (entry.expires <= now) this.cache.delete(key);
    if (this.cache.size > 10_000) this.cache.clear();
  }
}

export function requireScope(caller: Caller, scope: Scope, method: string): void {
  if (!caller.scopes.has(scope)) {
    throw new PermissionDenied("MISSING_SCOPE", `${method} needs a token with the ${scope} scope`, {
      scope,
      call: method,
    });
  }
}

// Tokens in the database, through the ORM's unit of work: these calls are
// rare (CLI, and cached lookups), so the ORM's convenience costs nothing.

import { randomUUID } from "node:crypto";
import type { MikroORM } from "@mikro-orm/postgresql";
import type { Principal, Scope } from "../domain/principal.js";
import { TokenEntity } from "./entities.js";
import { Lane } from "./lane.js";
import { asUnavailable } from "./sql.js";

export interface TokenInfo {
  readonly id: string;
  readonly principal: Principal;
  readonly scopes: readonly Scope[];
  readonly description: string;
  readonly createdAt: Date;
  readonly revokedAt: Date | null;
}

type TokenRow = InstanceType<typeof TokenEntity.class>;

export class TokenStore {
  /** Lookups (and the CLI's token commands) use their own share of the pool: a flood of unknown tokens waits, and is shed, here. */
  private readonly lane: Lane;

  constructor(
    private readonly orm: MikroORM,
    slots = 4,
    maxWaitMs = 2000,
  ) {
    this.lane = new Lane("token lookups", slots, maxWaitMs);
  }

  async create(secretHash: string, principal: Principal, scopes: readonly Scope[], description: string): Promise<TokenInfo> {
    const em = this.orm.em.fork();
    const row = em.create(TokenEntity, {
      id: randomUUID(),
      secretHash,
      principalType: principal.type,
      serviceName: principal.type === "service" ? principal.name : null,
      companyId: principal.type === "api_user" ? BigInt(principal.companyId) : null,
      userId: principal.type === "api_user" ? BigInt(principal.userId) : null,
      scopes: [...scopes],
      description,
      createdAt: new Date(),
      revokedAt: null,
    });
    await this.guard(() => em.flush());
    return toInfo(row);
  }

  /** The live (not revoked) token with this hash, if any. */
  async findActive(secretHash: string): Promise<TokenInfo | null> {
    const em = this.orm.em.fork();
    const row = await this.guard(() => em.findOne(TokenEntity, { secretHash, revokedAt: null }));
    return row ? toInfo(row) : null;
  }

  /** Which of these token ids are live (not revoked): one query, however many. */
  async liveIds(ids: readonly string[]): Promise<Set<string>> {
    if (ids.length === 0) return new Set();
    const em = this.orm.em.fork();
    const rows = await this.guard(() => em.find(TokenEntity, { id: { $in: [...ids] }, revokedAt: null }, { fields: ["id"] }));
    return new Set(rows.map((row) => row.id));
  }

  async list(): Promise<TokenInfo[]> {
    const em = this.orm.em.fork();
    const rows = await this.guard(() => em.find(TokenEntity, {}, { orderBy: { createdAt: "asc" } }));
    return rows.map(toInfo);
  }

  /** Revokes a token; false if there is no such token (or it was revoked already). */
  async revoke(id: string): Promise<boolean> {
    const em = this.orm.em.fork();
    const count = await this.guard(() => em.nativeUpdate(TokenEntity, { id, revokedAt: null }, { revokedAt: new Date() }));
    return count > 0;
  }

  /** Calls waiting for a slot in the token lookups' share of the pool. */
  get waiting(): number {
    return this.lane.waiting;
  }

  private guard<T>(work: () => Promise<T>): Promise<T> {
    return this.lane.run(async () => {
      try {
        return await work();
      } catch (error) {
        throw asUnavailable(error) ?? error;
      }
    });
  }

  /** Revokes every live token with this description (the development token of a previous start). */
  async revokeByDescription(description: string): Promise<number> {
    const em = this.orm.em.fork();
    return this.guard(() => em.nativeUpdate(TokenEntity, { description, revokedAt: null }, { revokedAt: new Date() }));
  }
}

function toInfo(row: TokenRow): TokenInfo {
  const principal: Principal =
    row.principalType === "service"
      ? { type: "service", name: row.serviceName ?? "" }
      : { type: "api_user", companyId: String(row.companyId), userId: String(row.userId) };
  return {
    id: row.id,
    principal,
    scopes: row.scopes as Scope[],
    description: row.description,
    createdAt: new Date(row.createdAt),
    revokedAt: row.revokedAt ? new Date(row.revokedAt) : null,
  };
}

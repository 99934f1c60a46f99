// Who is acting, and what they may see. Plain data so every layer can share it.

export type Scope = "jobs:read" | "jobs:write";
export const SCOPES: readonly Scope[] = ["jobs:read", "jobs:write"];

export type Principal =
  | { readonly type: "service"; readonly name: string }
  | { readonly type: "api_user"; readonly companyId: string; readonly userId: string };

/** The authenticated caller of one request. */
export interface Caller {
  readonly principal: Principal;
  readonly scopes: ReadonlySet<Scope>;
  readonly tokenId: string;
}

/** The server itself, acting on expired leases (docs/contract.md §9). */
export const REAPER: Principal = { type: "service", name: "reaper" };

/** A stable key for a principal: idempotency keys are scoped by it, so two tokens of one principal share them. */
export function principalKey(p: Principal): string {
  return p.type === "service" ? `service:${p.name}` : `api_user:${p.companyId}:${p.userId}`;
}

/** Whether `p` may see a job of `companyId`: services see every company, users only their own. */
export function canSee(p: Principal, companyId: string): boolean {
  return p.type === "service" || p.companyId === companyId;
}

import { Migration } from '@mikro-orm/migrations';

export class Migration20261123145256_Initial extends Migration {

  override name = 'Migration20261123145256_Initial';

  override up(): void | Promise<void> {
    this.addSql(`create table "jobs" ("id" uuid not null, "type" text not null, "state" text not null, "company_id" bigint not null, "created_by" jsonb not null, "creator_key" text not null, "request_id" uuid null, "input" jsonb null, "executor_id" text not null default '', "attempt" int not null default 0, "revision" int not null, "result" jsonb null, "failures" jsonb not null default '[]', "cancellation_reason" text not null default '', "data_plane_id" text not null default '', "compute_pool_id" text not null default '', "execution_cluster" text not null default 'UNSPECIFIED', "lease_seconds" int not null default 0, "lease_expires_at" timestamptz null, "created_at" timestamptz not null, "updated_at" timestamptz not null, "started_at" timestamptz null, "finished_at" timestamptz null, primary key ("id"));`);
    this.addSql(`create index "jobs_created_idx" on "jobs" ("created_at" DESC, "id" DESC);`);
    this.addSql(`create index "jobs_company_created_idx" on "jobs" ("company_id", "created_at" DESC, "id" DESC);`);
    this.addSql(`create index "jobs_unfinished_idx" on "jobs" ("state") where state in ('PENDING','RUNNING','PENDING_CANCELLATION');`);
    this.addSql(`create index "jobs_lease_expiry_idx" on "jobs" ("lease_expires_at") where lease_expires_at is not null;`);
    this.addSql(`create index "jobs_executor_idx" on "jobs" ("executor_id") where executor_id <> '';`);
    this.addSql(`alter table "jobs" add constraint "jobs_creator_request_unique" unique ("creator_key", "request_id");`);

    this.addSql(`create table "job_events" ("job_id" uuid not null, "revision" int not null, "type" text not null, "from_state" text null, "to_state" text not null, "actor" jsonb not null, "occurred_at" timestamptz not null, "previous_executor_id" text not null default '', "snapshot" jsonb not null, "xid" xid8 not null default pg_current_xact_id(), primary key ("job_id", "revision"));`);
    this.addSql(`create index "job_events_xid_idx" on "job_events" ("xid");`);

    this.addSql(`create table "tokens" ("id" uuid not null, "secret_hash" text not null, "principal_type" text not null, "service_name" text null, "company_id" bigint null, "user_id" bigint null, "scopes" text[] not null, "description" text not null default '', "created_at" timestamptz not null, "revoked_at" timestamptz null, primary key ("id"));`);
    this.addSql(`alter table "tokens" add constraint "tokens_secret_hash_unique" unique ("secret_hash");`);

    this.addSql(`alter table "jobs" add constraint "jobs_state_check" check (state in ('PENDING','RUNNING','PENDING_CANCELLATION','COMPLETED','FAILED','CANCELLED'));`);

    this.addSql(`alter table "job_events" add constraint "job_events_job_id_foreign" foreign key ("job_id") references "jobs" ("id") on delete cascade;`);

    this.addSql(`alter table "tokens" add constraint "tokens_principal_type_check" check (principal_type in ('service','api_user'));`);
  }

  override down(): void | Promise<void> {
    this.addSql(`alter table "job_events" drop constraint "job_events_job_id_foreign";`);

    this.addSql(`drop table if exists "jobs" cascade;`);
    this.addSql(`drop table if exists "job_events" cascade;`);
    this.addSql(`drop table if exists "tokens" cascade;`);
  }

}

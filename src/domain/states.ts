// The job states and transition calls, as plain string unions so that the
// domain layer owns its vocabulary and never depends on generated code.

export const JOB_STATES = [
  "PENDING",
  "RUNNING",
  "PENDING_CANCELLATION",
  "COMPLETED",
  "FAILED",
  "CANCELLED",
] as const;
export type JobStateName = (typeof JOB_STATES)[number];

/** States after which a watch stream ends (docs/contract.md §5). FAILED is among them even though a failed job may run again. */
export const FINISHED_STATES: ReadonlySet<JobStateName> = new Set(["COMPLETED", "FAILED", "CANCELLED"]);

/** States a job never leaves: COMPLETED and CANCELLED. */
export const FINAL_STATES: ReadonlySet<JobStateName> = new Set(["COMPLETED", "CANCELLED"]);

/** States a job is still moving through: COMPLETED, FAILED and CANCELLED are not among them. */
export const UNFINISHED_STATES: ReadonlySet<JobStateName> = new Set(JOB_STATES.filter((state) => !FINISHED_STATES.has(state)));

/** States in which an executor holds a lease (docs/contract.md §9). */
export const LEASED_STATES: ReadonlySet<JobStateName> = new Set(["RUNNING", "PENDING_CANCELLATION"]);

export const TRANSITION_CALLS = ["RunJob", "CompleteJob", "FailJob", "RequestJobCancellation", "CancelJob"] as const;
export type TransitionCall = (typeof TRANSITION_CALLS)[number];

export const EVENT_TYPES = [
  "CREATED",
  "STARTED",
  "COMPLETED",
  "FAILED",
  "CANCELLATION_REQUESTED",
  "CANCELLED",
] as const;
export type EventTypeName = (typeof EVENT_TYPES)[number];

export const JOB_TYPES = [
  "FORECAST",
  "REFRESH_MATERIALIZED_VIEW",
  "DATASETS_EXECUTE_DML",
  "DATASETS_CREATE_TABLE",
  "DATASETS_TRUNCATE_TABLE",
  "DATASETS_DELETE_TABLE",
  "DATASETS_DELIVER_DATA",
  "DATASETS_CALCULATE_COLUMN_STATS",
  "DATASETS_SUGGEST_MAPPINGS",
  "MODEL_INFERENCE_RUN",
  "MODEL_TRAINING_RUN",
  "MODELS_DELIVER_MODEL",
  "MODELS_TRAIN_CLASSIFIER",
  "HEALTH_CHECK",
] as const;
export type JobTypeName = (typeof JOB_TYPES)[number];

export const EXECUTION_CLUSTERS = ["UNSPECIFIED", "DEDICATED", "SHARED"] as const;
export type ExecutionClusterName = (typeof EXECUTION_CLUSTERS)[number];

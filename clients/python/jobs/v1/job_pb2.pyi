import datetime

from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class JobState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOB_STATE_UNSPECIFIED: _ClassVar[JobState]
    JOB_STATE_PENDING: _ClassVar[JobState]
    JOB_STATE_RUNNING: _ClassVar[JobState]
    JOB_STATE_PENDING_CANCELLATION: _ClassVar[JobState]
    JOB_STATE_COMPLETED: _ClassVar[JobState]
    JOB_STATE_FAILED: _ClassVar[JobState]
    JOB_STATE_CANCELLED: _ClassVar[JobState]

class JobType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOB_TYPE_UNSPECIFIED: _ClassVar[JobType]
    JOB_TYPE_FORECAST: _ClassVar[JobType]
    JOB_TYPE_REFRESH_MATERIALIZED_VIEW: _ClassVar[JobType]
    JOB_TYPE_DATASETS_EXECUTE_DML: _ClassVar[JobType]
    JOB_TYPE_DATASETS_CREATE_TABLE: _ClassVar[JobType]
    JOB_TYPE_DATASETS_TRUNCATE_TABLE: _ClassVar[JobType]
    JOB_TYPE_DATASETS_DELETE_TABLE: _ClassVar[JobType]
    JOB_TYPE_DATASETS_DELIVER_DATA: _ClassVar[JobType]
    JOB_TYPE_DATASETS_CALCULATE_COLUMN_STATS: _ClassVar[JobType]
    JOB_TYPE_DATASETS_SUGGEST_MAPPINGS: _ClassVar[JobType]
    JOB_TYPE_MODEL_INFERENCE_RUN: _ClassVar[JobType]
    JOB_TYPE_MODEL_TRAINING_RUN: _ClassVar[JobType]
    JOB_TYPE_MODELS_DELIVER_MODEL: _ClassVar[JobType]
    JOB_TYPE_MODELS_TRAIN_CLASSIFIER: _ClassVar[JobType]
    JOB_TYPE_HEALTH_CHECK: _ClassVar[JobType]

class ExecutionCluster(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EXECUTION_CLUSTER_UNSPECIFIED: _ClassVar[ExecutionCluster]
    EXECUTION_CLUSTER_DEDICATED: _ClassVar[ExecutionCluster]
    EXECUTION_CLUSTER_SHARED: _ClassVar[ExecutionCluster]

class PrincipalType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PRINCIPAL_TYPE_UNSPECIFIED: _ClassVar[PrincipalType]
    PRINCIPAL_TYPE_API_USER: _ClassVar[PrincipalType]
    PRINCIPAL_TYPE_SERVICE: _ClassVar[PrincipalType]

class JobEventType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOB_EVENT_TYPE_UNSPECIFIED: _ClassVar[JobEventType]
    JOB_EVENT_TYPE_CREATED: _ClassVar[JobEventType]
    JOB_EVENT_TYPE_STARTED: _ClassVar[JobEventType]
    JOB_EVENT_TYPE_COMPLETED: _ClassVar[JobEventType]
    JOB_EVENT_TYPE_FAILED: _ClassVar[JobEventType]
    JOB_EVENT_TYPE_CANCELLATION_REQUESTED: _ClassVar[JobEventType]
    JOB_EVENT_TYPE_CANCELLED: _ClassVar[JobEventType]
JOB_STATE_UNSPECIFIED: JobState
JOB_STATE_PENDING: JobState
JOB_STATE_RUNNING: JobState
JOB_STATE_PENDING_CANCELLATION: JobState
JOB_STATE_COMPLETED: JobState
JOB_STATE_FAILED: JobState
JOB_STATE_CANCELLED: JobState
JOB_TYPE_UNSPECIFIED: JobType
JOB_TYPE_FORECAST: JobType
JOB_TYPE_REFRESH_MATERIALIZED_VIEW: JobType
JOB_TYPE_DATASETS_EXECUTE_DML: JobType
JOB_TYPE_DATASETS_CREATE_TABLE: JobType
JOB_TYPE_DATASETS_TRUNCATE_TABLE: JobType
JOB_TYPE_DATASETS_DELETE_TABLE: JobType
JOB_TYPE_DATASETS_DELIVER_DATA: JobType
JOB_TYPE_DATASETS_CALCULATE_COLUMN_STATS: JobType
JOB_TYPE_DATASETS_SUGGEST_MAPPINGS: JobType
JOB_TYPE_MODEL_INFERENCE_RUN: JobType
JOB_TYPE_MODEL_TRAINING_RUN: JobType
JOB_TYPE_MODELS_DELIVER_MODEL: JobType
JOB_TYPE_MODELS_TRAIN_CLASSIFIER: JobType
JOB_TYPE_HEALTH_CHECK: JobType
EXECUTION_CLUSTER_UNSPECIFIED: ExecutionCluster
EXECUTION_CLUSTER_DEDICATED: ExecutionCluster
EXECUTION_CLUSTER_SHARED: ExecutionCluster
PRINCIPAL_TYPE_UNSPECIFIED: PrincipalType
PRINCIPAL_TYPE_API_USER: PrincipalType
PRINCIPAL_TYPE_SERVICE: PrincipalType
JOB_EVENT_TYPE_UNSPECIFIED: JobEventType
JOB_EVENT_TYPE_CREATED: JobEventType
JOB_EVENT_TYPE_STARTED: JobEventType
JOB_EVENT_TYPE_COMPLETED: JobEventType
JOB_EVENT_TYPE_FAILED: JobEventType
JOB_EVENT_TYPE_CANCELLATION_REQUESTED: JobEventType
JOB_EVENT_TYPE_CANCELLED: JobEventType

class Job(_message.Message):
    __slots__ = ("id", "type", "state", "company_id", "created_by", "input", "executor_id", "attempt", "revision", "result", "failures", "cancellation_reason", "data_plane_id", "compute_pool_id", "execution_cluster", "lease_expires_at", "created_at", "updated_at", "started_at", "finished_at", "lease_seconds")
    ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    COMPANY_ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_BY_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    EXECUTOR_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    FAILURES_FIELD_NUMBER: _ClassVar[int]
    CANCELLATION_REASON_FIELD_NUMBER: _ClassVar[int]
    DATA_PLANE_ID_FIELD_NUMBER: _ClassVar[int]
    COMPUTE_POOL_ID_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_CLUSTER_FIELD_NUMBER: _ClassVar[int]
    LEASE_EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_FIELD_NUMBER: _ClassVar[int]
    LEASE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    id: str
    type: JobType
    state: JobState
    company_id: int
    created_by: Principal
    input: JobInput
    executor_id: str
    attempt: int
    revision: int
    result: JobResult
    failures: _containers.RepeatedCompositeFieldContainer[JobFailure]
    cancellation_reason: str
    data_plane_id: str
    compute_pool_id: str
    execution_cluster: ExecutionCluster
    lease_expires_at: _timestamp_pb2.Timestamp
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    started_at: _timestamp_pb2.Timestamp
    finished_at: _timestamp_pb2.Timestamp
    lease_seconds: int
    def __init__(self, id: _Optional[str] = ..., type: _Optional[_Union[JobType, str]] = ..., state: _Optional[_Union[JobState, str]] = ..., company_id: _Optional[int] = ..., created_by: _Optional[_Union[Principal, _Mapping]] = ..., input: _Optional[_Union[JobInput, _Mapping]] = ..., executor_id: _Optional[str] = ..., attempt: _Optional[int] = ..., revision: _Optional[int] = ..., result: _Optional[_Union[JobResult, _Mapping]] = ..., failures: _Optional[_Iterable[_Union[JobFailure, _Mapping]]] = ..., cancellation_reason: _Optional[str] = ..., data_plane_id: _Optional[str] = ..., compute_pool_id: _Optional[str] = ..., execution_cluster: _Optional[_Union[ExecutionCluster, str]] = ..., lease_expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., finished_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., lease_seconds: _Optional[int] = ...) -> None: ...

class Principal(_message.Message):
    __slots__ = ("type", "company_id", "user_id", "name")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    COMPANY_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    type: PrincipalType
    company_id: int
    user_id: int
    name: str
    def __init__(self, type: _Optional[_Union[PrincipalType, str]] = ..., company_id: _Optional[int] = ..., user_id: _Optional[int] = ..., name: _Optional[str] = ...) -> None: ...

class JobInput(_message.Message):
    __slots__ = ("forecast", "refresh_materialized_view", "other")
    FORECAST_FIELD_NUMBER: _ClassVar[int]
    REFRESH_MATERIALIZED_VIEW_FIELD_NUMBER: _ClassVar[int]
    OTHER_FIELD_NUMBER: _ClassVar[int]
    forecast: ForecastInput
    refresh_materialized_view: RefreshMaterializedViewInput
    other: _struct_pb2.Struct
    def __init__(self, forecast: _Optional[_Union[ForecastInput, _Mapping]] = ..., refresh_materialized_view: _Optional[_Union[RefreshMaterializedViewInput, _Mapping]] = ..., other: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class ForecastInput(_message.Message):
    __slots__ = ("nql", "compiled_sql")
    NQL_FIELD_NUMBER: _ClassVar[int]
    COMPILED_SQL_FIELD_NUMBER: _ClassVar[int]
    nql: str
    compiled_sql: str
    def __init__(self, nql: _Optional[str] = ..., compiled_sql: _Optional[str] = ...) -> None: ...

class RefreshMaterializedViewInput(_message.Message):
    __slots__ = ("nql", "dataset_id", "stats_enabled", "compiled_sql")
    NQL_FIELD_NUMBER: _ClassVar[int]
    DATASET_ID_FIELD_NUMBER: _ClassVar[int]
    STATS_ENABLED_FIELD_NUMBER: _ClassVar[int]
    COMPILED_SQL_FIELD_NUMBER: _ClassVar[int]
    nql: str
    dataset_id: int
    stats_enabled: bool
    compiled_sql: str
    def __init__(self, nql: _Optional[str] = ..., dataset_id: _Optional[int] = ..., stats_enabled: _Optional[bool] = ..., compiled_sql: _Optional[str] = ...) -> None: ...

class JobResult(_message.Message):
    __slots__ = ("forecast", "refresh_materialized_view", "datasets_execute_dml", "datasets_create_table", "datasets_truncate_table", "datasets_delete_table", "datasets_deliver_data", "datasets_calculate_column_stats", "datasets_suggest_mappings", "model_inference_run", "model_training_run", "models_deliver_model", "models_train_classifier", "health_check")
    FORECAST_FIELD_NUMBER: _ClassVar[int]
    REFRESH_MATERIALIZED_VIEW_FIELD_NUMBER: _ClassVar[int]
    DATASETS_EXECUTE_DML_FIELD_NUMBER: _ClassVar[int]
    DATASETS_CREATE_TABLE_FIELD_NUMBER: _ClassVar[int]
    DATASETS_TRUNCATE_TABLE_FIELD_NUMBER: _ClassVar[int]
    DATASETS_DELETE_TABLE_FIELD_NUMBER: _ClassVar[int]
    DATASETS_DELIVER_DATA_FIELD_NUMBER: _ClassVar[int]
    DATASETS_CALCULATE_COLUMN_STATS_FIELD_NUMBER: _ClassVar[int]
    DATASETS_SUGGEST_MAPPINGS_FIELD_NUMBER: _ClassVar[int]
    MODEL_INFERENCE_RUN_FIELD_NUMBER: _ClassVar[int]
    MODEL_TRAINING_RUN_FIELD_NUMBER: _ClassVar[int]
    MODELS_DELIVER_MODEL_FIELD_NUMBER: _ClassVar[int]
    MODELS_TRAIN_CLASSIFIER_FIELD_NUMBER: _ClassVar[int]
    HEALTH_CHECK_FIELD_NUMBER: _ClassVar[int]
    forecast: ForecastResult
    refresh_materialized_view: RefreshMaterializedViewResult
    datasets_execute_dml: DatasetsExecuteDmlResult
    datasets_create_table: DatasetsCreateTableResult
    datasets_truncate_table: DatasetsTruncateTableResult
    datasets_delete_table: DatasetsDeleteTableResult
    datasets_deliver_data: DatasetsDeliverDataResult
    datasets_calculate_column_stats: DatasetsCalculateColumnStatsResult
    datasets_suggest_mappings: DatasetsSuggestMappingsResult
    model_inference_run: ModelInferenceRunResult
    model_training_run: ModelTrainingRunResult
    models_deliver_model: ModelsDeliverModelResult
    models_train_classifier: ModelsTrainClassifierResult
    health_check: HealthCheckResult
    def __init__(self, forecast: _Optional[_Union[ForecastResult, _Mapping]] = ..., refresh_materialized_view: _Optional[_Union[RefreshMaterializedViewResult, _Mapping]] = ..., datasets_execute_dml: _Optional[_Union[DatasetsExecuteDmlResult, _Mapping]] = ..., datasets_create_table: _Optional[_Union[DatasetsCreateTableResult, _Mapping]] = ..., datasets_truncate_table: _Optional[_Union[DatasetsTruncateTableResult, _Mapping]] = ..., datasets_delete_table: _Optional[_Union[DatasetsDeleteTableResult, _Mapping]] = ..., datasets_deliver_data: _Optional[_Union[DatasetsDeliverDataResult, _Mapping]] = ..., datasets_calculate_column_stats: _Optional[_Union[DatasetsCalculateColumnStatsResult, _Mapping]] = ..., datasets_suggest_mappings: _Optional[_Union[DatasetsSuggestMappingsResult, _Mapping]] = ..., model_inference_run: _Optional[_Union[ModelInferenceRunResult, _Mapping]] = ..., model_training_run: _Optional[_Union[ModelTrainingRunResult, _Mapping]] = ..., models_deliver_model: _Optional[_Union[ModelsDeliverModelResult, _Mapping]] = ..., models_train_classifier: _Optional[_Union[ModelsTrainClassifierResult, _Mapping]] = ..., health_check: _Optional[_Union[HealthCheckResult, _Mapping]] = ...) -> None: ...

class ForecastResult(_message.Message):
    __slots__ = ("cost", "rows")
    COST_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    cost: int
    rows: int
    def __init__(self, cost: _Optional[int] = ..., rows: _Optional[int] = ...) -> None: ...

class RowStats(_message.Message):
    __slots__ = ("affected_rows", "inserted_rows", "updated_rows", "deleted_rows")
    AFFECTED_ROWS_FIELD_NUMBER: _ClassVar[int]
    INSERTED_ROWS_FIELD_NUMBER: _ClassVar[int]
    UPDATED_ROWS_FIELD_NUMBER: _ClassVar[int]
    DELETED_ROWS_FIELD_NUMBER: _ClassVar[int]
    affected_rows: int
    inserted_rows: int
    updated_rows: int
    deleted_rows: int
    def __init__(self, affected_rows: _Optional[int] = ..., inserted_rows: _Optional[int] = ..., updated_rows: _Optional[int] = ..., deleted_rows: _Optional[int] = ...) -> None: ...

class RefreshMaterializedViewResult(_message.Message):
    __slots__ = ("snapshot_id", "row_stats", "dataset_id", "recalculation_id")
    SNAPSHOT_ID_FIELD_NUMBER: _ClassVar[int]
    ROW_STATS_FIELD_NUMBER: _ClassVar[int]
    DATASET_ID_FIELD_NUMBER: _ClassVar[int]
    RECALCULATION_ID_FIELD_NUMBER: _ClassVar[int]
    snapshot_id: str
    row_stats: RowStats
    dataset_id: int
    recalculation_id: str
    def __init__(self, snapshot_id: _Optional[str] = ..., row_stats: _Optional[_Union[RowStats, _Mapping]] = ..., dataset_id: _Optional[int] = ..., recalculation_id: _Optional[str] = ...) -> None: ...

class DatasetsExecuteDmlResult(_message.Message):
    __slots__ = ("affected_rows", "inserted_rows", "updated_rows", "deleted_rows")
    AFFECTED_ROWS_FIELD_NUMBER: _ClassVar[int]
    INSERTED_ROWS_FIELD_NUMBER: _ClassVar[int]
    UPDATED_ROWS_FIELD_NUMBER: _ClassVar[int]
    DELETED_ROWS_FIELD_NUMBER: _ClassVar[int]
    affected_rows: int
    inserted_rows: int
    updated_rows: int
    deleted_rows: int
    def __init__(self, affected_rows: _Optional[int] = ..., inserted_rows: _Optional[int] = ..., updated_rows: _Optional[int] = ..., deleted_rows: _Optional[int] = ...) -> None: ...

class DatasetsCreateTableResult(_message.Message):
    __slots__ = ("dataset_id", "table_name")
    DATASET_ID_FIELD_NUMBER: _ClassVar[int]
    TABLE_NAME_FIELD_NUMBER: _ClassVar[int]
    dataset_id: int
    table_name: str
    def __init__(self, dataset_id: _Optional[int] = ..., table_name: _Optional[str] = ...) -> None: ...

class DatasetsTruncateTableResult(_message.Message):
    __slots__ = ("dataset_id", "deleted_rows")
    DATASET_ID_FIELD_NUMBER: _ClassVar[int]
    DELETED_ROWS_FIELD_NUMBER: _ClassVar[int]
    dataset_id: int
    deleted_rows: int
    def __init__(self, dataset_id: _Optional[int] = ..., deleted_rows: _Optional[int] = ...) -> None: ...

class DatasetsDeleteTableResult(_message.Message):
    __slots__ = ("dataset_id", "table_name")
    DATASET_ID_FIELD_NUMBER: _ClassVar[int]
    TABLE_NAME_FIELD_NUMBER: _ClassVar[int]
    dataset_id: int
    table_name: str
    def __init__(self, dataset_id: _Optional[int] = ..., table_name: _Optional[str] = ...) -> None: ...

class DatasetsDeliverDataResult(_message.Message):
    __slots__ = ("destination_uri", "delivered_rows", "delivered_bytes")
    DESTINATION_URI_FIELD_NUMBER: _ClassVar[int]
    DELIVERED_ROWS_FIELD_NUMBER: _ClassVar[int]
    DELIVERED_BYTES_FIELD_NUMBER: _ClassVar[int]
    destination_uri: str
    delivered_rows: int
    delivered_bytes: int
    def __init__(self, destination_uri: _Optional[str] = ..., delivered_rows: _Optional[int] = ..., delivered_bytes: _Optional[int] = ...) -> None: ...

class DatasetsCalculateColumnStatsResult(_message.Message):
    __slots__ = ("dataset_id", "columns")
    DATASET_ID_FIELD_NUMBER: _ClassVar[int]
    COLUMNS_FIELD_NUMBER: _ClassVar[int]
    dataset_id: int
    columns: _containers.RepeatedCompositeFieldContainer[ColumnStats]
    def __init__(self, dataset_id: _Optional[int] = ..., columns: _Optional[_Iterable[_Union[ColumnStats, _Mapping]]] = ...) -> None: ...

class ColumnStats(_message.Message):
    __slots__ = ("name", "null_count", "distinct_count", "min_value", "max_value")
    NAME_FIELD_NUMBER: _ClassVar[int]
    NULL_COUNT_FIELD_NUMBER: _ClassVar[int]
    DISTINCT_COUNT_FIELD_NUMBER: _ClassVar[int]
    MIN_VALUE_FIELD_NUMBER: _ClassVar[int]
    MAX_VALUE_FIELD_NUMBER: _ClassVar[int]
    name: str
    null_count: int
    distinct_count: int
    min_value: str
    max_value: str
    def __init__(self, name: _Optional[str] = ..., null_count: _Optional[int] = ..., distinct_count: _Optional[int] = ..., min_value: _Optional[str] = ..., max_value: _Optional[str] = ...) -> None: ...

class DatasetsSuggestMappingsResult(_message.Message):
    __slots__ = ("mappings",)
    MAPPINGS_FIELD_NUMBER: _ClassVar[int]
    mappings: _containers.RepeatedCompositeFieldContainer[ColumnMapping]
    def __init__(self, mappings: _Optional[_Iterable[_Union[ColumnMapping, _Mapping]]] = ...) -> None: ...

class ColumnMapping(_message.Message):
    __slots__ = ("source_column", "target_column", "confidence")
    SOURCE_COLUMN_FIELD_NUMBER: _ClassVar[int]
    TARGET_COLUMN_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    source_column: str
    target_column: str
    confidence: float
    def __init__(self, source_column: _Optional[str] = ..., target_column: _Optional[str] = ..., confidence: _Optional[float] = ...) -> None: ...

class ModelInferenceRunResult(_message.Message):
    __slots__ = ("model_id", "output_dataset_id", "predicted_rows")
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_DATASET_ID_FIELD_NUMBER: _ClassVar[int]
    PREDICTED_ROWS_FIELD_NUMBER: _ClassVar[int]
    model_id: str
    output_dataset_id: int
    predicted_rows: int
    def __init__(self, model_id: _Optional[str] = ..., output_dataset_id: _Optional[int] = ..., predicted_rows: _Optional[int] = ...) -> None: ...

class ModelTrainingRunResult(_message.Message):
    __slots__ = ("model_id", "metrics")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    model_id: str
    metrics: _containers.ScalarMap[str, float]
    def __init__(self, model_id: _Optional[str] = ..., metrics: _Optional[_Mapping[str, float]] = ...) -> None: ...

class ModelsDeliverModelResult(_message.Message):
    __slots__ = ("model_id", "destination_uri")
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    DESTINATION_URI_FIELD_NUMBER: _ClassVar[int]
    model_id: str
    destination_uri: str
    def __init__(self, model_id: _Optional[str] = ..., destination_uri: _Optional[str] = ...) -> None: ...

class ModelsTrainClassifierResult(_message.Message):
    __slots__ = ("model_id", "metrics")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    model_id: str
    metrics: _containers.ScalarMap[str, float]
    def __init__(self, model_id: _Optional[str] = ..., metrics: _Optional[_Mapping[str, float]] = ...) -> None: ...

class HealthCheckResult(_message.Message):
    __slots__ = ("healthy", "checks")
    class ChecksEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    HEALTHY_FIELD_NUMBER: _ClassVar[int]
    CHECKS_FIELD_NUMBER: _ClassVar[int]
    healthy: bool
    checks: _containers.ScalarMap[str, str]
    def __init__(self, healthy: _Optional[bool] = ..., checks: _Optional[_Mapping[str, str]] = ...) -> None: ...

class JobFailure(_message.Message):
    __slots__ = ("attempt", "executor_id", "message", "diagnostic", "failed_at")
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    EXECUTOR_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    DIAGNOSTIC_FIELD_NUMBER: _ClassVar[int]
    FAILED_AT_FIELD_NUMBER: _ClassVar[int]
    attempt: int
    executor_id: str
    message: str
    diagnostic: _struct_pb2.Value
    failed_at: _timestamp_pb2.Timestamp
    def __init__(self, attempt: _Optional[int] = ..., executor_id: _Optional[str] = ..., message: _Optional[str] = ..., diagnostic: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ..., failed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class JobEvent(_message.Message):
    __slots__ = ("job_id", "revision", "type", "from_state", "to_state", "actor", "occurred_at", "job")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    FROM_STATE_FIELD_NUMBER: _ClassVar[int]
    TO_STATE_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    JOB_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    revision: int
    type: JobEventType
    from_state: JobState
    to_state: JobState
    actor: Principal
    occurred_at: _timestamp_pb2.Timestamp
    job: Job
    def __init__(self, job_id: _Optional[str] = ..., revision: _Optional[int] = ..., type: _Optional[_Union[JobEventType, str]] = ..., from_state: _Optional[_Union[JobState, str]] = ..., to_state: _Optional[_Union[JobState, str]] = ..., actor: _Optional[_Union[Principal, _Mapping]] = ..., occurred_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., job: _Optional[_Union[Job, _Mapping]] = ...) -> None: ...

class Heartbeat(_message.Message):
    __slots__ = ("revision", "sent_at")
    REVISION_FIELD_NUMBER: _ClassVar[int]
    SENT_AT_FIELD_NUMBER: _ClassVar[int]
    revision: int
    sent_at: _timestamp_pb2.Timestamp
    def __init__(self, revision: _Optional[int] = ..., sent_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

from warden.v1 import records_pb2 as _records_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EnrollRequest(_message.Message):
    __slots__ = ("token", "csr_pem", "hostname")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    CSR_PEM_FIELD_NUMBER: _ClassVar[int]
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    token: str
    csr_pem: bytes
    hostname: str
    def __init__(self, token: _Optional[str] = ..., csr_pem: _Optional[bytes] = ..., hostname: _Optional[str] = ...) -> None: ...

class EnrollResponse(_message.Message):
    __slots__ = ("host_id", "certificate_pem", "ca_certificate_pem", "labels", "report_port")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    HOST_ID_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_PEM_FIELD_NUMBER: _ClassVar[int]
    CA_CERTIFICATE_PEM_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    REPORT_PORT_FIELD_NUMBER: _ClassVar[int]
    host_id: str
    certificate_pem: bytes
    ca_certificate_pem: bytes
    labels: _containers.ScalarMap[str, str]
    report_port: int
    def __init__(self, host_id: _Optional[str] = ..., certificate_pem: _Optional[bytes] = ..., ca_certificate_pem: _Optional[bytes] = ..., labels: _Optional[_Mapping[str, str]] = ..., report_port: _Optional[int] = ...) -> None: ...

class RenewRequest(_message.Message):
    __slots__ = ("csr_pem",)
    CSR_PEM_FIELD_NUMBER: _ClassVar[int]
    csr_pem: bytes
    def __init__(self, csr_pem: _Optional[bytes] = ...) -> None: ...

class RenewResponse(_message.Message):
    __slots__ = ("certificate_pem",)
    CERTIFICATE_PEM_FIELD_NUMBER: _ClassVar[int]
    certificate_pem: bytes
    def __init__(self, certificate_pem: _Optional[bytes] = ...) -> None: ...

class Hello(_message.Message):
    __slots__ = ("spool_id", "agent_version", "hostname")
    SPOOL_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_VERSION_FIELD_NUMBER: _ClassVar[int]
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    spool_id: str
    agent_version: str
    hostname: str
    def __init__(self, spool_id: _Optional[str] = ..., agent_version: _Optional[str] = ..., hostname: _Optional[str] = ...) -> None: ...

class Batch(_message.Message):
    __slots__ = ("first_seq", "last_seq", "records", "host_id")
    FIRST_SEQ_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQ_FIELD_NUMBER: _ClassVar[int]
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    HOST_ID_FIELD_NUMBER: _ClassVar[int]
    first_seq: int
    last_seq: int
    records: _containers.RepeatedCompositeFieldContainer[_records_pb2.Record]
    host_id: str
    def __init__(self, first_seq: _Optional[int] = ..., last_seq: _Optional[int] = ..., records: _Optional[_Iterable[_Union[_records_pb2.Record, _Mapping]]] = ..., host_id: _Optional[str] = ...) -> None: ...

class Heartbeat(_message.Message):
    __slots__ = ("time_unix_nano",)
    TIME_UNIX_NANO_FIELD_NUMBER: _ClassVar[int]
    time_unix_nano: int
    def __init__(self, time_unix_nano: _Optional[int] = ...) -> None: ...

class ReportRequest(_message.Message):
    __slots__ = ("hello", "batch", "heartbeat")
    HELLO_FIELD_NUMBER: _ClassVar[int]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    hello: Hello
    batch: Batch
    heartbeat: Heartbeat
    def __init__(self, hello: _Optional[_Union[Hello, _Mapping]] = ..., batch: _Optional[_Union[Batch, _Mapping]] = ..., heartbeat: _Optional[_Union[Heartbeat, _Mapping]] = ...) -> None: ...

class Limits(_message.Message):
    __slots__ = ("max_message_bytes", "max_records_per_batch", "max_name_bytes", "max_label_value_bytes", "max_labels", "max_raw_bytes")
    MAX_MESSAGE_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_RECORDS_PER_BATCH_FIELD_NUMBER: _ClassVar[int]
    MAX_NAME_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_LABEL_VALUE_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_LABELS_FIELD_NUMBER: _ClassVar[int]
    MAX_RAW_BYTES_FIELD_NUMBER: _ClassVar[int]
    max_message_bytes: int
    max_records_per_batch: int
    max_name_bytes: int
    max_label_value_bytes: int
    max_labels: int
    max_raw_bytes: int
    def __init__(self, max_message_bytes: _Optional[int] = ..., max_records_per_batch: _Optional[int] = ..., max_name_bytes: _Optional[int] = ..., max_label_value_bytes: _Optional[int] = ..., max_labels: _Optional[int] = ..., max_raw_bytes: _Optional[int] = ...) -> None: ...

class Welcome(_message.Message):
    __slots__ = ("host_id", "committed_seq", "limits", "heartbeat_seconds")
    HOST_ID_FIELD_NUMBER: _ClassVar[int]
    COMMITTED_SEQ_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    host_id: str
    committed_seq: int
    limits: Limits
    heartbeat_seconds: int
    def __init__(self, host_id: _Optional[str] = ..., committed_seq: _Optional[int] = ..., limits: _Optional[_Union[Limits, _Mapping]] = ..., heartbeat_seconds: _Optional[int] = ...) -> None: ...

class Ack(_message.Message):
    __slots__ = ("committed_seq",)
    COMMITTED_SEQ_FIELD_NUMBER: _ClassVar[int]
    committed_seq: int
    def __init__(self, committed_seq: _Optional[int] = ...) -> None: ...

class ReportResponse(_message.Message):
    __slots__ = ("welcome", "ack", "heartbeat")
    WELCOME_FIELD_NUMBER: _ClassVar[int]
    ACK_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    welcome: Welcome
    ack: Ack
    heartbeat: Heartbeat
    def __init__(self, welcome: _Optional[_Union[Welcome, _Mapping]] = ..., ack: _Optional[_Union[Ack, _Mapping]] = ..., heartbeat: _Optional[_Union[Heartbeat, _Mapping]] = ...) -> None: ...

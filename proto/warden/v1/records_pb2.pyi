from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Severity(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SEVERITY_UNSPECIFIED: _ClassVar[Severity]
    SEVERITY_DEBUG: _ClassVar[Severity]
    SEVERITY_INFO: _ClassVar[Severity]
    SEVERITY_NOTICE: _ClassVar[Severity]
    SEVERITY_WARNING: _ClassVar[Severity]
    SEVERITY_ERROR: _ClassVar[Severity]
    SEVERITY_CRITICAL: _ClassVar[Severity]
SEVERITY_UNSPECIFIED: Severity
SEVERITY_DEBUG: Severity
SEVERITY_INFO: Severity
SEVERITY_NOTICE: Severity
SEVERITY_WARNING: Severity
SEVERITY_ERROR: Severity
SEVERITY_CRITICAL: Severity

class Value(_message.Message):
    __slots__ = ("string_value", "int_value", "double_value", "bool_value")
    STRING_VALUE_FIELD_NUMBER: _ClassVar[int]
    INT_VALUE_FIELD_NUMBER: _ClassVar[int]
    DOUBLE_VALUE_FIELD_NUMBER: _ClassVar[int]
    BOOL_VALUE_FIELD_NUMBER: _ClassVar[int]
    string_value: str
    int_value: int
    double_value: float
    bool_value: bool
    def __init__(self, string_value: _Optional[str] = ..., int_value: _Optional[int] = ..., double_value: _Optional[float] = ..., bool_value: _Optional[bool] = ...) -> None: ...

class MetricSample(_message.Message):
    __slots__ = ("name", "labels", "value", "time_unix_nano")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    TIME_UNIX_NANO_FIELD_NUMBER: _ClassVar[int]
    name: str
    labels: _containers.ScalarMap[str, str]
    value: float
    time_unix_nano: int
    def __init__(self, name: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ..., value: _Optional[float] = ..., time_unix_nano: _Optional[int] = ...) -> None: ...

class OsSection(_message.Message):
    __slots__ = ("hostname", "os_name", "os_id", "os_version", "kernel", "arch", "boot_time_unix", "agent_version")
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    OS_NAME_FIELD_NUMBER: _ClassVar[int]
    OS_ID_FIELD_NUMBER: _ClassVar[int]
    OS_VERSION_FIELD_NUMBER: _ClassVar[int]
    KERNEL_FIELD_NUMBER: _ClassVar[int]
    ARCH_FIELD_NUMBER: _ClassVar[int]
    BOOT_TIME_UNIX_FIELD_NUMBER: _ClassVar[int]
    AGENT_VERSION_FIELD_NUMBER: _ClassVar[int]
    hostname: str
    os_name: str
    os_id: str
    os_version: str
    kernel: str
    arch: str
    boot_time_unix: int
    agent_version: str
    def __init__(self, hostname: _Optional[str] = ..., os_name: _Optional[str] = ..., os_id: _Optional[str] = ..., os_version: _Optional[str] = ..., kernel: _Optional[str] = ..., arch: _Optional[str] = ..., boot_time_unix: _Optional[int] = ..., agent_version: _Optional[str] = ...) -> None: ...

class HardwareSection(_message.Message):
    __slots__ = ("cpu_model", "cpu_cores_logical", "cpu_cores_physical", "memory_bytes", "swap_bytes")
    CPU_MODEL_FIELD_NUMBER: _ClassVar[int]
    CPU_CORES_LOGICAL_FIELD_NUMBER: _ClassVar[int]
    CPU_CORES_PHYSICAL_FIELD_NUMBER: _ClassVar[int]
    MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    SWAP_BYTES_FIELD_NUMBER: _ClassVar[int]
    cpu_model: str
    cpu_cores_logical: int
    cpu_cores_physical: int
    memory_bytes: int
    swap_bytes: int
    def __init__(self, cpu_model: _Optional[str] = ..., cpu_cores_logical: _Optional[int] = ..., cpu_cores_physical: _Optional[int] = ..., memory_bytes: _Optional[int] = ..., swap_bytes: _Optional[int] = ...) -> None: ...

class Filesystem(_message.Message):
    __slots__ = ("mountpoint", "device", "fstype", "total_bytes", "total_inodes", "read_only")
    MOUNTPOINT_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    FSTYPE_FIELD_NUMBER: _ClassVar[int]
    TOTAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    TOTAL_INODES_FIELD_NUMBER: _ClassVar[int]
    READ_ONLY_FIELD_NUMBER: _ClassVar[int]
    mountpoint: str
    device: str
    fstype: str
    total_bytes: int
    total_inodes: int
    read_only: bool
    def __init__(self, mountpoint: _Optional[str] = ..., device: _Optional[str] = ..., fstype: _Optional[str] = ..., total_bytes: _Optional[int] = ..., total_inodes: _Optional[int] = ..., read_only: _Optional[bool] = ...) -> None: ...

class FilesystemsSection(_message.Message):
    __slots__ = ("filesystems",)
    FILESYSTEMS_FIELD_NUMBER: _ClassVar[int]
    filesystems: _containers.RepeatedCompositeFieldContainer[Filesystem]
    def __init__(self, filesystems: _Optional[_Iterable[_Union[Filesystem, _Mapping]]] = ...) -> None: ...

class InventorySnapshot(_message.Message):
    __slots__ = ("time_unix_nano", "os", "hardware", "filesystems")
    TIME_UNIX_NANO_FIELD_NUMBER: _ClassVar[int]
    OS_FIELD_NUMBER: _ClassVar[int]
    HARDWARE_FIELD_NUMBER: _ClassVar[int]
    FILESYSTEMS_FIELD_NUMBER: _ClassVar[int]
    time_unix_nano: int
    os: OsSection
    hardware: HardwareSection
    filesystems: FilesystemsSection
    def __init__(self, time_unix_nano: _Optional[int] = ..., os: _Optional[_Union[OsSection, _Mapping]] = ..., hardware: _Optional[_Union[HardwareSection, _Mapping]] = ..., filesystems: _Optional[_Union[FilesystemsSection, _Mapping]] = ...) -> None: ...

class Event(_message.Message):
    __slots__ = ("kind", "severity", "time_unix_nano", "fields", "raw", "source")
    class FieldsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: Value
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Value, _Mapping]] = ...) -> None: ...
    KIND_FIELD_NUMBER: _ClassVar[int]
    SEVERITY_FIELD_NUMBER: _ClassVar[int]
    TIME_UNIX_NANO_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    RAW_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    kind: str
    severity: Severity
    time_unix_nano: int
    fields: _containers.MessageMap[str, Value]
    raw: str
    source: str
    def __init__(self, kind: _Optional[str] = ..., severity: _Optional[_Union[Severity, str]] = ..., time_unix_nano: _Optional[int] = ..., fields: _Optional[_Mapping[str, Value]] = ..., raw: _Optional[str] = ..., source: _Optional[str] = ...) -> None: ...

class Record(_message.Message):
    __slots__ = ("metric", "inventory", "event")
    METRIC_FIELD_NUMBER: _ClassVar[int]
    INVENTORY_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    metric: MetricSample
    inventory: InventorySnapshot
    event: Event
    def __init__(self, metric: _Optional[_Union[MetricSample, _Mapping]] = ..., inventory: _Optional[_Union[InventorySnapshot, _Mapping]] = ..., event: _Optional[_Union[Event, _Mapping]] = ...) -> None: ...

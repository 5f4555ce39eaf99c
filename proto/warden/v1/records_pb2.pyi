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
    __slots__ = ("hostname", "os_name", "os_id", "os_version", "kernel", "arch", "boot_time_unix", "agent_version", "timezone")
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    OS_NAME_FIELD_NUMBER: _ClassVar[int]
    OS_ID_FIELD_NUMBER: _ClassVar[int]
    OS_VERSION_FIELD_NUMBER: _ClassVar[int]
    KERNEL_FIELD_NUMBER: _ClassVar[int]
    ARCH_FIELD_NUMBER: _ClassVar[int]
    BOOT_TIME_UNIX_FIELD_NUMBER: _ClassVar[int]
    AGENT_VERSION_FIELD_NUMBER: _ClassVar[int]
    TIMEZONE_FIELD_NUMBER: _ClassVar[int]
    hostname: str
    os_name: str
    os_id: str
    os_version: str
    kernel: str
    arch: str
    boot_time_unix: int
    agent_version: str
    timezone: str
    def __init__(self, hostname: _Optional[str] = ..., os_name: _Optional[str] = ..., os_id: _Optional[str] = ..., os_version: _Optional[str] = ..., kernel: _Optional[str] = ..., arch: _Optional[str] = ..., boot_time_unix: _Optional[int] = ..., agent_version: _Optional[str] = ..., timezone: _Optional[str] = ...) -> None: ...

class HardwareSection(_message.Message):
    __slots__ = ("cpu_model", "cpu_cores_logical", "cpu_cores_physical", "memory_bytes", "swap_bytes", "virtualization", "disks")
    CPU_MODEL_FIELD_NUMBER: _ClassVar[int]
    CPU_CORES_LOGICAL_FIELD_NUMBER: _ClassVar[int]
    CPU_CORES_PHYSICAL_FIELD_NUMBER: _ClassVar[int]
    MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    SWAP_BYTES_FIELD_NUMBER: _ClassVar[int]
    VIRTUALIZATION_FIELD_NUMBER: _ClassVar[int]
    DISKS_FIELD_NUMBER: _ClassVar[int]
    cpu_model: str
    cpu_cores_logical: int
    cpu_cores_physical: int
    memory_bytes: int
    swap_bytes: int
    virtualization: str
    disks: _containers.RepeatedCompositeFieldContainer[BlockDevice]
    def __init__(self, cpu_model: _Optional[str] = ..., cpu_cores_logical: _Optional[int] = ..., cpu_cores_physical: _Optional[int] = ..., memory_bytes: _Optional[int] = ..., swap_bytes: _Optional[int] = ..., virtualization: _Optional[str] = ..., disks: _Optional[_Iterable[_Union[BlockDevice, _Mapping]]] = ...) -> None: ...

class BlockDevice(_message.Message):
    __slots__ = ("name", "model", "serial", "size_bytes", "rotational", "transport")
    NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    SERIAL_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    ROTATIONAL_FIELD_NUMBER: _ClassVar[int]
    TRANSPORT_FIELD_NUMBER: _ClassVar[int]
    name: str
    model: str
    serial: str
    size_bytes: int
    rotational: bool
    transport: str
    def __init__(self, name: _Optional[str] = ..., model: _Optional[str] = ..., serial: _Optional[str] = ..., size_bytes: _Optional[int] = ..., rotational: _Optional[bool] = ..., transport: _Optional[str] = ...) -> None: ...

class NetworkInterface(_message.Message):
    __slots__ = ("name", "mac", "addresses", "up", "speed_mbps", "mtu")
    NAME_FIELD_NUMBER: _ClassVar[int]
    MAC_FIELD_NUMBER: _ClassVar[int]
    ADDRESSES_FIELD_NUMBER: _ClassVar[int]
    UP_FIELD_NUMBER: _ClassVar[int]
    SPEED_MBPS_FIELD_NUMBER: _ClassVar[int]
    MTU_FIELD_NUMBER: _ClassVar[int]
    name: str
    mac: str
    addresses: _containers.RepeatedScalarFieldContainer[str]
    up: bool
    speed_mbps: int
    mtu: int
    def __init__(self, name: _Optional[str] = ..., mac: _Optional[str] = ..., addresses: _Optional[_Iterable[str]] = ..., up: _Optional[bool] = ..., speed_mbps: _Optional[int] = ..., mtu: _Optional[int] = ...) -> None: ...

class NetworkSection(_message.Message):
    __slots__ = ("interfaces",)
    INTERFACES_FIELD_NUMBER: _ClassVar[int]
    interfaces: _containers.RepeatedCompositeFieldContainer[NetworkInterface]
    def __init__(self, interfaces: _Optional[_Iterable[_Union[NetworkInterface, _Mapping]]] = ...) -> None: ...

class TimeSyncSection(_message.Message):
    __slots__ = ("service", "synchronized", "ntp_enabled")
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    SYNCHRONIZED_FIELD_NUMBER: _ClassVar[int]
    NTP_ENABLED_FIELD_NUMBER: _ClassVar[int]
    service: str
    synchronized: bool
    ntp_enabled: bool
    def __init__(self, service: _Optional[str] = ..., synchronized: _Optional[bool] = ..., ntp_enabled: _Optional[bool] = ...) -> None: ...

class Account(_message.Message):
    __slots__ = ("name", "uid", "gid", "home", "shell", "login_shell", "locked", "empty_password", "password_age_days", "last_login_unix", "admin")
    NAME_FIELD_NUMBER: _ClassVar[int]
    UID_FIELD_NUMBER: _ClassVar[int]
    GID_FIELD_NUMBER: _ClassVar[int]
    HOME_FIELD_NUMBER: _ClassVar[int]
    SHELL_FIELD_NUMBER: _ClassVar[int]
    LOGIN_SHELL_FIELD_NUMBER: _ClassVar[int]
    LOCKED_FIELD_NUMBER: _ClassVar[int]
    EMPTY_PASSWORD_FIELD_NUMBER: _ClassVar[int]
    PASSWORD_AGE_DAYS_FIELD_NUMBER: _ClassVar[int]
    LAST_LOGIN_UNIX_FIELD_NUMBER: _ClassVar[int]
    ADMIN_FIELD_NUMBER: _ClassVar[int]
    name: str
    uid: int
    gid: int
    home: str
    shell: str
    login_shell: bool
    locked: bool
    empty_password: bool
    password_age_days: int
    last_login_unix: int
    admin: bool
    def __init__(self, name: _Optional[str] = ..., uid: _Optional[int] = ..., gid: _Optional[int] = ..., home: _Optional[str] = ..., shell: _Optional[str] = ..., login_shell: _Optional[bool] = ..., locked: _Optional[bool] = ..., empty_password: _Optional[bool] = ..., password_age_days: _Optional[int] = ..., last_login_unix: _Optional[int] = ..., admin: _Optional[bool] = ...) -> None: ...

class Group(_message.Message):
    __slots__ = ("name", "gid", "members")
    NAME_FIELD_NUMBER: _ClassVar[int]
    GID_FIELD_NUMBER: _ClassVar[int]
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    name: str
    gid: int
    members: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., gid: _Optional[int] = ..., members: _Optional[_Iterable[str]] = ...) -> None: ...

class AccountsSection(_message.Message):
    __slots__ = ("users", "groups", "uid0_users", "admin_users", "sudoers_entries", "shadow_readable")
    USERS_FIELD_NUMBER: _ClassVar[int]
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    UID0_USERS_FIELD_NUMBER: _ClassVar[int]
    ADMIN_USERS_FIELD_NUMBER: _ClassVar[int]
    SUDOERS_ENTRIES_FIELD_NUMBER: _ClassVar[int]
    SHADOW_READABLE_FIELD_NUMBER: _ClassVar[int]
    users: _containers.RepeatedCompositeFieldContainer[Account]
    groups: _containers.RepeatedCompositeFieldContainer[Group]
    uid0_users: _containers.RepeatedScalarFieldContainer[str]
    admin_users: _containers.RepeatedScalarFieldContainer[str]
    sudoers_entries: _containers.RepeatedScalarFieldContainer[str]
    shadow_readable: bool
    def __init__(self, users: _Optional[_Iterable[_Union[Account, _Mapping]]] = ..., groups: _Optional[_Iterable[_Union[Group, _Mapping]]] = ..., uid0_users: _Optional[_Iterable[str]] = ..., admin_users: _Optional[_Iterable[str]] = ..., sudoers_entries: _Optional[_Iterable[str]] = ..., shadow_readable: _Optional[bool] = ...) -> None: ...

class ListeningPort(_message.Message):
    __slots__ = ("protocol", "address", "port", "pid", "process", "user")
    PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    PROCESS_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    protocol: str
    address: str
    port: int
    pid: int
    process: str
    user: str
    def __init__(self, protocol: _Optional[str] = ..., address: _Optional[str] = ..., port: _Optional[int] = ..., pid: _Optional[int] = ..., process: _Optional[str] = ..., user: _Optional[str] = ...) -> None: ...

class ListeningSection(_message.Message):
    __slots__ = ("ports",)
    PORTS_FIELD_NUMBER: _ClassVar[int]
    ports: _containers.RepeatedCompositeFieldContainer[ListeningPort]
    def __init__(self, ports: _Optional[_Iterable[_Union[ListeningPort, _Mapping]]] = ...) -> None: ...

class FirewallBackend(_message.Message):
    __slots__ = ("name", "present", "active", "rule_count", "error")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PRESENT_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    RULE_COUNT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    name: str
    present: bool
    active: bool
    rule_count: int
    error: str
    def __init__(self, name: _Optional[str] = ..., present: _Optional[bool] = ..., active: _Optional[bool] = ..., rule_count: _Optional[int] = ..., error: _Optional[str] = ...) -> None: ...

class FirewallSection(_message.Message):
    __slots__ = ("backends", "active")
    BACKENDS_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    backends: _containers.RepeatedCompositeFieldContainer[FirewallBackend]
    active: bool
    def __init__(self, backends: _Optional[_Iterable[_Union[FirewallBackend, _Mapping]]] = ..., active: _Optional[bool] = ...) -> None: ...

class AntivirusSection(_message.Message):
    __slots__ = ("product", "installed", "signatures_time_unix", "signature_age_hours")
    PRODUCT_FIELD_NUMBER: _ClassVar[int]
    INSTALLED_FIELD_NUMBER: _ClassVar[int]
    SIGNATURES_TIME_UNIX_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_AGE_HOURS_FIELD_NUMBER: _ClassVar[int]
    product: str
    installed: bool
    signatures_time_unix: int
    signature_age_hours: float
    def __init__(self, product: _Optional[str] = ..., installed: _Optional[bool] = ..., signatures_time_unix: _Optional[int] = ..., signature_age_hours: _Optional[float] = ...) -> None: ...

class Package(_message.Message):
    __slots__ = ("name", "version", "arch")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ARCH_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: str
    arch: str
    def __init__(self, name: _Optional[str] = ..., version: _Optional[str] = ..., arch: _Optional[str] = ...) -> None: ...

class PackagesSection(_message.Message):
    __slots__ = ("manager", "content_hash", "full", "count", "packages")
    MANAGER_FIELD_NUMBER: _ClassVar[int]
    CONTENT_HASH_FIELD_NUMBER: _ClassVar[int]
    FULL_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    PACKAGES_FIELD_NUMBER: _ClassVar[int]
    manager: str
    content_hash: str
    full: bool
    count: int
    packages: _containers.RepeatedCompositeFieldContainer[Package]
    def __init__(self, manager: _Optional[str] = ..., content_hash: _Optional[str] = ..., full: _Optional[bool] = ..., count: _Optional[int] = ..., packages: _Optional[_Iterable[_Union[Package, _Mapping]]] = ...) -> None: ...

class PendingUpdate(_message.Message):
    __slots__ = ("name", "current_version", "new_version", "arch", "security", "origin")
    NAME_FIELD_NUMBER: _ClassVar[int]
    CURRENT_VERSION_FIELD_NUMBER: _ClassVar[int]
    NEW_VERSION_FIELD_NUMBER: _ClassVar[int]
    ARCH_FIELD_NUMBER: _ClassVar[int]
    SECURITY_FIELD_NUMBER: _ClassVar[int]
    ORIGIN_FIELD_NUMBER: _ClassVar[int]
    name: str
    current_version: str
    new_version: str
    arch: str
    security: bool
    origin: str
    def __init__(self, name: _Optional[str] = ..., current_version: _Optional[str] = ..., new_version: _Optional[str] = ..., arch: _Optional[str] = ..., security: _Optional[bool] = ..., origin: _Optional[str] = ...) -> None: ...

class UpdatesSection(_message.Message):
    __slots__ = ("manager", "pending", "pending_count", "security_count", "last_update_unix", "running_kernel", "newest_kernel", "reboot_required", "reboot_required_packages", "error")
    MANAGER_FIELD_NUMBER: _ClassVar[int]
    PENDING_FIELD_NUMBER: _ClassVar[int]
    PENDING_COUNT_FIELD_NUMBER: _ClassVar[int]
    SECURITY_COUNT_FIELD_NUMBER: _ClassVar[int]
    LAST_UPDATE_UNIX_FIELD_NUMBER: _ClassVar[int]
    RUNNING_KERNEL_FIELD_NUMBER: _ClassVar[int]
    NEWEST_KERNEL_FIELD_NUMBER: _ClassVar[int]
    REBOOT_REQUIRED_FIELD_NUMBER: _ClassVar[int]
    REBOOT_REQUIRED_PACKAGES_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    manager: str
    pending: _containers.RepeatedCompositeFieldContainer[PendingUpdate]
    pending_count: int
    security_count: int
    last_update_unix: int
    running_kernel: str
    newest_kernel: str
    reboot_required: bool
    reboot_required_packages: _containers.RepeatedScalarFieldContainer[str]
    error: str
    def __init__(self, manager: _Optional[str] = ..., pending: _Optional[_Iterable[_Union[PendingUpdate, _Mapping]]] = ..., pending_count: _Optional[int] = ..., security_count: _Optional[int] = ..., last_update_unix: _Optional[int] = ..., running_kernel: _Optional[str] = ..., newest_kernel: _Optional[str] = ..., reboot_required: _Optional[bool] = ..., reboot_required_packages: _Optional[_Iterable[str]] = ..., error: _Optional[str] = ...) -> None: ...

class DiskHealth(_message.Message):
    __slots__ = ("device", "model", "serial", "protocol", "smart_passed", "reallocated_sectors", "pending_sectors", "temperature_c", "power_on_hours", "media_errors", "percentage_used")
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    SERIAL_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    SMART_PASSED_FIELD_NUMBER: _ClassVar[int]
    REALLOCATED_SECTORS_FIELD_NUMBER: _ClassVar[int]
    PENDING_SECTORS_FIELD_NUMBER: _ClassVar[int]
    TEMPERATURE_C_FIELD_NUMBER: _ClassVar[int]
    POWER_ON_HOURS_FIELD_NUMBER: _ClassVar[int]
    MEDIA_ERRORS_FIELD_NUMBER: _ClassVar[int]
    PERCENTAGE_USED_FIELD_NUMBER: _ClassVar[int]
    device: str
    model: str
    serial: str
    protocol: str
    smart_passed: bool
    reallocated_sectors: int
    pending_sectors: int
    temperature_c: int
    power_on_hours: int
    media_errors: int
    percentage_used: int
    def __init__(self, device: _Optional[str] = ..., model: _Optional[str] = ..., serial: _Optional[str] = ..., protocol: _Optional[str] = ..., smart_passed: _Optional[bool] = ..., reallocated_sectors: _Optional[int] = ..., pending_sectors: _Optional[int] = ..., temperature_c: _Optional[int] = ..., power_on_hours: _Optional[int] = ..., media_errors: _Optional[int] = ..., percentage_used: _Optional[int] = ...) -> None: ...

class DiskHealthSection(_message.Message):
    __slots__ = ("devices", "error")
    DEVICES_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    devices: _containers.RepeatedCompositeFieldContainer[DiskHealth]
    error: str
    def __init__(self, devices: _Optional[_Iterable[_Union[DiskHealth, _Mapping]]] = ..., error: _Optional[str] = ...) -> None: ...

class BackupSet(_message.Message):
    __slots__ = ("name", "source", "newest", "newest_time_unix", "newest_size_bytes", "count", "median_previous_size_bytes", "offsite_configured", "offsite_present", "offsite_matches", "verification", "error")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    NEWEST_FIELD_NUMBER: _ClassVar[int]
    NEWEST_TIME_UNIX_FIELD_NUMBER: _ClassVar[int]
    NEWEST_SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    MEDIAN_PREVIOUS_SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    OFFSITE_CONFIGURED_FIELD_NUMBER: _ClassVar[int]
    OFFSITE_PRESENT_FIELD_NUMBER: _ClassVar[int]
    OFFSITE_MATCHES_FIELD_NUMBER: _ClassVar[int]
    VERIFICATION_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    name: str
    source: str
    newest: str
    newest_time_unix: int
    newest_size_bytes: int
    count: int
    median_previous_size_bytes: int
    offsite_configured: bool
    offsite_present: bool
    offsite_matches: bool
    verification: str
    error: str
    def __init__(self, name: _Optional[str] = ..., source: _Optional[str] = ..., newest: _Optional[str] = ..., newest_time_unix: _Optional[int] = ..., newest_size_bytes: _Optional[int] = ..., count: _Optional[int] = ..., median_previous_size_bytes: _Optional[int] = ..., offsite_configured: _Optional[bool] = ..., offsite_present: _Optional[bool] = ..., offsite_matches: _Optional[bool] = ..., verification: _Optional[str] = ..., error: _Optional[str] = ...) -> None: ...

class BackupsSection(_message.Message):
    __slots__ = ("sets",)
    SETS_FIELD_NUMBER: _ClassVar[int]
    sets: _containers.RepeatedCompositeFieldContainer[BackupSet]
    def __init__(self, sets: _Optional[_Iterable[_Union[BackupSet, _Mapping]]] = ...) -> None: ...

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
    __slots__ = ("time_unix_nano", "os", "hardware", "filesystems", "network", "time_sync", "accounts", "listening", "firewall", "antivirus", "packages", "updates", "disk_health", "backups")
    TIME_UNIX_NANO_FIELD_NUMBER: _ClassVar[int]
    OS_FIELD_NUMBER: _ClassVar[int]
    HARDWARE_FIELD_NUMBER: _ClassVar[int]
    FILESYSTEMS_FIELD_NUMBER: _ClassVar[int]
    NETWORK_FIELD_NUMBER: _ClassVar[int]
    TIME_SYNC_FIELD_NUMBER: _ClassVar[int]
    ACCOUNTS_FIELD_NUMBER: _ClassVar[int]
    LISTENING_FIELD_NUMBER: _ClassVar[int]
    FIREWALL_FIELD_NUMBER: _ClassVar[int]
    ANTIVIRUS_FIELD_NUMBER: _ClassVar[int]
    PACKAGES_FIELD_NUMBER: _ClassVar[int]
    UPDATES_FIELD_NUMBER: _ClassVar[int]
    DISK_HEALTH_FIELD_NUMBER: _ClassVar[int]
    BACKUPS_FIELD_NUMBER: _ClassVar[int]
    time_unix_nano: int
    os: OsSection
    hardware: HardwareSection
    filesystems: FilesystemsSection
    network: NetworkSection
    time_sync: TimeSyncSection
    accounts: AccountsSection
    listening: ListeningSection
    firewall: FirewallSection
    antivirus: AntivirusSection
    packages: PackagesSection
    updates: UpdatesSection
    disk_health: DiskHealthSection
    backups: BackupsSection
    def __init__(self, time_unix_nano: _Optional[int] = ..., os: _Optional[_Union[OsSection, _Mapping]] = ..., hardware: _Optional[_Union[HardwareSection, _Mapping]] = ..., filesystems: _Optional[_Union[FilesystemsSection, _Mapping]] = ..., network: _Optional[_Union[NetworkSection, _Mapping]] = ..., time_sync: _Optional[_Union[TimeSyncSection, _Mapping]] = ..., accounts: _Optional[_Union[AccountsSection, _Mapping]] = ..., listening: _Optional[_Union[ListeningSection, _Mapping]] = ..., firewall: _Optional[_Union[FirewallSection, _Mapping]] = ..., antivirus: _Optional[_Union[AntivirusSection, _Mapping]] = ..., packages: _Optional[_Union[PackagesSection, _Mapping]] = ..., updates: _Optional[_Union[UpdatesSection, _Mapping]] = ..., disk_health: _Optional[_Union[DiskHealthSection, _Mapping]] = ..., backups: _Optional[_Union[BackupsSection, _Mapping]] = ...) -> None: ...

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

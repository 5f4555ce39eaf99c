from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ListAlertsRequest(_message.Message):
    __slots__ = ("resolved_since_unix_nano", "match")
    class MatchEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    RESOLVED_SINCE_UNIX_NANO_FIELD_NUMBER: _ClassVar[int]
    MATCH_FIELD_NUMBER: _ClassVar[int]
    resolved_since_unix_nano: int
    match: _containers.ScalarMap[str, str]
    def __init__(self, resolved_since_unix_nano: _Optional[int] = ..., match: _Optional[_Mapping[str, str]] = ...) -> None: ...

class ListAlertsResponse(_message.Message):
    __slots__ = ("alerts",)
    ALERTS_FIELD_NUMBER: _ClassVar[int]
    alerts: _containers.RepeatedCompositeFieldContainer[Alert]
    def __init__(self, alerts: _Optional[_Iterable[_Union[Alert, _Mapping]]] = ...) -> None: ...

class AcknowledgeRequest(_message.Message):
    __slots__ = ("alert_id", "comment", "remove")
    ALERT_ID_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    REMOVE_FIELD_NUMBER: _ClassVar[int]
    alert_id: int
    comment: str
    remove: bool
    def __init__(self, alert_id: _Optional[int] = ..., comment: _Optional[str] = ..., remove: _Optional[bool] = ...) -> None: ...

class SilenceMatcher(_message.Message):
    __slots__ = ("label", "value", "op")
    LABEL_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    OP_FIELD_NUMBER: _ClassVar[int]
    label: str
    value: str
    op: str
    def __init__(self, label: _Optional[str] = ..., value: _Optional[str] = ..., op: _Optional[str] = ...) -> None: ...

class Silence(_message.Message):
    __slots__ = ("id", "matchers", "starts_unix_nano", "ends_unix_nano", "author", "comment", "active")
    ID_FIELD_NUMBER: _ClassVar[int]
    MATCHERS_FIELD_NUMBER: _ClassVar[int]
    STARTS_UNIX_NANO_FIELD_NUMBER: _ClassVar[int]
    ENDS_UNIX_NANO_FIELD_NUMBER: _ClassVar[int]
    AUTHOR_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    id: int
    matchers: _containers.RepeatedCompositeFieldContainer[SilenceMatcher]
    starts_unix_nano: int
    ends_unix_nano: int
    author: str
    comment: str
    active: bool
    def __init__(self, id: _Optional[int] = ..., matchers: _Optional[_Iterable[_Union[SilenceMatcher, _Mapping]]] = ..., starts_unix_nano: _Optional[int] = ..., ends_unix_nano: _Optional[int] = ..., author: _Optional[str] = ..., comment: _Optional[str] = ..., active: _Optional[bool] = ...) -> None: ...

class CreateSilenceRequest(_message.Message):
    __slots__ = ("matchers", "starts_unix_nano", "ends_unix_nano", "comment")
    MATCHERS_FIELD_NUMBER: _ClassVar[int]
    STARTS_UNIX_NANO_FIELD_NUMBER: _ClassVar[int]
    ENDS_UNIX_NANO_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    matchers: _containers.RepeatedCompositeFieldContainer[SilenceMatcher]
    starts_unix_nano: int
    ends_unix_nano: int
    comment: str
    def __init__(self, matchers: _Optional[_Iterable[_Union[SilenceMatcher, _Mapping]]] = ..., starts_unix_nano: _Optional[int] = ..., ends_unix_nano: _Optional[int] = ..., comment: _Optional[str] = ...) -> None: ...

class ExpireSilenceRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: int
    def __init__(self, id: _Optional[int] = ...) -> None: ...

class ListSilencesRequest(_message.Message):
    __slots__ = ("include_expired",)
    INCLUDE_EXPIRED_FIELD_NUMBER: _ClassVar[int]
    include_expired: bool
    def __init__(self, include_expired: _Optional[bool] = ...) -> None: ...

class ListSilencesResponse(_message.Message):
    __slots__ = ("silences",)
    SILENCES_FIELD_NUMBER: _ClassVar[int]
    silences: _containers.RepeatedCompositeFieldContainer[Silence]
    def __init__(self, silences: _Optional[_Iterable[_Union[Silence, _Mapping]]] = ...) -> None: ...

class WatchAlertsRequest(_message.Message):
    __slots__ = ("after_position", "from_now", "match")
    class MatchEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    AFTER_POSITION_FIELD_NUMBER: _ClassVar[int]
    FROM_NOW_FIELD_NUMBER: _ClassVar[int]
    MATCH_FIELD_NUMBER: _ClassVar[int]
    after_position: int
    from_now: bool
    match: _containers.ScalarMap[str, str]
    def __init__(self, after_position: _Optional[int] = ..., from_now: _Optional[bool] = ..., match: _Optional[_Mapping[str, str]] = ...) -> None: ...

class Alert(_message.Message):
    __slots__ = ("id", "fingerprint", "rule", "severity", "state", "labels", "annotations", "starts_unix_nano", "fired_unix_nano", "ends_unix_nano", "value", "acknowledged_by", "acknowledged_unix_nano", "acknowledge_comment", "silenced_by", "inhibited")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class AnnotationsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    RULE_FIELD_NUMBER: _ClassVar[int]
    SEVERITY_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    ANNOTATIONS_FIELD_NUMBER: _ClassVar[int]
    STARTS_UNIX_NANO_FIELD_NUMBER: _ClassVar[int]
    FIRED_UNIX_NANO_FIELD_NUMBER: _ClassVar[int]
    ENDS_UNIX_NANO_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    ACKNOWLEDGED_BY_FIELD_NUMBER: _ClassVar[int]
    ACKNOWLEDGED_UNIX_NANO_FIELD_NUMBER: _ClassVar[int]
    ACKNOWLEDGE_COMMENT_FIELD_NUMBER: _ClassVar[int]
    SILENCED_BY_FIELD_NUMBER: _ClassVar[int]
    INHIBITED_FIELD_NUMBER: _ClassVar[int]
    id: int
    fingerprint: str
    rule: str
    severity: str
    state: str
    labels: _containers.ScalarMap[str, str]
    annotations: _containers.ScalarMap[str, str]
    starts_unix_nano: int
    fired_unix_nano: int
    ends_unix_nano: int
    value: float
    acknowledged_by: str
    acknowledged_unix_nano: int
    acknowledge_comment: str
    silenced_by: _containers.RepeatedScalarFieldContainer[int]
    inhibited: bool
    def __init__(self, id: _Optional[int] = ..., fingerprint: _Optional[str] = ..., rule: _Optional[str] = ..., severity: _Optional[str] = ..., state: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ..., annotations: _Optional[_Mapping[str, str]] = ..., starts_unix_nano: _Optional[int] = ..., fired_unix_nano: _Optional[int] = ..., ends_unix_nano: _Optional[int] = ..., value: _Optional[float] = ..., acknowledged_by: _Optional[str] = ..., acknowledged_unix_nano: _Optional[int] = ..., acknowledge_comment: _Optional[str] = ..., silenced_by: _Optional[_Iterable[int]] = ..., inhibited: _Optional[bool] = ...) -> None: ...

class FeedEntry(_message.Message):
    __slots__ = ("position", "time_unix_nano", "kind", "alert", "detail_json", "gap")
    POSITION_FIELD_NUMBER: _ClassVar[int]
    TIME_UNIX_NANO_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    ALERT_FIELD_NUMBER: _ClassVar[int]
    DETAIL_JSON_FIELD_NUMBER: _ClassVar[int]
    GAP_FIELD_NUMBER: _ClassVar[int]
    position: int
    time_unix_nano: int
    kind: str
    alert: Alert
    detail_json: str
    gap: bool
    def __init__(self, position: _Optional[int] = ..., time_unix_nano: _Optional[int] = ..., kind: _Optional[str] = ..., alert: _Optional[_Union[Alert, _Mapping]] = ..., detail_json: _Optional[str] = ..., gap: _Optional[bool] = ...) -> None: ...

"""Target adapters: everything chaos-model knows about one system under test.

An adapter is a file (``chaos-target.toml``) read by :func:`load_adapter`, or a
:class:`TargetSpec` built in Python; a target whose observations need more than SQL and HTTP
names a Python driver class (``[target] driver = "module:Class"``) that implements
:class:`~chaos_model.adapter.driver.Target`.
"""

from chaos_model.adapter._compose_section import ComposeSpec
from chaos_model.adapter._llm_section import (
    AnswerRule,
    LLMSpec,
    llm_spec_from_json,
    llm_spec_to_json,
)
from chaos_model.adapter._load import load_adapter, parse_adapter
from chaos_model.adapter._oracle_section import LLM_STAGES, MODEL_STAGES, OracleSpec, StageGraph
from chaos_model.adapter._ready_section import (
    HttpCheck,
    LogCheck,
    NatsSubscriberCheck,
    ReadyCheck,
    TcpCheck,
)
from chaos_model.adapter._spec import (
    INFRASTRUCTURE,
    AttachSpec,
    DashboardSpec,
    Limits,
    ObserveSpec,
    PointsSpec,
    QueueSpec,
    ServiceSpec,
    TargetSpec,
    WebhookSpec,
)
from chaos_model.adapter.default import DEFAULT_FILE, default_target, load_target

__all__ = [
    "DEFAULT_FILE",
    "INFRASTRUCTURE",
    "LLM_STAGES",
    "MODEL_STAGES",
    "AnswerRule",
    "AttachSpec",
    "ComposeSpec",
    "DashboardSpec",
    "HttpCheck",
    "LLMSpec",
    "Limits",
    "LogCheck",
    "NatsSubscriberCheck",
    "ObserveSpec",
    "OracleSpec",
    "PointsSpec",
    "QueueSpec",
    "ReadyCheck",
    "ServiceSpec",
    "StageGraph",
    "TargetSpec",
    "TcpCheck",
    "WebhookSpec",
    "default_target",
    "llm_spec_from_json",
    "llm_spec_to_json",
    "load_adapter",
    "load_target",
    "parse_adapter",
]

"""All SQLModel tables; importing this package registers every table on SQLModel.metadata."""

from shared.db.tables.audit import AuditEvent
from shared.db.tables.auth import RevokedToken
from shared.db.tables.base import metadata, table_of
from shared.db.tables.cds import CdsClient, CdsFeedback, CdsJwtUse
from shared.db.tables.channels import ChannelDelivery, EmailRecipient, WebhookEndpoint
from shared.db.tables.core import (
    Assessment,
    IdempotencyRecord,
    OrgConfig,
    OutboxMessage,
    Patient,
    PatientUpdate,
    ProcessedEvent,
)
from shared.db.tables.deadletter import DeadLetter
from shared.db.tables.fhir import FhirPatientLink, FhirResourceLink
from shared.db.tables.identity import OidcProvider, WorklistSession
from shared.db.tables.reevaluation import ReevaluationRun
from shared.db.tables.reminders import Reminder, ReminderReconcileState, ReminderTransition, WorklistMember

__all__ = [
    "Assessment",
    "AuditEvent",
    "CdsClient",
    "CdsFeedback",
    "CdsJwtUse",
    "ChannelDelivery",
    "DeadLetter",
    "EmailRecipient",
    "FhirPatientLink",
    "FhirResourceLink",
    "IdempotencyRecord",
    "OidcProvider",
    "OrgConfig",
    "OutboxMessage",
    "Patient",
    "PatientUpdate",
    "ProcessedEvent",
    "ReevaluationRun",
    "Reminder",
    "ReminderReconcileState",
    "ReminderTransition",
    "RevokedToken",
    "WebhookEndpoint",
    "WorklistMember",
    "WorklistSession",
    "metadata",
    "table_of",
]

"""What every message shares: the Frozen base, constrained scalars, the item rules and InternalEvent."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
)
from pydantic_core import PydanticCustomError

from attune_shared.ids import (
    APPOINTMENT_REF_PATTERN,
    CLIENT_REF_PATTERN,
    EPISODE_REF_PATTERN,
    EVENT_REF_PATTERN,
    RESPONSE_REF_PATTERN,
)
from attune_shared.instruments import ItemError, check_items, is_integer_scale

# ---------------------------------------------------------------- constrained scalars


def _printable(value: str) -> str:
    # "Printable" as str.isprintable(): no control, format or separator characters except the ASCII space.
    if not value.isprintable():
        raise ValueError("must contain printable characters only")
    return value


def _integer_one(value: object) -> object:
    # Literal[1] on its own accepts true and 1.0 (they compare equal to 1); the contract says integer.
    if type(value) is not int:
        raise PydanticCustomError("int_type", "Input should be the integer 1")
    return value


def _not_future_year(value: int) -> int:
    # The bound moves every new year, so it cannot be a static `le=`; UTC decides which year "now" is.
    this_year = datetime.now(UTC).year
    if value > this_year:
        raise ValueError(f"must not be after the current year {this_year}")
    return value


EventId = Annotated[str, StringConstraints(min_length=1, max_length=200), AfterValidator(_printable)]
Ref = Annotated[str, StringConstraints(min_length=1, max_length=64), AfterValidator(_printable)]
Code = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._-]{1,64}$")]
Uuid = Annotated[
    str, StringConstraints(pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
]
ClientRef = Annotated[str, StringConstraints(pattern=CLIENT_REF_PATTERN)]
# Keyed pseudonyms of EHR identifiers (contract section 6): the only form they take beyond intake,
# so an EHR's own id (often built from the MRN) cannot even be validated onto an internal topic.
EventRef = Annotated[str, StringConstraints(pattern=EVENT_REF_PATTERN)]
AppointmentRef = Annotated[str, StringConstraints(pattern=APPOINTMENT_REF_PATTERN)]
ResponseRef = Annotated[str, StringConstraints(pattern=RESPONSE_REF_PATTERN)]
EpisodeRef = Annotated[str, StringConstraints(pattern=EPISODE_REF_PATTERN)]
SchemaVersion = Annotated[Literal[1], BeforeValidator(_integer_one)]
BirthYear = Annotated[int, Field(ge=1900), AfterValidator(_not_future_year)]
# BCP 47 (RFC 5646) syntax: language (2-3 letters, up to 3 extlangs), script, region, variants, extensions,
# private use; or a private-use-only tag. 4-8 letter primary subtags are left out: none is registered and
# they would let words like "english" through.
LanguageTag = Annotated[
    str,
    StringConstraints(
        max_length=64,
        pattern=(
            r"^(?:[A-Za-z]{2,3}(?:-[A-Za-z]{3}){0,3}(?:-[A-Za-z]{4})?(?:-(?:[A-Za-z]{2}|[0-9]{3}))?"
            r"(?:-(?:[A-Za-z0-9]{5,8}|[0-9][A-Za-z0-9]{3}))*(?:-[0-9A-WY-Za-wy-z](?:-[A-Za-z0-9]{2,8})+)*"
            r"(?:-[Xx](?:-[A-Za-z0-9]{1,8})+)?|[Xx](?:-[A-Za-z0-9]{1,8})+)$"
        ),
    ),
]
Items = list[int | float | None]

Modality = Literal["in_person", "video", "phone"]
MissedReason = Literal["no_show", "late_cancel"]
CancelledBy = Literal["client", "clinician", "clinic"]
ResponseStatus = Literal["completed", "amended"]
Respondent = Literal["client", "clinician"]
ClosureReason = Literal["planned", "mutual", "unilateral", "transferred", "other"]


class Frozen(BaseModel):
    """Base of every message: immutable, unknown fields rejected, no type coercion."""

    # strict: JSON still parses RFC 3339 strings into datetimes, but "3" is not 3 and true is not 1.
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


def validated_items(value: Any, info: ValidationInfo) -> Any:
    """Apply the instrument's item rules, raising at the offending item (intake's and measures' shapes)."""
    instrument = info.data.get("instrument")
    if instrument is None or not isinstance(value, list):
        return value  # the instrument's or the list's own error is the one to report
    try:
        check_items(instrument, value)
    except ItemError as exc:
        message = exc.message if exc.loc_index is not None else f"payload.items: {exc.message}"
        raise PydanticCustomError(
            "item_invalid", "{message}", {"message": message, "item_index": exc.loc_index}
        ) from None
    if is_integer_scale(instrument):
        # 3.0 is an integer in JSON's number model; store it as 3 so scores and round-trips stay ints.
        return [None if v is None else int(v) for v in value]
    return value


class InternalEvent(Frozen):
    """Common fields of the pseudonymised events intake and measures publish (no mrn, no free text)."""

    topic: ClassVar[str]

    event_id: Uuid
    event_type: str  # each subclass narrows this to one Literal with a default
    schema_version: SchemaVersion = 1
    occurred_at: AwareDatetime
    source: Code
    source_event_id: EventRef  # the pseudonym of the EHR's event_id
    clinic_id: Code
    client_ref: ClientRef
    episode_id: EpisodeRef

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        # Pydantic strips field defaults from the class; put event_type back so `SessionAttended.event_type`
        # names the type (a ClassVar could not share the field's name).
        default = cls.model_fields["event_type"].default
        if isinstance(default, str):
            setattr(cls, "event_type", default)  # noqa: B010 - a plain assignment would become a field

    @property
    def kafka_key(self) -> str:
        """Internal topics are keyed by client_ref, so one client's events stay in order."""
        return self.client_ref

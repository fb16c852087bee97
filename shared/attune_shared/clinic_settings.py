"""Per-clinic settings files: one reader, one set of format rules, one style of error, for every service.

A file is a JSON object::

    {
      "_comment": "why these values (optional, anywhere the file has an object of settings)",
      "default": {"setting": value, ...},
      "clinics": {"north-01": {"setting": value, ...}, ...}
    }

- `default` (when the service allows one) applies on top of the service's built-in values, and a
  clinic's entry on top of `default`, so a network-wide change is made once.
- Every key is optional: `{}` means the built-in values for every clinic.
- A key `_comment` (a string) is a comment at the top level, in `default`, in `clinics` and in each
  clinic's entry; any other unknown key is an error, so a typo stops the service at start.
- Clinic ids follow the contract's code syntax (1-64 letters, digits, `.`, `_`, `-`): a key that no
  clinic can have is a typo, not a clinic.
- JSON is strict: no duplicate keys (the later one would silently win), no NaN or Infinity.

The loader knows nothing of the values: each service passes `apply(base, entry)`, which returns
`base` with `entry`'s settings applied and raises ValueError (or pydantic's ValidationError, also a
ValueError) naming the setting that is wrong. Every error the loader raises is a
ClinicSettingsError whose message names the file, where in it (a JSON line and column, or the
key path such as `clinics.north-01.sla_high_hours`) and what is wrong.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, Generic, TypeVar

from pydantic import ValidationError

T = TypeVar("T")

COMMENT: Final = "_comment"
CLINIC_ID: Final = re.compile(r"^[A-Za-z0-9._-]{1,64}$")  # the contract's Code (attune_shared.events)

_JSON_KINDS: Final[Mapping[type, str]] = {
    dict: "an object",
    list: "an array",
    str: "a string",
    int: "a number",
    float: "a number",
    bool: "a boolean",
    type(None): "null",
}


class ClinicSettingsError(ValueError):
    """A per-clinic settings file that cannot be used; the message names the file, the place and the fault."""


@dataclass(frozen=True, slots=True)
class ClinicSettings(Generic[T]):
    """One kind of per-clinic settings: the default and each configured clinic's values."""

    default: T
    clinics: Mapping[str, T] = field(default_factory=lambda: MappingProxyType({}))

    def for_clinic(self, clinic_id: str) -> T:
        """The settings of one clinic; a clinic without an entry gets the default."""
        return self.clinics.get(clinic_id, self.default)


def load_clinic_settings(
    path: Path | None,
    *,
    setting: str,
    base: T,
    apply: Callable[[T, Mapping[str, Any]], T],
    allow_default: bool = True,
) -> ClinicSettings[T]:
    """Read and validate the file at `path`; without a file every clinic gets `base`.

    `setting` names where the path came from (the environment variable) in error messages.
    """
    if path is None:
        return ClinicSettings(base)
    where = f"{setting} {path}"
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ClinicSettingsError(f"{where}: cannot read the file ({exc})") from None
    try:
        data = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise ClinicSettingsError(
            f"{where}: line {exc.lineno} column {exc.colno}: cannot read JSON ({exc.msg})"
        ) from None
    except _DuplicateKey as exc:
        raise ClinicSettingsError(f"{where}: cannot read JSON ({exc})") from None
    except ValueError as exc:  # parse_constant, or a number too long to convert
        raise ClinicSettingsError(f"{where}: cannot read JSON ({exc})") from None
    try:
        return parse_clinic_settings(data, base=base, apply=apply, allow_default=allow_default)
    except ClinicSettingsError as exc:
        raise ClinicSettingsError(f"{where}: {exc}") from None


def parse_clinic_settings(
    data: object,
    *,
    base: T,
    apply: Callable[[T, Mapping[str, Any]], T],
    allow_default: bool = True,
) -> ClinicSettings[T]:
    """The settings in already-decoded JSON `data` (see the module docstring for the rules)."""
    sections = ("default", "clinics") if allow_default else ("clinics",)
    expected = " and/or ".join(f'"{s}"' for s in sections)
    if not isinstance(data, dict):
        raise ClinicSettingsError(f"the file must hold a JSON object with {expected}, not {_kind(data)}")
    unknown = sorted(set(data) - {*sections, COMMENT})
    if unknown:
        raise ClinicSettingsError(f"unknown top-level key(s) {unknown}; expected {expected}")
    _check_comment(data, "")
    default = base
    if "default" in data:
        default = _applied(apply, base, _entry(data["default"], "default"), "default")
    clinics_raw = data.get("clinics", {})
    if not isinstance(clinics_raw, dict):
        raise ClinicSettingsError(
            f"clinics: must be an object of clinic id -> settings, not {_kind(clinics_raw)}"
        )
    _check_comment(clinics_raw, "clinics")
    clinics: dict[str, T] = {}
    for clinic, raw in clinics_raw.items():
        if clinic == COMMENT:
            continue
        where = f"clinics.{clinic}"
        if not CLINIC_ID.fullmatch(clinic):
            raise ClinicSettingsError(
                f"clinics: {json.dumps(clinic)} is not a clinic id (1-64 letters, digits, '.', '_' or '-')"
            )
        clinics[clinic] = _applied(apply, default, _entry(raw, where), where)
    return ClinicSettings(default, MappingProxyType(clinics))


def _entry(raw: object, where: str) -> dict[str, Any]:
    """One object of settings, without its comment."""
    if not isinstance(raw, dict):
        raise ClinicSettingsError(f"{where}: must be an object of setting -> value, not {_kind(raw)}")
    _check_comment(raw, where)
    return {key: value for key, value in raw.items() if key != COMMENT}


def _applied(apply: Callable[[T, Mapping[str, Any]], T], base: T, entry: dict[str, Any], where: str) -> T:
    try:
        return apply(base, entry)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        loc = ".".join(str(part) for part in first["loc"])
        raise ClinicSettingsError(f"{where}{'.' + loc if loc else ''}: {first['msg']}") from None
    except (ValueError, TypeError) as exc:
        raise ClinicSettingsError(f"{where}: {exc}") from None


def _check_comment(obj: dict[str, Any], where: str) -> None:
    if COMMENT in obj and not isinstance(obj[COMMENT], str):
        place = f"{where}.{COMMENT}" if where else COMMENT
        raise ClinicSettingsError(f"{place}: a comment must be a string, not {_kind(obj[COMMENT])}")


def _kind(value: object) -> str:
    return _JSON_KINDS.get(type(value), "a JSON value")


class _DuplicateKey(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKey(f"the key {json.dumps(key)} appears twice in one object")
        result[key] = value
    return result


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")

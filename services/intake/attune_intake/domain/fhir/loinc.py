"""LOINC codes of the PHQ-9 and GAD-7 panels and their answer list (clinical-rules.md).

Every code below passes LOINC's mod-10 check digit and matches LOINC's published panels; GAD-7
item 2 is 68509-9 (68509-2 is not a valid LOINC code).
"""

from __future__ import annotations

from typing import Final

LOINC: Final = "http://loinc.org"
PHQ9_PANEL: Final = "44249-1"
GAD7_PANEL: Final = "69737-5"

# Items in the instrument's published order. PHQ-9's 10th, the difficulty item, is carried but not scored.
PANEL_ITEMS: Final[dict[str, tuple[str, ...]]] = {
    "PHQ-9": (
        "44250-9",  # little interest or pleasure
        "44255-8",  # feeling down, depressed or hopeless
        "44259-0",  # sleep
        "44254-1",  # tired, little energy
        "44251-7",  # appetite
        "44258-2",  # feeling bad about yourself
        "44252-5",  # concentrating
        "44253-3",  # moving or speaking slowly / restless
        "44260-8",  # thoughts that you would be better off dead (item 9)
        "69722-7",  # difficulty (not scored)
    ),
    "GAD-7": ("69725-0", "68509-9", "69733-4", "69734-2", "69735-9", "69689-8", "69736-7"),
}
PANELS: Final[dict[str, str]] = {PHQ9_PANEL: "PHQ-9", GAD7_PANEL: "GAD-7"}
# Codes a form may carry beside the items (totals, the GAD-7 difficulty item): read past, never scored.
IGNORED: Final = frozenset({"44261-6", "70274-6", "69726-8"})

# LOINC answer list LL358-3 ("Not at all" .. "Nearly every day"), shared by PHQ-9 and GAD-7 items.
LL358_3: Final[dict[str, int]] = {"LA6568-5": 0, "LA6569-3": 1, "LA6570-1": 2, "LA6571-9": 3}
# The difficulty item's list LL4070-7 ("Not difficult at all" .. "Extremely difficult").
LL4070_7: Final[dict[str, int]] = {"LA6572-7": 0, "LA6573-5": 1, "LA6574-3": 2, "LA6575-0": 3}
ANSWERS: Final[dict[str, int]] = {**LL358_3, **LL4070_7}

ORDINAL_EXTENSIONS: Final = (
    "http://hl7.org/fhir/StructureDefinition/ordinalValue",
    "http://hl7.org/fhir/StructureDefinition/itemWeight",
    "http://hl7.org/fhir/StructureDefinition/iso21090-CO-value",
)

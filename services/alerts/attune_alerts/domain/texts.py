"""Alert titles and suggested actions: plain clinical language, never PHI or item wording."""

from __future__ import annotations

SAFETY = "safety.phq9-item9"
RUPTURE = "alliance.rupture"
DETERIORATION = "outcome.deterioration"
DROPOUT = "engagement.dropout-risk"

RULE_VERSION = 1

TITLES = {
    SAFETY: "Self-harm thoughts reported on PHQ-9 item 9: review today",
    RUPTURE: "Possible alliance rupture: review",
    DETERIORATION: "Reliable deterioration since intake: review",
    DROPOUT: "Risk of dropout: review engagement",
}

SUGGESTED_ACTIONS = {
    SAFETY: "Follow the clinic's risk protocol today: contact the client and complete a risk assessment.",
    RUPTURE: (
        "Invite the client's feedback on how the work together is going; explore the tension openly "
        "without defending; revisit the agreed goals and tasks."
    ),
    DETERIORATION: (
        "Review progress with the client and in supervision; check for new stressors or risk; "
        "consider adjusting the treatment plan, intensity or modality."
    ),
    DROPOUT: (
        "Contact the client to re-engage: acknowledge the missed contact without blame, ask about "
        "barriers to attending and how the work is going, and offer a next appointment."
    ),
}

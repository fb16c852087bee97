"""Alert titles and suggested actions: plain clinical language, never PHI or item wording."""

from __future__ import annotations

SAFETY = "safety.phq9-item9"
RUPTURE = "alliance.rupture"
DETERIORATION = "outcome.deterioration"
DROPOUT = "engagement.dropout-risk"
NOT_ON_TRACK = "outcome.not-on-track"

RULE_VERSION = 1

TITLES = {
    SAFETY: "Self-harm thoughts reported on PHQ-9 item 9: review today",
    RUPTURE: "Possible alliance rupture: review",
    DETERIORATION: "Reliable deterioration since intake: review",
    DROPOUT: "Risk of dropout: review engagement",
    NOT_ON_TRACK: "Not on track against expected progress: review",
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
    NOT_ON_TRACK: (
        "Review progress with the client: their scores are worse than most clients with a similar "
        "start reached by this session. Check the four areas the clinical support tools cover: the "
        "alliance (ask how the work together is going), motivation and readiness for change, social "
        "support, and recent life events or stressors; discuss in supervision and consider adjusting "
        "the plan."
    ),
}

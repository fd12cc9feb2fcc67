"""What night staff read, in plain language: Swedish by default, English on request.

One catalogue per language for the terminal views (`trygg center watch`, `cases`, `homes`):
alarm and event kinds, case states and changes, presence. Machine output (--json) keeps the
ids; these words are for people. A kind missing here is shown as its id, never hidden.
"""

import os

LANGS = ("sv", "en")

KINDS = {
    "sv": {
        "fall": "Fall – golvmattan i sovrummet", "bed_exit": "Har lämnat sängen", "help": "Larmknappen tryckt",
        "door_open": "Ytterdörren öppnades", "dose_missed": "Medicindos inte tagen", "inactivity": "Ingen rörelse",
        "visit_needed": "Fysiskt besök behövs", "test": "Testlarm",
        "door_closed": "Ytterdörren stängdes", "help_cancelled": "Larmet avbrutet av brukaren",
        "bed_return": "Tillbaka i sängen", "mat_clear": "Golvmattan fri igen", "activity_resumed": "Rörelse igen",
        "dose_taken": "Medicindos tagen", "dispenser_empty": "Dosetten är tom", "dispenser_jam": "Dosetten har fastnat",
        "dispenser_refilled": "Dosetten påfylld", "almost_empty": "Dosetten snart tom", "fault": "Fel på utrustning",
        "fault_cleared": "Felet åtgärdat", "lock_fault": "Fel på dörrlåset", "manual_unlock": "Låset öppnat för hand",
        "visit": "Besök", "command_result": "Svar från hemmet", "lookin_due": "Tillsyn via kamera ska göras",
        "lookin_retry": "Titta igen", "lookin_plan": "Tillsynsplan",
    },
    "en": {
        "fall": "Fall – bedroom floor mat", "bed_exit": "Left the bed", "help": "Alarm button pressed",
        "door_open": "Front door opened", "dose_missed": "Medicine dose not taken", "inactivity": "No movement",
        "visit_needed": "Physical visit needed", "test": "Test alarm",
        "door_closed": "Front door closed", "help_cancelled": "Alarm cancelled by the resident",
        "bed_return": "Back in bed", "mat_clear": "Floor mat clear again", "activity_resumed": "Moving again",
        "dose_taken": "Medicine dose taken", "dispenser_empty": "Dispenser empty", "dispenser_jam": "Dispenser jammed",
        "dispenser_refilled": "Dispenser refilled", "almost_empty": "Dispenser almost empty", "fault": "Equipment fault",
        "fault_cleared": "Fault cleared", "lock_fault": "Door lock fault", "manual_unlock": "Lock turned by hand",
        "visit": "Visit", "command_result": "Answer from the home", "lookin_due": "Camera look-in due",
        "lookin_retry": "Look again", "lookin_plan": "Look-in plan",
    },
}

CHANGES = {
    "sv": {"opened": "NYTT LARM", "alarm": "NYTT LARM I ÄRENDET", "accept": "TAGET", "on_site": "PÅ PLATS",
           "forward": "VIDAREBEFORDRAT", "close": "AVSLUTAT", "reopen": "ÅTERÖPPNAT", "escalated": "ESKALERAT",
           "on_call": "TILL BEREDSKAPEN", "overdue": "FÖRSENAT – ingen på plats än",
           "help_coming": "BRUKAREN HAR FÅTT BESKED", "open_now": "ÖPPET"},
    "en": {"opened": "NEW ALARM", "alarm": "NEW ALARM IN CASE", "accept": "TAKEN", "on_site": "ON SITE",
           "forward": "FORWARDED", "close": "CLOSED", "reopen": "REOPENED", "escalated": "ESCALATED",
           "on_call": "TO ON-CALL", "overdue": "OVERDUE – nobody on site yet",
           "help_coming": "RESIDENT TOLD HELP IS COMING", "open_now": "OPEN"},
}

STATES = {
    "sv": {"open": "öppet – ingen har tagit det", "accepted": "taget av {who}", "on_site": "{who} är på plats",
           "closed": "avslutat"},
    "en": {"open": "open – nobody has taken it", "accepted": "taken by {who}", "on_site": "{who} is on site",
           "closed": "closed"},
}

PRESENCE = {
    "sv": {"online": "uppkopplat", "offline": "NEDKOPPLAT", "silent": "TYST – inga livstecken",
           "never": "aldrig hörts av", "unknown": "okänt"},
    "en": {"online": "online", "offline": "OFFLINE", "silent": "SILENT – no sign of life",
           "never": "never heard from", "unknown": "unknown"},
}

WORDS = {
    "sv": {"home": "hem", "device_time": "enhetens tid", "unsynced": "enhetens klocka går inte rätt",
           "no_receiver": "INGEN MOTTAGARE IGÅNG – larm tas inte emot just nu",
           "receiver": "mottagare", "rejected": "avvisade meddelanden", "card": "minneskort",
           "help_coming": "besked till brukaren", "case": "ärende", "on_call_staff": "i beredskap"},
    "en": {"home": "home", "device_time": "device time", "unsynced": "device clock not synchronized",
           "no_receiver": "NO RECEIVER RUNNING – alarms are not being received",
           "receiver": "receiver", "rejected": "rejected messages", "card": "storage card",
           "help_coming": "resident told", "case": "case", "on_call_staff": "on call"},
}


def language(given: str | None = None) -> str:
    """--lang, else TRYGG_LANG, else Swedish."""
    lang = (given or os.environ.get("TRYGG_LANG") or "sv").lower()[:2]
    return lang if lang in LANGS else "sv"


class Words:
    def __init__(self, lang: str) -> None:
        self.lang = lang

    def kind(self, kind: str) -> str:
        return KINDS[self.lang].get(kind, kind)

    def change(self, change: str) -> str:
        name, _, n = change.partition(":")
        text = CHANGES[self.lang].get(name, name)
        return f"{text} {n}" if n and n != "0" else text

    def state(self, state: str, who: str | None) -> str:
        return STATES[self.lang].get(state, state).format(who=who or "?")

    def presence(self, state: str) -> str:
        return PRESENCE[self.lang].get(state, state)

    def __getitem__(self, key: str) -> str:
        return WORDS[self.lang][key]

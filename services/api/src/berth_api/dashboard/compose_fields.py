"""A compose application's profiles and placement as the dashboard's forms carry them: read from a form,
turned into the REST API's body, drawn back as rows, and the REST API's problem put next to the field it
names. Pure: no REST call, no rule of its own (the REST API checks every name and server).

The form's fields: ``profile.<i>`` (one name each; a blank one is left out) and, for each row ``r`` of the
placement, ``place.<r>.service`` (the compose service) and ``place.<r>.on.<server id>`` (a ticked checkbox:
the service may run there). A form keeps the first value of a name, so each field has its own name."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from berth_api.domain.compose.keys import ComposeRefusal
from berth_api.domain.compose.precheck import load
from berth_api.domain.compose.profiles import declared
from berth_api.domain.compose.translate import berth_name

PROFILE = "profile."
PLACE = "place."
MAX_PROFILES = 32  # as many as compose.profiles takes
BLANK_PROFILES = 2  # empty inputs offered beside the profiles given, for new ones
FIELD_RE = re.compile(r"^place\.(\d+)\.(service|on\.(.+))$")


@dataclass
class Row:
    """One compose service of the placement form and the servers (ids) ticked for it."""

    service: str
    servers: list[str] = field(default_factory=list)
    profiles: list[str] = field(default_factory=list)  # the profiles the file gives it (a hint)


@dataclass
class Given:
    """What a compose form carried: the profiles typed (blanks kept, as inputs) and the placement's rows."""

    profiles: list[str]
    rows: list[Row]

    def profiles_body(self) -> tuple[list[str], list[int]]:
        """The profiles to send (blanks left out) and, for each, the input it was typed in."""
        sent = [(i, p) for i, p in enumerate(self.profiles) if p]
        return [p for _, p in sent], [i for i, _ in sent]

    def placement_body(self) -> tuple[list[dict[str, Any]], list[str]]:
        """The placement to send (a row with no server ticked runs on ``local``: left out) and, for each
        entry, its service."""
        sent = [row for row in self.rows if row.servers]
        return [{"service": row.service, "servers": row.servers} for row in sent], [row.service for row in sent]


def given(form: Mapping[str, str]) -> Given:
    """The profiles and the placement rows of a posted form, in the form's order."""
    profiles: dict[int, str] = {}
    rows: dict[int, Row] = {}
    for name, value in form.items():
        if name.startswith(PROFILE) and name.removeprefix(PROFILE).isdigit():
            profiles[int(name.removeprefix(PROFILE))] = str(value).strip()
            continue
        m = FIELD_RE.match(name)
        if m is None:
            continue
        row = rows.setdefault(int(m.group(1)), Row(""))
        if m.group(2) == "service":
            row.service = str(value).strip()
        elif value == "on":
            row.servers.append(m.group(3))
    ordered = [profiles[i] for i in sorted(profiles)][:MAX_PROFILES]
    return Given(ordered, [rows[r] for r in sorted(rows) if rows[r].service])


def profile_inputs(profiles: Iterable[str]) -> list[str]:
    """The profile inputs to draw: those given, then blank ones for new names (at most ``MAX_PROFILES``)."""
    names = list(profiles)
    return (names + [""] * BLANK_PROFILES)[: max(MAX_PROFILES, len(names))]


@dataclass
class Errors:
    """The REST API's field problems put next to the compose form's fields: by profile input, by placement
    row, and those of the compose file and the profiles as a whole."""

    profiles: dict[int, str] = field(default_factory=dict)  # by input
    rows: dict[str, str] = field(default_factory=dict)  # by service
    compose: str = ""  # the file (``compose``, ``compose.inline``, a spot in it)
    all_profiles: str = ""  # the list itself (``compose`` names "each profile once")


def errors_of(fields: Mapping[str, str], profile_inputs_sent: list[int], rows_sent: list[str]) -> Errors:
    """``fields`` (the REST API's ``compose.profiles.<i>``, ``placement.<i>...``, ``compose...``) by the
    input or row they name; ``*_sent``: the input of each profile sent, the service of each placement entry."""
    out = Errors()
    for name, detail in fields.items():
        parts = name.split(".")
        if parts[:2] == ["compose", "profiles"]:
            at = int(parts[2]) if len(parts) > 2 and parts[2].isdigit() else -1
            if 0 <= at < len(profile_inputs_sent):
                out.profiles[profile_inputs_sent[at]] = f"{name}: {detail}"
            else:
                out.all_profiles = f"{name}: {detail}"
        elif parts[0] == "placement":
            at = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else -1
            if 0 <= at < len(rows_sent):
                out.rows[rows_sent[at]] = f"{name}: {detail}"
        elif parts[0] == "compose":
            message = f"{name}: {detail}"
            if "profile" in detail and name == "compose":
                out.all_profiles = message
            else:
                out.compose = message
    return out


def rows_of_file(text: str) -> tuple[list[Row], str]:
    """A row for each service of a pasted compose file (with the profiles it declares), or why the file
    could not be read (the REST API says the same, at its spot, when the file is sent)."""
    try:
        data = load(text)
        profiles = declared(text)
    except ComposeRefusal as refused:
        return [], f"compose.{refused.spot.replace('/', '.')}: {refused.why}"
    services = data.get("services") if isinstance(data, dict) else None
    if not isinstance(services, dict) or not services:
        return [], "the file has no services"
    return [Row(str(name), profiles=profiles.get(str(name), [])) for name in services], ""


def rows_of_app(app: Mapping[str, Any]) -> list[Row]:
    """The placement rows of an application: one per service it deploys, named as its compose file names it
    (``my_api`` for Berth's ``my-api``), with the servers its placement gives it; then the entries of no
    service deployed (a file of the repository not read yet)."""
    entries = list((app.get("compose") or {}).get("placement") or [])
    file_rows, _ = rows_of_file((app.get("compose") or {}).get("inline") or "")
    in_file = {berth_name(r.service): r for r in file_rows}
    rows = []
    for svc in app.get("services") or []:
        entry = next((e for e in entries if berth_name(str(e["service"])) == svc["name"]), None)
        if entry is not None:
            entries.remove(entry)
        named = in_file.get(svc["name"], Row(svc["name"]))
        service = str(entry["service"]) if entry is not None else named.service
        rows.append(Row(service, list(entry["servers"]) if entry is not None else [], named.profiles))
    return rows + [Row(str(e["service"]), list(e["servers"])) for e in entries]


def kept(rows: list[Row], typed: list[Row]) -> list[Row]:
    """``rows`` with the servers ``typed`` in the form for the same service (what the person ticked)."""
    ticked = {r.service: r.servers for r in typed}
    return [Row(r.service, ticked.get(r.service, r.servers), r.profiles) for r in rows]


def server_names(servers: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """The team's servers by id, as the placement shows them (by name)."""
    return {str(s["id"]): str(s["name"]) for s in servers}


def compose_body(compose: Mapping[str, Any], profiles: list[str]) -> dict[str, Any]:
    """The PATCH's ``compose``: the stored file again (inline text or repository path) with ``profiles``,
    its files kept by path (their contents stay sealed where they are: never read, never sent)."""
    body: dict[str, Any] = {k: compose[k] for k in ("inline", "path") if compose.get(k) is not None}
    body["profiles"] = profiles
    files = [{"path": f["path"]} for f in compose.get("files") or []]
    if files:
        body["files"] = files
    return body


def context(
    app: Mapping[str, Any], servers: list[dict[str, Any]], typed: Given | None, errors: Errors | None
) -> dict[str, Any]:
    """What the application page's profiles and placement sections draw: the profile inputs and the rows
    (as stored, or as typed in the form the REST API refused), the team's servers to pick from, the
    profiles the file declares (offered as names) and the problem's field errors."""
    compose = app.get("compose") or {}
    rows = rows_of_app(app)
    if typed is not None:
        rows = kept(rows, typed.rows)
    names = sorted({p for row in rows_of_file(compose.get("inline") or "")[0] for p in row.profiles})
    return {
        "compose_profiles": profile_inputs(typed.profiles if typed is not None else compose.get("profiles") or []),
        "compose_rows": rows,
        "compose_errors": errors or Errors(),
        "compose_declared": names,
        "compose_left": [n for n in (compose.get("translated") or {}).get("notes") or [] if ": not deployed: " in n],
        "servers": servers,
        "server_names": server_names(servers),
    }

"""Refuse bad answers before cookiecutter renders a single file.

Every answer ends up in code, manifests or server flags, so a typo here becomes a broken
project (or a server that silently never frees sessions). This hook checks each answer, prints
one ``ERROR: <field>: got <value>; <fix>`` line per bad field to stderr and exits 1; cookiecutter
then raises ``FailedHookException`` and deletes the half-made project directory.

Errors name the field the user typed. ``project_slug`` defaults to ``project_name`` slugified
and ``package_name`` to the slug with ``_`` for ``-`` (``cookiecutter.json``); when a value is
that derivation (``derive_slug`` / ``derive_package``, python-slugify as cookiecutter's own
``slugify`` filter uses it) and is invalid, the error names the field it came from and says what
to change there. Only the first problem per typed field is reported.

Jinja markup (an opener of ``JINJA_MARKERS``) in any answer is refused, naming the field.
Answers typed at the prompts and replayed answers reach this hook unrendered; answers given as
extra context are refused earlier by ``local_extensions.AnswerMarkupGuard``, because cookiecutter
renders those before any hook runs.

Decision: ``check_unused_sessions_ms`` larger than ``unused_session_lifetime_ms`` is refused.
Bokeh only looks for idle sessions every check interval, so the worst-case life of an idle
session is lifetime + check interval; with a check interval longer than the lifetime the
lifetime setting stops meaning anything.

Decision: IPv6 literals in ``allowed_origins`` are refused. Bokeh (3.9 and 3.10) turns every
``--allow-websocket-origin`` entry into its allowlist with ``create_hosts_allowlist`` in
``bokeh/server/util.py`` (called by ``bokeh/server/server.py`` when the server is made), which
splits the entry with ``host.split(':')`` and raises ``ValueError("Invalid host value: ...")``
for more than two parts. So ``[::1]:5006``, ``[::1]`` and ``::1`` all stop the server at start
(``bokeh serve`` prints ``ERROR: Invalid host value: [::1]:5006``). A hostname that resolves to
the IPv6 address works.

The answers reach this file only as JSON data inside a raw string, so any text (quotes,
backslashes, emoji) in an answer cannot break the Python. The module imports cleanly while still
unrendered (``ANSWERS`` is then ``{}``), so tests can call the functions directly.
"""

from __future__ import annotations

import ipaddress
import json
import keyword
import re
import sys
from collections.abc import Callable, Mapping
from decimal import Decimal

from slugify import slugify  # python-slugify: a dependency of cookiecutter, behind its slugify filter

# tojson escapes ' so nothing in an answer can close this raw ''' string; keep the quotes.
_RENDERED_ANSWERS = r'''{{ cookiecutter | tojson }}'''  # fmt: skip

PYTHON_VERSIONS = ("3.10", "3.11", "3.12", "3.13")
EDGES = ("gateway", "ingress-nginx")
AUTH_CHOICES = ("none", "oidc")
RESERVED_PACKAGE_NAMES = frozenset(
    {"bokeh", "tornado", "numpy", "psutil", "prometheus_client", "test", "tests", "app"}
)
SLUG_MAX_LENGTH = 63  # Kubernetes object names and label values: at most 63 characters
#: The derived slug of a name without letters or digits (``cookiecutter.json``); never a valid slug.
NO_LETTERS_SLUG = "_no_letters_in_project_name_"
MAX_REPLICAS = 100
MIN_MEMORY_BYTES = 128 * 2**20
TRUE_WORDS = frozenset({"true", "yes"})
FALSE_WORDS = frozenset({"false", "no"})

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SLUG = re.compile(r"[a-z][a-z0-9]*(-[a-z0-9]+)*")
_PACKAGE = re.compile(r"[a-z_][a-z0-9_]*")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_DIGITS = re.compile(r"[0-9]+")
_QUANTITY = re.compile(r"(?P<number>[0-9]+(?:\.[0-9]+)?)(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?")
_SUFFIX_BYTES = {
    None: 1,
    "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
}  # fmt: skip
_HOST_LABEL = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?")
#: Jinja openers, built so this file holds no Jinja but the answers line.
JINJA_MARKERS = ("{" + "{", "{" + "%", "{" + "#")
#: What each derived field is, for messages naming the field it was derived from.
DERIVED_LABELS = {"project_slug": "folder name", "package_name": "Python package name"}

#: A check returns ``None`` for a good value or the text telling the user what is accepted.
Check = Callable[[object], str | None]


def load_answers(raw: str) -> dict[str, object]:
    """Parse the rendered answers; ``{}`` while the file is still an unrendered template."""
    if raw.lstrip().startswith("{" * 2):
        return {}
    return dict(json.loads(raw))


ANSWERS: dict[str, object] = load_answers(_RENDERED_ANSWERS)


def derive_slug(project_name: str) -> str:
    """The ``project_slug`` default: the same ``slugify`` call as in ``cookiecutter.json``.

    A name without letters or digits gives ``NO_LETTERS_SLUG``, not ``""``: cookiecutter makes the
    project folder before this hook runs, and an empty name would make it the output directory
    itself ("directory already exists"), an error that names no field.
    """
    return slugify(project_name, max_length=SLUG_MAX_LENGTH, word_boundary=True) or NO_LETTERS_SLUG


def derive_package(project_slug: str) -> str:
    """The ``package_name`` default: the slug with ``_`` for ``-`` (as in ``cookiecutter.json``)."""
    return project_slug.replace("-", "_")


def parse_int(value: object) -> int | None:
    """Return ``value`` as an int if it is an int (not bool) or a string of ASCII digits."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and _DIGITS.fullmatch(value):
        return int(value)
    return None


def parse_bool(value: object) -> bool | None:
    """Return ``value`` as a bool if it is one or a true/false/yes/no word (any case)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        word = value.strip().lower()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
    return None


def quantity_to_bytes(quantity: str) -> int | None:
    """Convert a Kubernetes memory quantity (``512Mi``, ``1Gi``, ``2G``) to bytes, else ``None``.

    Same grammar as ``quantity_to_bytes`` in the generated ``settings.py``.
    """
    match = _QUANTITY.fullmatch(quantity)
    if match is None:
        return None
    return int(Decimal(match["number"]) * _SUFFIX_BYTES[match["suffix"]])


def check_text(value: object, *, required: bool) -> str | None:
    """A single line of text: no control characters, non-empty when ``required``."""
    if not isinstance(value, str):
        return "expected text"
    if required and not value.strip():
        return "must not be empty"
    if _CONTROL.search(value):
        return "must be a single line without control characters (newline, tab, escape ...)"
    return None


def check_project_name(value: object) -> str | None:
    """Any non-empty single-line text; quotes, backslashes and emoji are fine."""
    return check_text(value, required=True)


def check_description(value: object) -> str | None:
    """Optional single-line text."""
    return check_text(value, required=False)


def check_author_name(value: object) -> str | None:
    """Non-empty single-line text."""
    return check_text(value, required=True)


def check_project_slug(value: object) -> str | None:
    """Lowercase words of letters and digits joined by single hyphens, at most 63 characters."""
    hint = (
        "use lowercase ASCII letters and digits in words joined by single hyphens, "
        f"starting with a letter, at most {SLUG_MAX_LENGTH} characters (e.g. 'my-dashboard')"
    )
    if not isinstance(value, str) or not _SLUG.fullmatch(value) or len(value) > SLUG_MAX_LENGTH:
        return hint
    return None


def package_name_reason(value: object) -> str | None:
    """Why ``value`` cannot be the package name (a phrase like ``"is a Python keyword"``), else ``None``."""
    if not isinstance(value, str) or not _PACKAGE.fullmatch(value):
        return "is not a lowercase Python identifier (ASCII letters, digits, '_'; not starting with a digit)"
    if keyword.iskeyword(value):
        return "is a Python keyword"
    if value in sys.stdlib_module_names:
        return "shadows a standard-library module"
    if value in RESERVED_PACKAGE_NAMES:
        reserved = ", ".join(sorted(RESERVED_PACKAGE_NAMES))
        return f"shadows a dependency or a name the project uses ({reserved})"
    return None


def check_package_name(value: object) -> str | None:
    """A lowercase identifier that shadows neither a keyword, the stdlib nor a dependency."""
    reason = package_name_reason(value)
    if reason is None:
        return None
    return f"{reason}; pick another name (e.g. add a suffix like '_dashboard')"


def check_author_email(value: object) -> str | None:
    """Looks like ``name@domain.tld``."""
    if not isinstance(value, str) or not _EMAIL.fullmatch(value):
        return "use an address like 'jane.doe@example.com' (one '@', a dot in the domain, no spaces)"
    return None


def check_python_version(value: object) -> str | None:
    """One of the supported Python versions."""
    if value not in PYTHON_VERSIONS:
        return f"use one of {', '.join(PYTHON_VERSIONS)}"
    return None


def check_port(value: object) -> str | None:
    """A TCP port number."""
    port = parse_int(value)
    if port is None or not 1 <= port <= 65535:
        return "use a whole number from 1 to 65535"
    return None


def check_origin(entry: str) -> str | None:
    """One ``host[:port]`` websocket origin; returns what is wrong with it."""
    if not entry:
        return "an entry is empty (stray comma?)"
    if "*" in entry:
        return f"{entry!r} uses the wildcard '*'; list every allowed host explicitly"
    if "://" in entry:
        return f"{entry!r} has a scheme; drop 'http://' or 'https://' and give host[:port]"
    if "/" in entry:
        return f"{entry!r} has a path; give only host[:port]"
    if re.search(r"\s", entry):
        return f"{entry!r} contains whitespace"
    if entry.startswith("[") or _is_ipv6(entry):
        return (
            f"{entry!r} is an IPv6 address; Bokeh cannot parse IPv6 origins and refuses to start "
            "('Invalid host value'), so give a hostname that resolves to it (e.g. 'localhost:5006')"
        )
    if entry.count(":") > 1:
        return f"{entry!r} has several ':'; give host[:port]"
    host, _, port_text = entry.partition(":")
    port = port_text if ":" in entry else None
    if not _is_host(host):
        return f"{entry!r} does not start with a hostname or IPv4 address"
    if port is not None and check_port(port) is not None:
        return f"{entry!r} has port {port!r}; a port must be a whole number from 1 to 65535"
    return None


def _is_ipv6(text: str) -> bool:
    """True for an unbracketed IPv6 address such as ``::1``."""
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def _is_host(host: str) -> bool:
    """True for a DNS hostname or a dotted IPv4 address."""
    if re.fullmatch(r"[0-9.]+", host):
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            return False
        return True
    return bool(host) and all(_HOST_LABEL.fullmatch(label) for label in host.split("."))


def check_allowed_origins(value: object) -> str | None:
    """A comma-separated list of at least one explicit ``host[:port]``."""
    if not isinstance(value, str) or not value.strip():
        return "give at least one host[:port], e.g. 'localhost:5006' or 'dash.example.com'"
    problems = [problem for entry in value.split(",") if (problem := check_origin(entry.strip()))]
    if problems:
        example = "expected comma-separated host[:port], e.g. 'localhost:5006,example.com'"
        return "; ".join(problems) + f" ({example})"
    return None


def check_positive_ms(value: object) -> str | None:
    """A whole number of milliseconds greater than zero."""
    number = parse_int(value)
    if number is None or number <= 0:
        return "use a whole number of milliseconds greater than 0 (no sign, no decimals), e.g. 60000"
    return None


def check_memory_limit(value: object) -> str | None:
    """A Kubernetes memory quantity of at least 128Mi."""
    size = quantity_to_bytes(value) if isinstance(value, str) else None
    if size is None:
        return (
            "use a Kubernetes memory quantity: a number with an optional suffix Ki, Mi, Gi, Ti, Pi, Ei "
            "(powers of 1024) or k, M, G, T, P, E (powers of 1000), no space, e.g. '512Mi' or '1Gi' "
            "('m' means milli, 'GB' and 'gi' are not valid)"
        )
    if size < MIN_MEMORY_BYTES:
        return "must be at least 128Mi; a Bokeh server process cannot run in less"
    return None


def check_replicas(value: object) -> str | None:
    """A replica count from 1 to 100."""
    number = parse_int(value)
    if number is None or not 1 <= number <= MAX_REPLICAS:
        return f"use a whole number from 1 to {MAX_REPLICAS}"
    return None


def check_edge(value: object) -> str | None:
    """How traffic reaches the pods in Kubernetes."""
    if value not in EDGES:
        return f"use one of {', '.join(EDGES)} (Gateway API, or an ingress-nginx Ingress)"
    return None


def check_auth(value: object) -> str | None:
    """No login, or OpenID Connect."""
    if value not in AUTH_CHOICES:
        return f"use one of {', '.join(AUTH_CHOICES)}"
    return None


def check_boolean(value: object) -> str | None:
    """A yes/no answer."""
    if parse_bool(value) is None:
        return "answer true/false or yes/no"
    return None


CHECKS: dict[str, Check] = {
    "project_name": check_project_name,
    "project_slug": check_project_slug,
    "package_name": check_package_name,
    "description": check_description,
    "author_name": check_author_name,
    "author_email": check_author_email,
    "python_version": check_python_version,
    "port": check_port,
    "allowed_origins": check_allowed_origins,
    "unused_session_lifetime_ms": check_positive_ms,
    "check_unused_sessions_ms": check_positive_ms,
    "memory_limit": check_memory_limit,
    "replicas": check_replicas,
    "include_kubernetes": check_boolean,
    "edge": check_edge,
    "include_nginx": check_boolean,
    "signed_sessions": check_boolean,
    "auth": check_auth,
}


def format_error(field: str, value: object, hint: str) -> str:
    """The one line printed for a bad field."""
    return f"ERROR: {field}: got {value!r}; {hint}"


def check_session_timing(answers: Mapping[str, object]) -> str | None:
    """Refuse a check interval longer than the idle-session lifetime (see module docstring)."""
    lifetime = parse_int(answers.get("unused_session_lifetime_ms"))
    interval = parse_int(answers.get("check_unused_sessions_ms"))
    if lifetime is None or interval is None or lifetime <= 0 or interval <= lifetime:
        return None
    return (
        f"is longer than unused_session_lifetime_ms ({lifetime}); lower check_unused_sessions_ms to at "
        f"most {lifetime}: an idle session lives up to lifetime + check interval, so a check interval "
        "longer than the lifetime makes the lifetime setting meaningless"
    )


def check_login_signing(answers: Mapping[str, object]) -> str | None:
    """Login needs signed session ids: unsigned, a logged-in user could claim any session by id."""
    if answers.get("auth") != "oidc" or parse_bool(answers.get("signed_sessions")) is not False:
        return None
    return (
        "login needs signed session ids (a session id alone must not open someone else's session); "
        "answer signed_sessions yes, or choose auth none"
    )


def markup_hint(value: object) -> str | None:
    """Refuse Jinja markup: answers are plain text, never templates."""
    found = [marker for marker in JINJA_MARKERS if isinstance(value, str) and marker in value]
    if not found:
        return None
    return f"holds Jinja template markup {found[0]!r}; answers are plain text, so remove the braces"


def typed_field(answers: Mapping[str, object], field: str) -> str:
    """The field the user typed that ``field``'s value was derived from (``field`` itself if typed)."""
    if field == "package_name" and answers.get(field) == derive_package(str(answers.get("project_slug"))):
        return typed_field(answers, "project_slug")
    if field == "project_slug" and answers.get(field) == derive_slug(str(answers.get("project_name"))):
        return "project_name"
    return field


def derived_hint(answers: Mapping[str, object], origin: str, field: str) -> str:
    """What to change in ``origin`` when ``field``, derived from it, is invalid."""
    value, label = str(answers[field]), DERIVED_LABELS[field]
    typed = str(answers[origin])
    example = f"{typed} Dashboard" if origin == "project_name" else f"{typed}-dashboard"
    if value in ("", NO_LETTERS_SLUG):
        return (
            f"it has no letters or digits to derive the {label} ({field}) from; "
            "use a name with letters, e.g. 'Sales Dashboard'"
        )
    if value[0].isdigit():
        starter = "Team " if origin == "project_name" else "team-"
        return (
            f"the {label} derived from it ({field} {value!r}) starts with a digit; "
            f"start {origin} with a letter, e.g. {starter + typed!r}"
        )
    reason = package_name_reason(value) if field == "package_name" else check_project_slug(value)
    derived = f"the {label} derived from it ({field} {value!r})"
    return f"{derived} {reason}; add a word to {origin}, e.g. {example!r}"


def validate(answers: Mapping[str, object]) -> list[str]:
    """Return one ``ERROR: ...`` line per bad or missing answer, naming the field the user typed."""
    errors: dict[str, str] = {}  # first problem per typed field
    for field in answers:
        origin = typed_field(answers, field)
        hint = None if field.startswith("_") else markup_hint(answers[origin])
        if hint is not None:
            errors.setdefault(origin, format_error(origin, answers[origin], hint))
    for field, check in CHECKS.items():
        if field not in answers:
            errors.setdefault(field, f"ERROR: {field}: missing; cookiecutter.json must define it")
            continue
        hint = check(answers[field])
        if hint is None:
            continue
        origin = typed_field(answers, field)
        if origin != field:
            hint = derived_hint(answers, origin, field)
        errors.setdefault(origin, format_error(origin, answers[origin], hint))
    timing = check_session_timing(answers)
    if timing is not None:
        field = "check_unused_sessions_ms"
        errors.setdefault(field, format_error(field, answers[field], timing))
    signing = check_login_signing(answers)
    if signing is not None:
        errors.setdefault("auth", format_error("auth", answers["auth"], signing))
    return list(errors.values())


def main(answers: Mapping[str, object]) -> int:
    """Print every problem to stderr; return the process exit status."""
    errors = validate(answers)
    for error in errors:
        print(error, file=sys.stderr)
    if errors:
        print(f"{len(errors)} answer(s) refused; nothing was generated.", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(ANSWERS))
